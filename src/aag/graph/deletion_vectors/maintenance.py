"""Maintenance of a table with deletion vectors: dropping dead vector files, purging hidden rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from aag.graph.deletion_vectors.commit import (
    stats_columns,
    stats_json,
    write_parquet,
)
from aag.graph.deletion_vectors.format import (
    FEATURE,
    Descriptor,
    read_vector,
)
from aag.graph.deletion_vectors.log import (
    live_adds,
    now_ms,
    put_if_absent,
)


def drop_dead_vectors(uri: str) -> int:
    """Delete the deletion vector files the table's latest version no longer uses; returns how many.

    delta-rs's vacuum keeps every ``deletion_vector_*.bin`` (it removes data files only), so
    after a compaction the vectors of the compacted files stay behind. Called after that
    vacuum, which already made the older versions unreadable.
    """
    root = Path(uri)
    if not (root / "_delta_log").is_dir():
        return 0
    adds = live_adds(root, int(DeltaTable(uri).version()))
    live = {
        str(Descriptor.from_json(add["deletionVector"]).file_name())
        for add in adds.values()
        if add.get("deletionVector") and add["deletionVector"].get("storageType") == "u"
    }
    dead = [p for p in root.rglob("deletion_vector_*.bin") if str(p.relative_to(root)) not in live]
    for path in dead:
        path.unlink()
    return len(dead)


def purge(uri: str, metadata: Mapping[str, Any] | None = None) -> int:
    """Rewrite every file a deletion vector hides rows of, without those rows; returns how many.

    A vector only hides rows: their values stay in the data file until it is rewritten.
    An erasure must not leave them there, so it purges first (Delta-Spark's ``REORG TABLE
    ... APPLY (PURGE)``); :func:`aag.service.maintenance.vacuum` then deletes the old
    files. One commit with ``dataChange`` false (no rows change, the feed skips it).

    Raises:
        ConflictError: Another writer committed the same version first.
    """
    root = Path(uri)
    table = DeltaTable(uri)
    version = int(table.version())
    if FEATURE not in (table.protocol().reader_features or []):
        return 0
    schema = pa.schema(table.schema().to_arrow())
    columns = stats_columns(table.metadata().configuration, schema)
    now = now_ms()
    actions: list[dict[str, Any]] = []
    for path, add in sorted(live_adds(root, version).items()):
        if not add.get("deletionVector"):
            continue
        old = Descriptor.from_json(add["deletionVector"])
        data = pq.read_table(root / path).cast(schema)
        hidden = pa.array(read_vector(root, old), pa.int64())
        keep = pc.invert(pc.is_in(pa.array(range(data.num_rows), pa.int64()), value_set=hidden))
        kept = data.filter(keep)
        actions.append(
            {
                "remove": {
                    "path": path,
                    "deletionTimestamp": now,
                    "dataChange": False,
                    "extendedFileMetadata": True,
                    "partitionValues": add.get("partitionValues") or {},
                    "size": add["size"],
                    "deletionVector": old.to_json(),
                }
            }
        )
        if kept.num_rows:
            name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
            size = write_parquet(kept, root / name)
            actions.append(
                {
                    "add": {
                        "path": name,
                        "partitionValues": add.get("partitionValues") or {},
                        "size": size,
                        "modificationTime": now,
                        "dataChange": False,
                        "stats": stats_json(kept, columns),
                    }
                }
            )
    if not actions:
        return 0
    commit_info = {
        "timestamp": now,
        "operation": "REORG",
        "operationParameters": {"applyPurge": "true"},
        "readVersion": version,
        "isBlindAppend": False,
        "engineInfo": "aag deletion-vector writer",
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    put_if_absent(root, version + 1, [{"commitInfo": commit_info}, *actions])
    return sum(1 for a in actions if "remove" in a)
