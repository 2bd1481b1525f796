"""The embedded engine: DuckDB over Arrow, in this process."""

from __future__ import annotations

import os
import tempfile
import threading

import duckdb
import pyarrow as pa

from aag.engine.base import Capability, Engine

#: DuckDB's memory limit unless configured otherwise.
DEFAULT_MEMORY_LIMIT = "1.25GB"
#: Rows per streamed record batch. The consumer (mostly a delta-rs writer) holds a few
#: batches in flight, so this bounds the stream's share of peak memory: writing 5.5M
#: relationships rows peaked at +0.92 GB with 256k-row batches and +0.51 GB with 64k,
#: at the same speed.
STREAM_BATCH_ROWS = 64 * 1024


_local = threading.local()


def local_connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection for local conversions of Arrow data.

    Only for work that belongs to this process whatever the engine: parsing landed text
    into columns, building the rows a Delta writer takes, writing an export file. The
    batch's computation runs on the session's engine (:class:`~aag.engine.base.Engine`).
    """
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


class DuckDBEngine(Engine):
    """DuckDB in-process; tables are Arrow objects registered zero-copy.

    DuckDB extensions are never loaded: Delta tables reach it as Arrow through
    ``deltalake``, so nothing is downloaded at run time.
    """

    dialect = "duckdb"
    name = "local"
    capabilities = frozenset({Capability.STREAMING_RESULTS})

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET threads = {threads or os.cpu_count() or 2}")
        self.con.execute("SET preserve_insertion_order = false")
        # A bounded memory limit with a spill folder keeps a large batch's peak memory
        # flat (DuckDB spills joins, sorts and temp tables beyond it) instead of growing
        # with the batch. AAG_DUCKDB_MEMORY_LIMIT overrides it (e.g. "8GB").
        limit = memory_limit or os.environ.get("AAG_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
        self.con.execute(f"SET memory_limit = '{limit}'")
        spill = os.path.join(tempfile.gettempdir(), f"aag-duckdb-{os.getpid()}")
        self.con.execute(f"SET temp_directory = '{spill}'")
        self._tables: dict[str, pa.Table | pa.RecordBatchReader] = {}
        self._kinds: dict[str, str] = {}

    def register(self, name: str, table: pa.Table | pa.RecordBatchReader) -> None:
        """Register Arrow data as a view (kept alive until dropped)."""
        self.drop(name)
        self._tables[name] = table
        self.con.register(name, table)
        self._kinds[name] = "arrow"

    def query(self, sql: str) -> pa.Table:
        """Run SQL and fetch an Arrow table."""
        result: pa.Table = self.con.sql(sql).to_arrow_table()
        return result

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Run SQL and stream the result in record batches."""
        return self.con.sql(sql).to_arrow_reader(batch_size=STREAM_BATCH_ROWS)

    def materialize(self, name: str, sql: str) -> None:
        """Create a temp table from SQL."""
        self.drop(name)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._kinds[name] = "table"

    def view(self, name: str, sql: str) -> None:
        """Create a temporary view."""
        self.drop(name)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        self._kinds[name] = "view"

    def rename(self, name: str, new_name: str) -> None:
        """Rename a temp table (no copy)."""
        if self._kinds.get(name) != "table":
            super().rename(name, new_name)
            return
        self.drop(new_name)
        self.con.execute(f"ALTER TABLE {name} RENAME TO {new_name}")
        self._kinds[new_name] = self._kinds.pop(name)

    def drop(self, name: str) -> None:
        """Drop a registered table, view or temp table."""
        kind = self._kinds.pop(name, None)
        if kind == "arrow":
            self.con.unregister(name)
            del self._tables[name]
        elif kind == "table":
            self.con.execute(f"DROP TABLE IF EXISTS {name}")
        elif kind == "view":
            self.con.execute(f"DROP VIEW IF EXISTS {name}")

    def close(self) -> None:
        """Close the connection."""
        self.con.close()
