"""One merge-on-read commit: replaced rows marked in vectors, new rows and the change feed appended."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from aag.engine.dialect import ident
from aag.engine.duckdb import local_connection
from aag.errors import WarehouseError
from aag.faults import crash_point
from aag.graph.deletion_vectors.format import (
    INLINE_LIMIT,
    Descriptor,
    VectorFile,
    read_vector,
    vector_descriptor,
)
from aag.graph.deletion_vectors.log import (
    enable,
    live_adds,
    now_ms,
    put_if_absent,
)
from aag.graph.files import local_path


# -- statistics --------------------------------------------------------------------------
def _stat_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # Truncated to milliseconds, as delta-rs and Delta-Spark write timestamp bounds.
        value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


def stats_json(table: pa.Table, columns: Iterable[str]) -> str:
    """The ``stats`` JSON of a new data file: row count, and bounds and nulls of ``columns``."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in columns:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if pa.types.is_nested(column.type) or pa.types.is_boolean(column.type):
            continue
        nulls[name] = int(column.null_count)
        if column.null_count < len(column):
            bounds = pc.min_max(column)
            mins[name] = _stat_value(bounds["min"].as_py())
            maxs[name] = _stat_value(bounds["max"].as_py())
    return json.dumps(
        {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def stats_columns(configuration: Mapping[str, str | None], schema: pa.Schema) -> list[str]:
    """The columns a new file carries statistics for: the table's setting, else the first 32."""
    listed = configuration.get("delta.dataSkippingStatsColumns")
    if listed:
        return [c.strip() for c in listed.split(",") if c.strip()]
    return list(schema.names[:32])


def write_parquet(table: pa.Table, path: Path) -> int:
    """Write one data or change file of the commit; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy", row_group_size=64 * 1024)
    return path.stat().st_size


# -- the commit --------------------------------------------------------------------------
def _key_strings(table: pa.Table, key_columns: list[str]) -> pa.ChunkedArray | pa.Array:
    parts = [table.column(c).cast(pa.string()) for c in key_columns]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    # A NULL part would make the whole key NULL, never equal to a listed key (as in SQL).
    return joined


def _positions(root: Path, paths: list[str], keys: pa.Table) -> dict[str, list[int]]:
    """Row positions, per file of ``paths``, of the rows whose key is listed in ``keys``.

    DuckDB's Parquet reader decodes only the key columns and numbers the rows itself
    (rows a vector already hides are among them; the caller takes those out). A key
    with a NULL part equals no listed key, as in SQL.
    """
    if not paths:
        return {}
    con = local_connection()
    con.register("dv_keys", keys)
    try:
        first = ident(keys.column_names[0])
        match = " AND ".join(f"k.{ident(c)} = t.{ident(c)}" for c in keys.column_names)
        # Column names quoted by ident; the file list is a parameter. The IN on the first
        # column is applied while the files are scanned, before the whole-key join.
        sql = (
            "SELECT filename, list(file_row_number ORDER BY file_row_number) AS positions "  # noqa: S608
            "FROM read_parquet($files, filename = true, file_row_number = true, union_by_name = true) t "
            f"WHERE {first} IN (SELECT {first} FROM dv_keys) "
            f"AND EXISTS (SELECT 1 FROM dv_keys k WHERE {match}) GROUP BY filename"
        )
        found = con.sql(sql, params={"files": [str(root / p) for p in paths]}).fetchall()
    finally:
        con.unregister("dv_keys")
    by_file = {str(root / p): p for p in paths}
    return {by_file[name]: list(positions) for name, positions in found}


def _candidates(adds: dict[str, dict[str, Any]], first: str, lo: Any, hi: Any) -> list[str]:
    """Files whose statistics do not rule out a key with ``first`` between ``lo`` and ``hi``."""
    out = []
    for path, add in adds.items():
        stats = json.loads(add.get("stats") or "{}")
        fmin = (stats.get("minValues") or {}).get(first)
        fmax = (stats.get("maxValues") or {}).get(first)
        if stats.get("numRecords") == 0:
            continue
        if fmin is not None and fmax is not None and (fmax < lo or fmin > hi):
            continue
        out.append(path)
    return out


def _deleted_rows(
    root: Path,
    hits: list[tuple[str, list[int]]],
    schema: pa.Schema,
    count: int,
    images: pa.Table | None,
    key_columns: list[str],
    wanted: pa.Array,
) -> tuple[pa.Table, int]:
    """The rows the vectors mark, for the change feed, and how many files were read for them.

    From ``images`` if they hold as many of the keys' rows as the vectors mark, else read.
    """
    if images is not None:
        listed = pc.is_in(_key_strings(images, key_columns), value_set=wanted)
        mine = images.filter(pc.fill_null(listed, False))
        # Fewer or more rows than marked: the caller read another state; the files decide.
        if mine.num_rows == count:
            return mine.select(schema.names).cast(schema), 0
    # Files delta-rs wrote read back with view types, which ``take`` does not handle.
    parts = [
        pq.ParquetFile(root / path).read().cast(schema).take(pa.array(taken, pa.int64()))
        for path, taken in hits
    ]
    return (pa.concat_tables(parts) if parts else schema.empty_table()), len(parts)


@dataclass
class PendingCommit:
    """A merge-on-read change whose files are written and whose log entry is not yet."""

    root: Path
    version: int
    actions: list[dict[str, Any]]
    #: The data, vector and change files written for it (orphans until committed).
    files: list[Path]
    metrics: dict[str, Any]

    def commit(self) -> dict[str, Any]:
        """Put the log entry; returns the metrics with the committed ``version``.

        Raises:
            ConflictError: Another writer committed this version first.
        """
        if self.actions:
            # A crash here leaves files no log entry names: the table reads as before, and
            # drop_orphans removes them.
            crash_point("dv-files-written")
            put_if_absent(self.root, self.version, self.actions)
            self.metrics["version"] = self.version
        return self.metrics


def replace_keys(
    uri: str,
    keys: pa.Table,
    rows: pa.Table,
    metadata: Mapping[str, Any] | None = None,
    inline_limit: int = INLINE_LIMIT,
    images: pa.Table | None = None,
) -> dict[str, Any]:
    """Replace every row whose key (the columns of ``keys``) is listed, with deletion vectors.

    :func:`prepare_replace` and then :meth:`PendingCommit.commit`; see there.
    """
    return prepare_replace(uri, keys, rows, metadata, inline_limit, images).commit()


def prepare_replace(
    uri: str,
    keys: pa.Table,
    rows: pa.Table,
    metadata: Mapping[str, Any] | None = None,
    inline_limit: int = INLINE_LIMIT,
    images: pa.Table | None = None,
) -> PendingCommit:
    """Write the files of a key replacement with deletion vectors; the log entry comes after.

    The same change as :meth:`aag.graph.delta.DeltaIO.replace_keys` (the stored rows of the
    listed keys go, ``rows`` come), committed merge-on-read: the old rows are marked
    deleted and ``rows`` are appended. Switches the table's deletion vectors on first if
    needed (one extra commit).

    ``images``, if given, holds the stored rows the caller read for at least the listed
    keys (a batch has them from planning): the change feed's ``delete`` rows are taken
    from there when they are as many as the rows the vectors mark, so that only the key
    columns of the touched files are read. Otherwise the touched files are read whole.

    Returns:
        The pending commit; its metrics: ``num_target_rows_deleted``,
        ``num_target_rows_inserted``, ``num_target_rows_copied`` (always 0),
        ``num_files_with_new_vectors``, ``num_files_removed`` (every row deleted),
        ``num_files_read_for_the_feed`` (0 when ``images`` gave the deleted rows), and
        ``version`` once committed.
    """
    if not Path(uri).is_dir():
        raise WarehouseError(f"deletion vectors are written to local tables only, not {uri}")
    enable(uri)
    root = Path(uri)
    table = DeltaTable(uri)
    read_version = int(table.version())
    schema = pa.schema(table.schema().to_arrow())
    configuration = table.metadata().configuration
    if table.metadata().partition_columns:
        raise WarehouseError(f"{uri}: the deletion-vector writer handles unpartitioned tables only")
    if configuration.get("delta.columnMapping.mode", "none") != "none":
        raise WarehouseError(f"{uri}: the deletion-vector writer does not handle column mapping")
    adds = live_adds(root, read_version)
    # delta-rs gives percent-encoded URIs (a space in the warehouse path is "%20").
    known = {local_path(f) for f in table.file_uris()}
    if {str(root / p) for p in adds} != {str(Path(k)) for k in known}:
        raise WarehouseError(f"{uri}: the log replay disagrees with delta-rs on the table's files")

    key_columns = keys.column_names
    wanted = pc.unique(_key_strings(keys, key_columns))
    now = now_ms()
    actions: list[dict[str, Any]] = []
    hits: list[tuple[str, list[int]]] = []
    read_back = 0
    store = VectorFile()
    deleted_total = files_dv = files_removed = 0
    if keys.num_rows:
        bounds = pc.min_max(keys.column(key_columns[0]).cast(pa.string()))
        candidates = _candidates(adds, key_columns[0], bounds["min"].as_py(), bounds["max"].as_py())
        found = _positions(root, sorted(candidates), keys)
        for path in sorted(found):
            add = adds[path]
            positions = set(found[path])
            old_dv = Descriptor.from_json(add["deletionVector"]) if add.get("deletionVector") else None
            old_rows = set(read_vector(root, old_dv)) if old_dv else set()
            positions -= old_rows
            if not positions:
                continue
            hits.append((path, sorted(positions)))
            deleted_total += len(positions)
            every = old_rows | positions
            remove: dict[str, Any] = {
                "path": path,
                "deletionTimestamp": now,
                "dataChange": True,
                "extendedFileMetadata": True,
                "partitionValues": add.get("partitionValues") or {},
                "size": add["size"],
            }
            if old_dv:
                remove["deletionVector"] = old_dv.to_json()
            actions.append({"remove": remove})
            num_rows = pq.read_metadata(root / path).num_rows
            if len(every) >= num_rows:
                files_removed += 1
                continue
            stats = json.loads(add.get("stats") or "{}")
            stats["numRecords"] = num_rows
            # Bounds no longer need to occur among the valid rows (protocol "tightBounds").
            stats["tightBounds"] = False
            new_add = {
                "path": path,
                "partitionValues": add.get("partitionValues") or {},
                "size": add["size"],
                "modificationTime": add.get("modificationTime", now),
                "dataChange": True,
                "stats": json.dumps(stats, separators=(",", ":")),
                "deletionVector": vector_descriptor(every, store, inline_limit).to_json(),
            }
            actions.append({"add": new_add})
            files_dv += 1

    inserted = rows.cast(schema) if rows.num_rows else schema.empty_table()
    files: list[Path] = []
    if len(store.content) > 1:
        files.append(root / store.name)
        files[-1].write_bytes(bytes(store.content))
    if inserted.num_rows:
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        files.append(root / name)
        size = write_parquet(inserted, files[-1])
        actions.append(
            {
                "add": {
                    "path": name,
                    "partitionValues": {},
                    "size": size,
                    "modificationTime": now,
                    "dataChange": True,
                    "stats": stats_json(inserted, stats_columns(configuration, schema)),
                }
            }
        )
    if not actions:
        empty = {"num_target_rows_deleted": 0, "num_target_rows_inserted": 0, "num_target_rows_copied": 0}
        return PendingCommit(root, read_version + 1, [], files, empty)
    if configuration.get("delta.enableChangeDataFeed") == "true":
        deleted, read_back = _deleted_rows(root, hits, schema, deleted_total, images, key_columns, wanted)
        changes = pa.concat_tables(
            [
                deleted.append_column("_change_type", pa.array(["delete"] * deleted.num_rows, pa.string())),
                inserted.append_column("_change_type", pa.array(["insert"] * inserted.num_rows, pa.string())),
            ]
        )
        name = f"_change_data/cdc-00000-{uuid.uuid4()}.c000.snappy.parquet"
        files.append(root / name)
        size = write_parquet(changes, files[-1])
        actions.append({"cdc": {"path": name, "partitionValues": {}, "size": size, "dataChange": False}})
    metrics: dict[str, Any] = {
        "num_target_rows_deleted": deleted_total,
        "num_target_rows_inserted": inserted.num_rows,
        "num_target_rows_copied": 0,
        "num_files_with_new_vectors": files_dv,
        "num_files_removed": files_removed,
        "num_files_read_for_the_feed": read_back,
    }
    commit_info: dict[str, Any] = {
        "timestamp": now,
        "operation": "MERGE",
        "operationParameters": {"mergePredicate": "key match, deletion vectors"},
        "readVersion": read_version,
        "isBlindAppend": False,
        "engineInfo": "aag deletion-vector writer",
        "operationMetrics": {k: str(v) for k, v in metrics.items()},
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    return PendingCommit(root, read_version + 1, [{"commitInfo": commit_info}, *actions], files, metrics)
