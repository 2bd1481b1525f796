"""The Delta log as the vector writer needs it: replaying live files, put-if-absent, enabling the feature."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from deltalake import DeltaTable

from aag.errors import ConflictError, WarehouseError
from aag.graph.deletion_vectors.format import (
    FEATURE,
    LEGACY_WRITER_FEATURES,
    PROPERTY,
    Descriptor,
)


def _log_dir(root: Path) -> Path:
    return root / "_delta_log"


def live_adds(root: Path, version: int) -> dict[str, dict[str, Any]]:
    """The ``add`` actions of the files in ``version``, by path (replayed from the log).

    Starts from the newest checkpoint at or before ``version`` when there is one.
    """
    log = _log_dir(root)
    live: dict[tuple[str, str], dict[str, Any]] = {}
    start = 0
    checkpoints = sorted(p for p in log.glob("*.checkpoint*.parquet") if int(p.name.split(".")[0]) <= version)
    if checkpoints:
        newest = int(checkpoints[-1].name.split(".")[0])
        for part in (p for p in checkpoints if int(p.name.split(".")[0]) == newest):
            adds = pq.read_table(part, columns=["add"]).column("add").to_pylist()
            for add in adds:
                if add is not None:
                    add["partitionValues"] = dict(add.get("partitionValues") or [])
                    _apply(live, {"add": add})
        start = newest + 1
    for v in range(start, version + 1):
        for line in (log / f"{v:020d}.json").read_text(encoding="utf-8").splitlines():
            if line.strip():
                _apply(live, json.loads(line))
    return {path: add for (path, _), add in live.items()}


def _dv_id(action: Mapping[str, Any]) -> str:
    dv = action.get("deletionVector")
    return Descriptor.from_json(dv).unique_id if dv else ""


def _apply(live: dict[tuple[str, str], dict[str, Any]], action: Mapping[str, Any]) -> None:
    if "add" in action:
        add = action["add"]
        live[(add["path"], _dv_id(add))] = add
    elif "remove" in action:
        remove = action["remove"]
        live.pop((remove["path"], _dv_id(remove)), None)


def put_if_absent(root: Path, version: int, actions: list[dict[str, Any]]) -> None:
    """Write the log entry of ``version`` unless one exists (then :class:`ConflictError`)."""
    log = _log_dir(root)
    temp = log / f".{version:020d}.{uuid.uuid4()}.json.tmp"
    temp.write_text("".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions), encoding="utf-8")
    try:
        os.link(temp, log / f"{version:020d}.json")
    except FileExistsError as exc:
        raise ConflictError(
            f"another writer committed version {version} of {root} first; nothing was changed, retry"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)


def now_ms() -> int:
    """Milliseconds since the epoch, as log actions stamp their time."""
    return int(time.time() * 1000)


def enable(uri: str) -> bool:
    """Add the ``deletionVectors`` feature and switch the property on; returns whether it committed.

    One commit with a ``protocol`` (reader 3, writer 7) and the table's ``metaData`` with
    :data:`PROPERTY` set, written the same put-if-absent way as the data commits.
    """
    root = Path(uri)
    table = DeltaTable(uri)
    protocol = table.protocol()
    meta = table.metadata()
    if FEATURE in (protocol.reader_features or []) and meta.configuration.get(PROPERTY) == "true":
        return False
    writer_version = protocol.min_writer_version
    if writer_version not in (*LEGACY_WRITER_FEATURES, 7) or protocol.min_reader_version not in (1, 3):
        # Column mapping (reader 2, writers 5 and 6) changes the files' column names.
        raise WarehouseError(
            f"{uri}: protocol {protocol.min_reader_version}/{writer_version} cannot take deletion vectors"
        )
    implied = LEGACY_WRITER_FEATURES.get(writer_version, ())
    readers = sorted({*(protocol.reader_features or []), FEATURE})
    writers = sorted({*(protocol.writer_features or []), *implied, FEATURE})
    configuration = {**meta.configuration, PROPERTY: "true"}
    version = int(table.version()) + 1
    actions: list[dict[str, Any]] = [
        {
            "commitInfo": {
                "timestamp": now_ms(),
                "operation": "SET TBLPROPERTIES",
                "operationParameters": {"properties": json.dumps({PROPERTY: "true"})},
                "readVersion": version - 1,
                "engineInfo": "aag deletion-vector writer",
            }
        },
        {
            "protocol": {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": readers,
                "writerFeatures": writers,
            }
        },
        {
            "metaData": {
                "id": meta.id,
                "name": meta.name,
                "description": meta.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": table.schema().to_json(),
                "partitionColumns": list(meta.partition_columns),
                "createdTime": meta.created_time,
                "configuration": configuration,
            }
        },
    ]
    put_if_absent(root, version, actions)
    return True
