"""Abstract engine: run canonical SQL over registered Arrow tables."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from aag.engine.dialect import CANONICAL_DIALECT

__all__ = ["CANONICAL_DIALECT", "Capability", "Engine", "SqlScan"]


class Capability(enum.Enum):
    """What an engine can do beyond running SQL."""

    #: Results can be streamed back in batches instead of one table.
    STREAMING_RESULTS = "streaming_results"
    #: Tables of the engine's own catalog can be queried by name and written with
    #: :meth:`Engine.execute` and :meth:`Engine.execute_native` (Spark: the session
    #: catalog; Unity Catalog on Databricks).
    #: A store living there hands the engine :class:`SqlScan` instead of Arrow data.
    CATALOG_TABLES = "catalog_tables"
    #: ``MERGE INTO`` works on catalog tables (Delta: Databricks, or Spark with Delta Lake).
    MERGE = "merge"


@dataclass(frozen=True)
class SqlScan:
    """Rows a store reads inside the engine: canonical SQL over catalog tables.

    A store whose tables live in the engine's own catalog returns this from its scans,
    so the rows never leave the engine (engines need :attr:`Capability.CATALOG_TABLES`).
    """

    sql: str


class Engine(ABC):
    """Runs AAG's SQL. Implementations keep no business logic."""

    #: sqlglot dialect name of the engine.
    dialect: str = CANONICAL_DIALECT
    #: Short engine name for messages and benchmarks.
    name: str = "abstract"
    capabilities: frozenset[Capability] = frozenset()

    @abstractmethod
    def register(self, name: str, table: pa.Table | pa.RecordBatchReader) -> None:
        """Make Arrow data queryable as ``name`` (replacing any previous one).

        A record batch reader can be consumed once: query it once.
        """

    def register_scan(self, name: str, scan: object) -> None:
        """Make a store's scan queryable as ``name``: Arrow data, or a :class:`SqlScan`.

        Raises:
            TypeError: If the scan is SQL and the engine has no catalog of its own.
        """
        if isinstance(scan, SqlScan):
            if Capability.CATALOG_TABLES not in self.capabilities:
                raise TypeError(f"the {self.name} engine cannot read catalog tables (scan {name})")
            self.view(name, scan.sql)
        else:
            self.register(name, scan)

    def execute(self, sql: str) -> None:
        """Run one canonical statement for its effect (transpiled like every query).

        Only engines with :attr:`Capability.CATALOG_TABLES` write tables this way.
        """
        raise NotImplementedError(f"the {self.name} engine does not run statements on catalog tables")

    def execute_native(self, sql: str) -> None:
        """Run one statement written in the engine's own dialect (:attr:`dialect`), as it is.

        For the statements that have no canonical form, such as Delta DDL (``USING DELTA``,
        ``CLUSTER BY``, ``TBLPROPERTIES``) or Spark's ``CREATE TABLE ... USING PARQUET AS``;
        everything else goes through :meth:`execute`.
        """
        raise NotImplementedError(f"the {self.name} engine does not run statements on catalog tables")

    @abstractmethod
    def query(self, sql: str) -> pa.Table:
        """Run canonical SQL and return the result as an Arrow table."""

    def stream(self, sql: str) -> pa.RecordBatchReader:
        """Run canonical SQL and return the result as a stream (read it before the next query).

        Engines with :attr:`Capability.STREAMING_RESULTS` produce batches as they are read;
        others collect the result first.
        """
        return self.query(sql).to_reader()

    @abstractmethod
    def materialize(self, name: str, sql: str) -> None:
        """Run canonical SQL once and keep the result queryable as ``name``."""

    @abstractmethod
    def view(self, name: str, sql: str) -> None:
        """Name a query without running it (a temporary view)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Forget a registered or materialized table (no error if absent)."""

    def rename(self, name: str, new_name: str) -> None:
        """Give the materialized table ``name`` the name ``new_name`` (replacing it).

        A loop that rebuilds a work table from itself materializes into a scratch name
        and renames; engines where a materialization costs a job (Spark) re-point the
        name instead of copying the rows again.
        """
        self.materialize(new_name, exp.select("*").from_(name).sql())
        self.drop(name)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
