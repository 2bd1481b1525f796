"""Where the graph lives: the two Delta tables plus the absorbed-event log.

A :class:`GraphStore` gives the rules what they need for the entities a batch
touches, and commits what the rules decided. The Delta store is the product;
the memory store holds the same tables as Arrow and lets the rule tests run
on any engine (local Spark has no Delta jars here).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from aag.delta import DeltaIO, join
from aag.model import EDGE_EVENTS, NODES, RELATIONSHIPS
from aag.rules import FLAT_EDGES

_local = threading.local()


def duck() -> duckdb.DuckDBPyConnection:
    """A per-thread DuckDB connection for storage-format conversions."""
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


_FLATTEN = """
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
       source_system, source_event_id,
       CAST(properties['valid_to'] AS TIMESTAMPTZ) AS valid_to,
       properties['closed_by'] AS closed_by,
       properties['closed_by_event'] AS closed_by_event,
       properties['source_field'] AS source_field,
       properties['batch_id'] AS batch_id
FROM {src}
"""

_UNFLATTEN = """
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
       source_system, source_event_id,
       map_from_entries(list_filter([
           {'key': 'valid_to', 'value': strftime(valid_to, '%Y-%m-%dT%H:%M:%S.%fZ')},
           {'key': 'closed_by', 'value': closed_by},
           {'key': 'closed_by_event', 'value': closed_by_event},
           {'key': 'source_field', 'value': source_field},
           {'key': 'batch_id', 'value': batch_id}], lambda e: e.value IS NOT NULL)) AS properties
FROM flat_edges
ORDER BY source_node_id, rel_type, source_system, updated_at
"""


def flatten_edges(relationships: pa.Table | pa.RecordBatchReader, where: str = "") -> pa.Table:
    """Relationships rows → flat edges (:data:`aag.rules.FLAT_EDGES`)."""
    con = duck()
    con.register("rel_src", relationships)
    try:
        sql = _FLATTEN.format(src="rel_src") + (f" WHERE {where}" if where else "")
        out: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister("rel_src")
    return out.cast(FLAT_EDGES)


def unflatten_edges(flat: pa.Table) -> pa.Table:
    """Flat edges → relationships rows (SPEC §2 schema, lineage in ``properties``)."""
    con = duck()
    con.register("flat_edges", flat.cast(FLAT_EDGES))
    try:
        out: pa.Table = con.sql(_UNFLATTEN).to_arrow_table()
    finally:
        con.unregister("flat_edges")
    return out.cast(RELATIONSHIPS)


@dataclass
class GraphChange:
    """Everything one batch writes to the graph."""

    nodes: pa.Table
    replace_keys: pa.Table
    edge_rows: pa.Table
    log_append: pa.Table
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the batch changes nothing in the graph."""
        return bool(
            self.nodes.num_rows == 0 and self.replace_keys.num_rows == 0 and self.log_append.num_rows == 0
        )


@dataclass
class CommitStats:
    """What a commit wrote."""

    nodes_written: int = 0
    edge_rows_written: int = 0
    edge_rows_rewritten: int = 0
    log_rows_written: int = 0


class GraphStore(ABC):
    """Reads and commits the graph tables."""

    @abstractmethod
    def edges_for(self, entities: pa.Table) -> pa.Table:
        """Flat edges of every key whose ``source_node_id`` is in ``entities``."""

    @abstractmethod
    def log_for(self, entities: pa.Table) -> pa.Table:
        """Absorbed events of those entities."""

    @abstractmethod
    def missing_nodes(self, candidates: pa.Table) -> pa.Table:
        """The candidate node rows whose ``node_id`` is not stored yet."""

    @abstractmethod
    def commit(self, change: GraphChange) -> CommitStats:
        """Write one batch's change (nodes, then log, then edges)."""

    @abstractmethod
    def nodes(self) -> pa.Table:
        """The whole ``nodes`` table."""

    @abstractmethod
    def relationships(self) -> pa.Table:
        """The whole ``relationships`` table."""

    @abstractmethod
    def edge_events(self) -> pa.Table:
        """The whole absorbed-event log."""


def _semi_join(data: pa.Table | pa.RecordBatchReader, keys: pa.Table, column: str) -> pa.Table:
    con = duck()
    con.register("sj_data", data)
    con.register("sj_keys", keys.select([column]))
    try:
        out: pa.Table = con.sql(
            f"SELECT d.* FROM sj_data d WHERE d.{column} IN (SELECT {column} FROM sj_keys)"
        ).to_arrow_table()
    finally:
        con.unregister("sj_data")
        con.unregister("sj_keys")
    return out


def _anti_join(candidates: pa.Table, existing: pa.Table | pa.RecordBatchReader) -> pa.Table:
    con = duck()
    con.register("aj_cand", candidates)
    con.register("aj_have", existing)
    try:
        out: pa.Table = con.sql(
            "SELECT c.* FROM aj_cand c WHERE c.node_id NOT IN (SELECT node_id FROM aj_have)"
        ).to_arrow_table()
    finally:
        con.unregister("aj_cand")
        con.unregister("aj_have")
    return out


