"""Thin helpers over delta-rs: open, read through DataFusion, write, merge.

Table URIs are passed to delta-rs unchanged, so ``s3://``, ``abfss://`` and
``gs://`` work wherever delta-rs has credentials (``storage_options``); only
the local file system is exercised in tests.

Reads go through delta-rs's own query engine (``QueryBuilder``) and arrive as
Arrow record batches, which DuckDB then scans; no DuckDB extension is needed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, QueryBuilder, WriterProperties, write_deltalake
from deltalake import Field as DeltaField
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from aag.errors import ConflictError, WarehouseError

#: Row groups of 64k rows: delta-rs buffers a whole row group per file before encoding it, so
#: this bounds a large append's memory (measured: 10M relationships rows peak at +1.1 GB with
#: 128k-row groups instead of +2.1 GB with the default; 5.5M rows from 64k-row batches at
#: +0.51 GB with 64k-row groups vs +0.68 GB with 128k) and is no slower.
#: Snappy, Spark's and Delta's usual codec: given writer properties, delta-rs writes
#: *uncompressed* Parquet unless told otherwise. Measured on this project's loads: a 1M-
#: contact warehouse after three batches is 4.47 GB uncompressed, 1.64 GB with snappy and
#: 0.88 GB with zstd-1; the initial load takes the same time with any of them, but every
#: copy-on-write MERGE re-encodes the files it touches, and the five-source demo world
#: ingested at 34.7k (none), 33.2k (LZ4), 32.1k (snappy) and 28.5-29.9k (zstd-1) events/s.
WRITER = WriterProperties(max_row_group_size=64 * 1024, compression="SNAPPY")
TARGET_FILE_SIZE = 128 * 1024 * 1024


def is_local(uri: str) -> bool:
    """Whether a URI is a local path (no ``scheme://`` other than ``file://``)."""
    return "://" not in uri or uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join URI parts with ``/`` without touching the scheme."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


class DeltaIO:
    """Opens and writes the warehouse's Delta tables with the same storage options."""

    def __init__(self, storage_options: Mapping[str, str] | None = None) -> None:
        self.storage_options = dict(storage_options or {})

    def exists(self, uri: str) -> bool:
        """Whether a Delta table exists at ``uri``."""
        return bool(DeltaTable.is_deltatable(uri, storage_options=self.storage_options or None))

    def open(self, uri: str) -> DeltaTable:
        """Open a Delta table or raise a one-line :class:`WarehouseError`."""
        try:
            return DeltaTable(uri, storage_options=self.storage_options or None)
        except TableNotFoundError as exc:
            raise WarehouseError(f"no Delta table at {uri} (run 'aag init')") from exc
        except (DeltaError, OSError) as exc:
            raise WarehouseError(f"cannot open Delta table {uri}: {exc}") from exc

    def create(
        self,
        uri: str,
        schema: pa.Schema,
        partition_by: list[str] | None = None,
        configuration: Mapping[str, str | None] | None = None,
    ) -> bool:
        """Create an empty table if none exists; returns whether it was created."""
        if self.exists(uri):
            return False
        with _commit_errors(uri):
            write_deltalake(
                uri,
                schema.empty_table(),
                mode="ignore",
                partition_by=partition_by,
                configuration=configuration,
                storage_options=self.storage_options or None,
            )
        return True

    def add_missing_columns(self, uri: str, schema: pa.Schema) -> None:
        """Add the (nullable) columns of ``schema`` the table lacks, in one commit if any."""
        table = self.open(uri)
        have = set(table.schema().to_arrow().names)
        missing = [f for f in schema if f.name not in have]
        if missing:
            with _commit_errors(uri):
                table.alter.add_columns([DeltaField.from_arrow(f.with_nullable(True)) for f in missing])

    def version(self, uri: str) -> int | None:
        """The table's current version (``None`` if there is no table)."""
        return int(self.open(uri).version()) if self.exists(uri) else None

    def restore(self, uri: str, version: int, metadata: Mapping[str, Any] | None = None) -> None:
        """Make ``version`` the table's content again, in one new commit."""
        with _commit_errors(uri):
            self.open(uri).restore(version, commit_properties=_props(metadata))

    def reader(self, uri: str, sql: str, name: str = "t") -> pa.RecordBatchReader:
        """Stream the result of a DataFusion query over one table named ``name``."""
        builder = QueryBuilder().register(name, self.open(uri))
        return pa.RecordBatchReader.from_stream(builder.execute(sql))

    def read(self, uri: str, columns: str = "*", where: str = "") -> pa.Table:
        """Read a table (optionally some columns, optionally filtered) into memory."""
        sql = f"SELECT {columns} FROM t" + (f" WHERE {where}" if where else "")  # noqa: S608 - callers pass constant columns and lit/in_list-quoted filters
        return self.reader(uri, sql).read_all()

    def append(
        self,
        uri: str,
        data: pa.Table | pa.RecordBatchReader,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Append rows (a table, or a stream written as it is read) in one commit."""
        if isinstance(data, pa.Table) and data.num_rows == 0:
            return
        with _commit_errors(uri):
            write_deltalake(
                uri,
                data,
                mode="append",
                storage_options=self.storage_options or None,
                commit_properties=_props(metadata),
                writer_properties=WRITER,
                target_file_size=TARGET_FILE_SIZE,
            )

    def replace_where(
        self,
        uri: str,
        data: pa.Table | pa.RecordBatchReader,
        predicate: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Atomically replace the rows matching ``predicate`` with ``data`` (one commit)."""
        with _commit_errors(uri):
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                predicate=predicate,
                storage_options=self.storage_options or None,
                commit_properties=_props(metadata),
                writer_properties=WRITER,
                target_file_size=TARGET_FILE_SIZE,
            )

    def replace_keys(
        self,
        uri: str,
        keys: pa.Table,
        rows: pa.Table,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Replace every row whose key (the columns of ``keys``) is listed, in one MERGE.

        The source carries two kinds of rows: delete markers (one per key) that match
        and delete the stored rows, and the new rows, which never match and are
        inserted. Only files holding a listed key are rewritten.

        Returns:
            delta-rs merge metrics.
        """
        if keys.num_rows == 0 and rows.num_rows == 0:
            return {}
        key_cols = keys.column_names
        markers = keys.append_column("_aag_op", pa.array(["delete"] * keys.num_rows, pa.string()))
        inserts = rows.append_column("_aag_op", pa.array(["insert"] * rows.num_rows, pa.string()))
        # Delete markers carry only the key, so every other column must be nullable here.
        inserts = inserts.cast(pa.schema([f.with_nullable(True) for f in inserts.schema]))
        source = pa.concat_tables([inserts, markers], promote_options="default")
        match = " AND ".join(f"t.{c} = s.{c}" for c in key_cols)
        with _commit_errors(uri):
            metrics: dict[str, Any] = (
                self.open(uri)
                .merge(
                    source,
                    predicate=f"{match} AND s._aag_op = 'delete'",
                    source_alias="s",
                    target_alias="t",
                    commit_properties=_props(metadata),
                    # The rewritten files stream out in bounded row groups (the default
                    # buffers a million rows per group, which dominated peak memory).
                    writer_properties=WRITER,
                )
                .when_matched_delete()
                .when_not_matched_insert(
                    updates={c: f"s.{c}" for c in rows.column_names},
                    predicate="s._aag_op = 'insert'",
                )
                .execute()
            )
        return metrics


def delete_matching(io: DeltaIO, uri: str, keys: pa.Table, metadata: Mapping[str, Any] | None = None) -> int:
    """Delete rows whose columns equal a row of ``keys`` (MERGE ... WHEN MATCHED DELETE).

    Unlike a predicate delete, the values never appear in the commit's logged
    predicate, which is what erasure needs. Returns the number of rows deleted.
    """
    if keys.num_rows == 0 or not io.exists(uri):
        return 0
    match = " AND ".join(f"t.{c} = s.{c}" for c in keys.column_names)
    with _commit_errors(uri):
        metrics = (
            io.open(uri)
            .merge(
                keys,
                predicate=match,
                source_alias="s",
                target_alias="t",
                commit_properties=_props(metadata),
                writer_properties=WRITER,
                # Must stay streamed (delta-rs's default): otherwise delta-rs prunes files by
                # the source's value ranges and logs them in the commit's predicate, which
                # outlives vacuum (caught by tests/faults/test_erasure.py).
                streamed_exec=True,
            )
            .when_matched_delete()
            .execute()
        )
    return int(metrics.get("num_target_rows_deleted", 0))


def _props(metadata: Mapping[str, Any] | None) -> CommitProperties | None:
    if not metadata:
        return None
    return CommitProperties(custom_metadata={k: str(v) for k, v in metadata.items()})


@contextlib.contextmanager
def _commit_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except CommitFailedError as exc:
        raise ConflictError(
            f"another writer committed to {uri} first; nothing was changed, retry: {exc}"
        ) from exc
    except (OSError, DeltaError) as exc:
        # A full disk, a read-only or vanished folder, a lost connection: one line naming
        # the table. Delta commits are atomic, so the table is at its last good version.
        raise WarehouseError(f"cannot write {uri}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def now_utc() -> pa.Scalar:
    """The current time as an Arrow UTC timestamp scalar."""
    return pa.scalar(int(time.time() * 1_000_000), pa.timestamp("us", tz="UTC"))


CHANGE_FEED_PROPERTY = "delta.enableChangeDataFeed"


@contextmanager
def change_feed_paused(io: DeltaIO, uri: str) -> Iterator[None]:
    """Commits made inside leave no change data files (GDPR erasure).

    With the change data feed on, a delete writes the deleted rows to ``_change_data``,
    a file the table's latest version references, so ``VACUUM`` keeps it: an erasure's
    own feed would keep the erased values. The feed is switched off around the block
    and on again after it (the caller holds the writer lock).
    """
    table = io.open(uri)
    was_on = table.metadata().configuration.get(CHANGE_FEED_PROPERTY) == "true"
    if was_on:
        table.alter.set_table_properties({CHANGE_FEED_PROPERTY: "false"})
    try:
        yield
    finally:
        if was_on:
            io.open(uri).alter.set_table_properties({CHANGE_FEED_PROPERTY: "true"})
