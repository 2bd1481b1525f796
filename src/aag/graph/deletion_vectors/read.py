"""Key-filtered reads of a local Delta table, above all one whose files carry deletion vectors.

delta-rs's DataFusion scan honours deletion vectors, but on such a file it no longer
pushes the key filter into the Parquet reader: every column of every row is decoded, on
one thread. After a merge-on-read commit every file the batch touched has a vector (a
random 1% of entities touches nearly every file), so each later batch's store scans would
cost several times the first one's. Here DuckDB's Parquet reader scans the snapshot's
files instead: it decodes the key column first and the others for matching rows only,
numbers the rows itself, and the positions the vectors mark deleted are dropped. Some
scans are faster here on a table without vectors too; their callers ask for this read
whatever the table holds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa
from deltalake import DeltaTable

from aag.engine.duckdb import local_connection
from aag.graph.files import SnapshotFiles, snapshot_files

#: Rows per record batch of the stream handed to the engine.
BATCH_ROWS = 1 << 17
#: Reader features this module can honour (a table using another one is read by delta-rs).
_READER_FEATURES = {"deletionVectors", "timestampNtz"}


@dataclass
class KeyedRead:
    """An open read: the stream, and how to release the DuckDB cursor producing it."""

    reader: pa.RecordBatchReader
    #: Closes the cursor (once the stream has been read).
    close: Callable[[], None]


def _readable(table: DeltaTable, partition: tuple[str, Collection[str]] | None) -> bool:
    features = set(table.protocol().reader_features or [])
    metadata = table.metadata()
    return (
        features <= _READER_FEATURES
        # Partition values and mapped column names live in the log, not in the files: the
        # files of a partitioned table are chosen by their partition values here.
        and list(metadata.partition_columns) == ([partition[0]] if partition else [])
        and metadata.configuration.get("delta.columnMapping.mode") in (None, "none")
    )


def keyed_rows(
    table: DeltaTable,
    keys: pa.Table,
    column: str,
    where: str,
    select: str,
    without_vectors: bool = False,
    partition: tuple[str, Collection[str]] | None = None,
    files_of: Callable[[DeltaTable], SnapshotFiles] = snapshot_files,
) -> KeyedRead | None:
    """``SELECT {select} FROM t WHERE {where} AND t.{column} IN keys`` over the live rows.

    Args:
        table: An opened local Delta table.
        keys: The keys, in a column named ``column``.
        column: The table's key column.
        where: A further condition on ``t`` (trusted SQL of the caller).
        select: Columns of ``t`` to return, under their own names, after ``DISTINCT`` if
            wanted (trusted SQL of the caller).
        without_vectors: Read here even when no row is hidden (a read DuckDB does faster
            than delta-rs either way).
        partition: The partition column of a partitioned table and the values whose
            files are read (``where`` and ``select`` must not name that column: it is not
            in the files).
        files_of: How the snapshot's files and deleted rows are found (a caller reading
            one version several times passes a cached :func:`snapshot_files`).

    Returns:
        The open read, or ``None`` when the table uses a feature read here would miss, or
        (unless ``without_vectors``) no file of the snapshot has a deletion vector.
    """
    if not _readable(table, partition):
        return None
    has_vectors = "deletionVectors" in (table.protocol().reader_features or [])
    if not has_vectors and not without_vectors:
        return None
    snapshot = files_of(table)
    if snapshot.deleted.num_rows == 0 and not without_vectors:
        return None
    files = snapshot.files
    if partition is not None:
        by, values = partition[0], set(partition[1])
        files = [f for f, p in zip(files, snapshot.partitions, strict=True) if p.get(by) in values]
    if not files:
        return None
    # A cursor of its own: a streaming result ends when its connection runs another query.
    cursor = local_connection().cursor()
    try:
        cursor.register("aag_keyed_keys", keys.select([column]))
        cursor.register("aag_keyed_deleted", snapshot.deleted)
        projection = "t.* EXCLUDE (filename, file_row_number)" if select == "t.*" else select
        live = (
            "NOT EXISTS (SELECT 1 FROM aag_keyed_deleted d "
            "WHERE d.path = t.filename AND d.row = t.file_row_number)"
            if snapshot.deleted.num_rows
            else "TRUE"
        )
        # column, where and select are the caller's constants; the files are a parameter.
        sql = (
            f"SELECT {projection} FROM (SELECT * FROM read_parquet($files, filename = true, "  # noqa: S608
            f"file_row_number = true, union_by_name = true) WHERE {column} IN "
            f"(SELECT {column} FROM aag_keyed_keys)) t WHERE {where} AND {live}"
        )
        reader = cursor.sql(sql, params={"files": files}).to_arrow_reader(BATCH_ROWS)
        schema = pa.schema([snapshot.schema.field(name) for name in reader.schema.names])
        return KeyedRead(reader.cast(schema), cursor.close)
    except BaseException:
        cursor.close()
        raise