class MemoryGraphStore(GraphStore):
    """The graph as in-memory Arrow tables (tests and engine parity)."""

    def __init__(self) -> None:
        self._nodes = NODES.empty_table()
        self._edges = FLAT_EDGES.empty_table()
        self._log = EDGE_EVENTS.empty_table()

    def edges_for(self, entities: pa.Table) -> pa.Table:  # noqa: D102
        return _semi_join(self._edges, entities, "source_node_id").cast(FLAT_EDGES)

    def log_for(self, entities: pa.Table) -> pa.Table:  # noqa: D102
        return _semi_join(self._log, entities, "source_node_id").cast(EDGE_EVENTS)

    def missing_nodes(self, candidates: pa.Table) -> pa.Table:  # noqa: D102
        return _anti_join(candidates, self._nodes.select(["node_id"]))

    def commit(self, change: GraphChange) -> CommitStats:  # noqa: D102
        stats = CommitStats()
        if change.nodes.num_rows:
            self._nodes = pa.concat_tables([self._nodes, change.nodes.cast(NODES)])
            stats.nodes_written = change.nodes.num_rows
        if change.log_append.num_rows:
            self._log = pa.concat_tables([self._log, change.log_append.cast(EDGE_EVENTS)])
            stats.log_rows_written = change.log_append.num_rows
        if change.replace_keys.num_rows or change.edge_rows.num_rows:
            con = duck()
            con.register("m_edges", self._edges)
            con.register("m_keys", change.replace_keys)
            try:
                kept = con.sql(
                    "SELECT e.* FROM m_edges e ANTI JOIN m_keys k "
                    "USING (source_node_id, rel_type, source_system)"
                ).to_arrow_table()
            finally:
                con.unregister("m_edges")
                con.unregister("m_keys")
            self._edges = pa.concat_tables([kept.cast(FLAT_EDGES), change.edge_rows.cast(FLAT_EDGES)])
            stats.edge_rows_written = change.edge_rows.num_rows
        return stats

    def nodes(self) -> pa.Table:  # noqa: D102
        return self._nodes

    def relationships(self) -> pa.Table:  # noqa: D102
        return unflatten_edges(self._edges)

    def edge_events(self) -> pa.Table:  # noqa: D102
        return self._log


class DeltaGraphStore(GraphStore):
    """The graph in Delta tables under ``<warehouse>/silver``."""

    def __init__(self, silver_uri: str, io: DeltaIO) -> None:
        self.io = io
        self.nodes_uri = join(silver_uri, "nodes")
        self.relationships_uri = join(silver_uri, "relationships")
        self.edge_events_uri = join(silver_uri, "edge_events")

    def create(self) -> list[str]:
        """Create the three tables if missing; returns the ones created."""
        created = []
        # File statistics are kept only for id and type columns: statistics live on in the
        # Delta log after files are vacuumed, and must not hold erased values.
        if self.io.create(
            self.nodes_uri,
            NODES,
            partition_by=["node_type"],
            configuration={"delta.dataSkippingStatsColumns": "node_id,created_at"},
        ):
            created.append(self.nodes_uri)
        if self.io.create(
            self.relationships_uri,
            RELATIONSHIPS,
            configuration={
                "delta.dataSkippingStatsColumns": (
                    "source_node_id,target_node_id,rel_type,updated_at,is_current,source_system"
                )
            },
        ):
            created.append(self.relationships_uri)
        if self.io.create(
            self.edge_events_uri,
            EDGE_EVENTS,
            configuration={"delta.dataSkippingStatsColumns": "source_node_id,rel_type,source_system"},
        ):
            created.append(self.edge_events_uri)
        return created

    def edges_for(self, entities: pa.Table) -> pa.Table:  # noqa: D102
        if entities.num_rows == 0:
            return FLAT_EDGES.empty_table()
        reader = self.io.reader(self.relationships_uri, "SELECT * FROM t")
        return flatten_edges(_semi_join(reader, entities, "source_node_id"))

    def log_for(self, entities: pa.Table) -> pa.Table:  # noqa: D102
        if entities.num_rows == 0:
            return EDGE_EVENTS.empty_table()
        reader = self.io.reader(self.edge_events_uri, "SELECT * FROM t")
        return _semi_join(reader, entities, "source_node_id").cast(EDGE_EVENTS)

    def missing_nodes(self, candidates: pa.Table) -> pa.Table:  # noqa: D102
        if candidates.num_rows == 0:
            return candidates
        types = sorted(set(candidates.column("node_type").to_pylist()))
        # nodes is partitioned by node_type, so only the touched partitions are read.
        quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in types)
        reader = self.io.reader(self.nodes_uri, f"SELECT node_id FROM t WHERE node_type IN ({quoted})")
        return _anti_join(candidates, reader)

    def commit(self, change: GraphChange) -> CommitStats:  # noqa: D102
        # Order matters for crash safety: nodes and the log only ever grow and are
        # de-duplicated on read, so writing them before the edges means a re-run
        # after a crash at any point converges to the same tables.
        stats = CommitStats()
        meta = change.metadata
        if change.nodes.num_rows:
            self.io.append(self.nodes_uri, change.nodes.cast(NODES), meta)
            stats.nodes_written = change.nodes.num_rows
        if change.log_append.num_rows:
            self.io.append(self.edge_events_uri, change.log_append.cast(EDGE_EVENTS), meta)
            stats.log_rows_written = change.log_append.num_rows
        if change.replace_keys.num_rows == 0 and change.edge_rows.num_rows:
            # Only keys new to the graph: a plain append, no file is rewritten.
            self.io.append(self.relationships_uri, unflatten_edges(change.edge_rows), meta)
            stats.edge_rows_written = change.edge_rows.num_rows
        elif change.replace_keys.num_rows:
            metrics = self.io.replace_keys(
                self.relationships_uri,
                change.replace_keys.select(["source_node_id", "rel_type", "source_system"]),
                unflatten_edges(change.edge_rows),
                meta,
            )
            stats.edge_rows_written = change.edge_rows.num_rows
            stats.edge_rows_rewritten = int(metrics.get("num_target_rows_copied", 0))
        return stats

    def nodes(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.nodes_uri).cast(NODES)

    def relationships(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.relationships_uri).cast(RELATIONSHIPS)

    def edge_events(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.edge_events_uri).cast(EDGE_EVENTS)
