"""A Delta table's snapshot as files, for readers that scan the Parquet files themselves.

The dbt plugin hands DuckDB's Parquet reader the files of a silver snapshot, and the API's
id index reads the files a newer ``nodes`` version added. Both need what the Delta log
says (which files make up a version, their partition values, the rows deletion vectors
mark deleted, the change data feed), and that is the store's knowledge: deltalake is read
here, in the graph store, and nowhere above it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

#: Rows a deletion vector marks deleted: the file's local path and the row's position.
DELETED_SCHEMA = pa.schema([pa.field("path", pa.string()), pa.field("row", pa.int64())])


@dataclass(frozen=True)
class SnapshotFiles:
    """The files of one Delta table version and what a Parquet reader must know of them."""

    #: The version read.
    version: int
    #: The table's schema as Arrow.
    schema: pa.Schema
    #: Partition columns, in the table's order.
    partition_columns: list[str]
    #: Local path of every data file.
    files: list[str]
    #: Per file (same order), its partition values by column.
    partitions: list[dict[str, Any]]
    #: ``path, row`` of each row a deletion vector marks deleted (:data:`DELETED_SCHEMA`).
    deleted: pa.Table


def local_path(uri: str) -> str:
    """A file URI as the local path DuckDB is given (and reports back as ``filename``)."""
    return unquote(uri.removeprefix("file://"))


def _deleted_rows(table: DeltaTable, files: set[str]) -> pa.Table:
    """``path, row`` of every row a deletion vector of the snapshot marks deleted.

    Raises:
        RuntimeError: A vector names a file that is not part of the snapshot (a reader
            would otherwise keep rows the table has deleted).
    """
    parts = []
    for batch in pa.RecordBatchReader.from_stream(table.deletion_vectors()):
        paths = batch.column("filepath").to_pylist()
        masks = batch.column("selection_vector")
        for i, uri in enumerate(paths):
            path = local_path(str(uri))
            if path not in files:
                raise RuntimeError(f"{table.table_uri}: a deletion vector names {path}, not in the snapshot")
            keep = masks[i].values
            # The mask keeps True; a position past its end is kept too (the protocol's rule).
            gone = pc.indices_nonzero(pc.invert(keep.cast(pa.bool_())))
            parts.append(
                pa.table(
                    {"path": pa.array([path] * len(gone), pa.string()), "row": gone.cast(pa.int64())},
                    schema=DELETED_SCHEMA,
                )
            )
    return pa.concat_tables(parts) if parts else DELETED_SCHEMA.empty_table()


def snapshot_files(
    uri: str | DeltaTable, version: int | None = None, refuse: Collection[str] = ()
) -> SnapshotFiles:
    """The files of a Delta table at ``version`` (the latest if ``None``).

    Args:
        uri: Local path of the Delta table, or the table opened (then ``version`` is
            ignored: the opened version is read).
        version: Delta version to read.
        refuse: Reader features the caller cannot honour: a table using one is refused
            before anything else is read.

    Raises:
        RuntimeError: The table uses a refused reader feature, or a deletion vector names a
            file outside the snapshot.
    """
    table = uri if isinstance(uri, DeltaTable) else DeltaTable(uri, version=version)
    features = set(table.protocol().reader_features or [])
    refused = features & set(refuse)
    if refused:
        raise RuntimeError(
            f"{table.table_uri}: Delta reader features {sorted(refused)} are not supported here"
        )
    partition_columns = list(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    files = [local_path(u) for u in table.file_uris()]
    deleted = DELETED_SCHEMA.empty_table()
    if "deletionVectors" in features:
        deleted = _deleted_rows(table, set(files))
    return SnapshotFiles(
        version=int(table.version()),
        schema=pa.schema(table.schema().to_arrow()),
        partition_columns=partition_columns,
        files=files,
        partitions=[{c: action.get(f"partition.{c}") for c in partition_columns} for action in actions],
        deleted=deleted,
    )


def change_feed(uri: str, since: int, until: int, columns: Sequence[str]) -> pa.Table:
    """The change data feed of versions ``since + 1`` to ``until`` (``columns``, change type, version).

    The result has ``columns`` and the feed's ``_change_type`` and ``_commit_version``.

    Raises:
        Exception: delta-rs's error when the feed does not cover the range (switched on
            later, or its files removed by a vacuum).
    """
    table = DeltaTable(uri, version=until)
    feed = table.load_cdf(
        starting_version=since + 1,
        ending_version=until,
        columns=[*columns, "_change_type", "_commit_version"],
    )
    return pa.RecordBatchReader.from_stream(feed).read_all()


def files_of(uri: str, version: int | None = None, partition: tuple[str, str] | None = None) -> set[str]:
    """Data files of a version (relative paths), only those of one partition value if given.

    On an unpartitioned table ``partition`` selects nothing out: every file may hold it.
    """
    actions = pa.table(DeltaTable(uri, version=version).get_add_actions(flatten=True))
    if partition is not None and f"partition.{partition[0]}" in actions.column_names:
        actions = actions.filter(pc.equal(actions.column(f"partition.{partition[0]}"), partition[1]))
    return {str(p) for p in actions.column("path").to_pylist()}
