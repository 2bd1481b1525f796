"""Abstract engine: run canonical SQL over registered Arrow tables."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

import pyarrow as pa

#: The dialect AAG's SQL is written in; other engines transpile from it with sqlglot.
CANONICAL_DIALECT = "duckdb"


class Capability(enum.Enum):
    """What an engine can do beyond running SQL."""

    #: Results can be streamed back in batches instead of one table.
    STREAMING_RESULTS = "streaming_results"


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
