"""Where the graph lives: the two Delta tables plus the absorbed-event log.

A :class:`GraphStore` is thin on purpose: it knows how to *scan* its tables (as
Arrow streams the engine filters) and how to *commit* a batch's change. What to
read and what to write is decided by the rules, in the engine. The Delta store
is the product; the memory store holds the same tables as Arrow so the rule
tests can run on any engine without a table format.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from sqlglot import exp

from aag.delta import DeltaIO, join
from aag.engine.duckdb import local_connection
from aag.faults import crash_point
from aag.model import EDGE_EVENTS, NODES, RELATIONSHIPS
from aag.rules import FLAT_EDGES, ISO_FORMAT, flatten_sql
from aag.selection import EdgeSelection, NodeSelection, columns_sql, render


def flatten_edges(relationships: pa.Table | pa.RecordBatchReader, where: str = "") -> pa.Table:
    """Relationships rows → flat edges (:data:`aag.rules.FLAT_EDGES`)."""
    con = local_connection()
    con.register("rel_src", relationships)
    try:
        sql = flatten_sql("rel_src") + (f" WHERE {where}" if where else "")
        out: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister("rel_src")
    return out.cast(FLAT_EDGES)


#: Lineage keys of a version's ``properties``, in map order. Open versions carry the last
#: two; closed versions all five (as :func:`aag.rules.unflatten_sql` writes them).
#: Delta table property naming the columns whose file statistics are kept.
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
#: Statistics columns of ``relationships``: ids, types and times (see :meth:`DeltaGraphStore.create`).
RELATIONSHIP_STATS_COLUMNS = "source_node_id,target_node_id,rel_type,updated_at,source_system"

_LINEAGE_KEYS = ("valid_to", "closed_by", "closed_by_event", "source_field", "batch_id")
_OPEN_KEYS = 2
#: Rows per relationships batch handed to the writer. delta-rs keeps a number of batches in
#: flight, so smaller ones bound that memory: 5.5M rows peaked at +0.97 GB in 64k-row
#: batches and +0.48 GB in 16k-row ones, at the same speed.
_UNFLATTEN_ROWS = 16 * 1024


def unflatten_batch(flat: pa.RecordBatch) -> pa.RecordBatch:
    """Flat edges (:data:`aag.rules.FLAT_EDGES`) → relationships rows, built in Arrow.

    Equal to :func:`aag.rules.unflatten_sql` row for row (a test holds them together), and
    about twice as fast for a large append: a per-row ``MAP(...)`` in SQL cost more than
    encoding the rest of the row.
    """
    if flat.schema != FLAT_EDGES:  # e.g. from an engine with other string or time types
        flat = flat.cast(FLAT_EDGES)
    n = flat.num_rows
    kept = [flat.column(f.name) for f in RELATIONSHIPS if f.name != "properties"]
    if flat.column("valid_to").null_count == n:
        # Open versions only (every batch of an initial load): the same two keys in every
        # row, so the layout is fixed and only the values are gathered.
        offsets, keys, order = _open_layout(n)
        values = pa.concat_arrays([flat.column(k) for k in _LINEAGE_KEYS[-_OPEN_KEYS:]]).take(order)
        properties = pa.MapArray.from_arrays(
            offsets, keys, values, type=RELATIONSHIPS.field("properties").type
        )
        return pa.RecordBatch.from_arrays([*kept, properties], schema=RELATIONSHIPS)
    closed = flat.column("valid_to").is_valid().to_numpy(zero_copy_only=False)
    slots = len(_LINEAGE_KEYS)
    slot = np.broadcast_to(np.arange(slots), (n, slots))
    present = closed[:, None] | (slot >= slots - _OPEN_KEYS)
    # The values of every slot side by side (slot j of row i at j*n + i), then picked in
    # row order for the slots each row carries.
    stamp = pc.strftime(flat.column("valid_to"), format=ISO_FORMAT.replace(".%f", ""))
    columns = [stamp, *(flat.column(k) for k in _LINEAGE_KEYS[1:])]
    values = pa.concat_arrays([c.cast(pa.string()) for c in columns])
    picked = (slot * n + np.arange(n)[:, None])[present]
    offsets = np.concatenate(([0], np.cumsum(present.sum(axis=1)))).astype(np.int32)
    properties = pa.MapArray.from_arrays(
        pa.array(offsets),
        pa.array(_LINEAGE_KEYS).take(pa.array(slot[present])),
        values.take(pa.array(picked)),
        type=RELATIONSHIPS.field("properties").type,
    )
    return pa.RecordBatch.from_arrays([*kept, properties], schema=RELATIONSHIPS)


@functools.lru_cache(maxsize=4)
def _open_layout(n: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Offsets, keys and value order of ``n`` open versions' maps (cached: batches repeat sizes)."""
    offsets = pa.array(np.arange(0, _OPEN_KEYS * n + 1, _OPEN_KEYS, dtype=np.int32))
    keys = pa.array(_LINEAGE_KEYS[-_OPEN_KEYS:] * n, pa.string())
    # Row i's values sit at i (first key) and n + i (second key) of the concatenated columns.
    order = pa.array(np.stack([np.arange(n), np.arange(n) + n], axis=1).ravel())
    return offsets, keys, order


def relationships_stream(flat: pa.RecordBatchReader, *more: Any) -> pa.RecordBatchReader:
    """Relationships rows from a stream of flat edges, then from further row streams.

    Args:
        flat: Flat edges (:data:`aag.rules.FLAT_EDGES`).
        more: Zero-argument callables opening streams of relationships rows; each is
            opened only after the one before it is read to the end (an engine may hold
            one open result at a time).
    """

    def batches() -> Any:
        for batch in flat:
            for start in range(0, batch.num_rows, _UNFLATTEN_ROWS):
                yield unflatten_batch(batch.slice(start, _UNFLATTEN_ROWS))
        for opener in more:
            for batch in opener():
                yield batch.cast(RELATIONSHIPS)

    return pa.RecordBatchReader.from_batches(RELATIONSHIPS, batches())


#: Arrow data a store hands to the engine or receives from it: a table, or a stream that
#: is read once.
Scan: TypeAlias = Any


def _open(data: Scan) -> Scan:
    # A change may carry a zero-argument callable that opens its stream only when the
    # store is ready to read it (one open engine result at a time).
    return data() if callable(data) else data


def as_table(data: Scan, schema: pa.Schema) -> pa.Table:
    """Collect a table or stream (or a callable opening one) into a table of ``schema``."""
    data = _open(data)
    if isinstance(data, pa.RecordBatchReader):
        data = data.read_all()
    return data.cast(schema)


def as_scan(data: Scan, schema: pa.Schema) -> Scan:
    """A table or stream (or a callable opening one) cast to ``schema``, not collected."""
    return _open(data).cast(schema)


@dataclass(frozen=True)
class ChangeSql:
    """The same change as canonical SQL over the engine tables that hold it.

    A store whose tables live in the engine's own catalog commits from these queries
    without moving rows out of the engine (see :class:`aag.spark_store.SparkTableGraphStore`).
    """

    nodes: str
    replace_keys: str
    edge_rows: str
    log_append: str


@dataclass
class GraphChange:
    """Everything one batch writes to the graph.

    Attributes:
        nodes: New node rows (:data:`aag.model.NODES`). This and the other row sets are a
            table, a stream, or a zero-argument callable that opens a stream.
        replace_keys: Edge keys whose stored rows are all replaced.
        edge_rows: Relationships rows to write (table or stream): the full row set of every
            replaced key plus rows of keys new to the graph.
        log_append: Absorbed events for the ``edge_events`` log (table or stream).
        counts: Row counts of ``nodes``, ``edge_rows`` and ``log_append`` (streams cannot
            be counted before they are written).
        metadata: Commit metadata (batch id, file).
        sql: The change as SQL inside the engine that planned it (None when the change
            was built from Arrow data alone).
    """

    nodes: Scan
    replace_keys: pa.Table
    edge_rows: Scan
    log_append: Scan
    counts: dict[str, int]
    metadata: dict[str, Any] = field(default_factory=dict)
    sql: ChangeSql | None = None


@dataclass
class CommitStats:
    """What a commit wrote."""

    nodes_written: int = 0
    edge_rows_written: int = 0
    edge_rows_rewritten: int = 0
    log_rows_written: int = 0


class GraphStore(ABC):
    """Scans and commits the graph tables."""

    @abstractmethod
    def scan_relationships(self, entities: pa.Table) -> Scan:
        """Relationships rows of at least these entities (``source_node_id`` column).

        A store may return more (the engine filters); returning fewer breaks the rules.
        """

    @abstractmethod
    def scan_edge_events(self, entities: pa.Table) -> Scan:
        """Absorbed events of at least these entities."""

    @abstractmethod
    def scan_node_ids(self, node_types: list[str]) -> Scan:
        """``node_id`` of every stored node of these types."""

    @abstractmethod
    def scan_edge_versions(self, column: str, ids: pa.Table, rel_types: list[str]) -> Scan:
        """Relationships rows (every version) of these rel_types whose ``column`` is in ``ids``.

        Args:
            column: ``source_node_id`` or ``target_node_id``.
            ids: Table with an ``id`` column.
            rel_types: The rel_types to return.

        A store may return more (the engine filters); returning fewer is a bug.
        """

    def scans_done(self) -> None:  # noqa: B027 - optional hook
        """The scans handed out so far have been read; release what they needed."""

    @abstractmethod
    def commit(self, change: GraphChange) -> CommitStats:
        """Write one batch's change (nodes, then log, then edges)."""

    @abstractmethod
    def nodes(self) -> pa.Table:
        """The whole ``nodes`` table."""

    def nodes_with_ids(self, ids: list[str]) -> set[str]:
        """Which of these node ids the graph holds."""
        found = self.read_nodes(NodeSelection(ids=ids), ["node_id"])
        return {str(v) for v in found.column(0).to_pylist()}

    @abstractmethod
    def read_edges(self, selection: EdgeSelection, columns: Sequence[str] | None = None) -> pa.Table:
        """The ``relationships`` rows a read command selects (these columns, or all)."""

    @abstractmethod
    def read_nodes(self, selection: NodeSelection, columns: Sequence[str] | None = None) -> pa.Table:
        """The ``nodes`` rows a read command selects (these columns, or all)."""

    @abstractmethod
    def relationships(self) -> pa.Table:
        """The whole ``relationships`` table."""

    @abstractmethod
    def edge_events(self) -> pa.Table:
        """The whole absorbed-event log."""


class MemoryGraphStore(GraphStore):
    """The graph as in-memory Arrow tables (tests and engine parity)."""

    def __init__(self) -> None:
        self._nodes = NODES.empty_table()
        self._edges = RELATIONSHIPS.empty_table()
        self._log = EDGE_EVENTS.empty_table()

    def scan_relationships(self, entities: pa.Table) -> Scan:  # noqa: D102
        return self._edges

    def scan_edge_events(self, entities: pa.Table) -> Scan:  # noqa: D102
        return self._log

    def scan_node_ids(self, node_types: list[str]) -> Scan:  # noqa: D102
        return self._nodes.select(["node_id"])

    def scan_edge_versions(self, column: str, ids: pa.Table, rel_types: list[str]) -> Scan:  # noqa: D102
        return self._edges

    def commit(self, change: GraphChange) -> CommitStats:  # noqa: D102
        stats = CommitStats()
        nodes = as_table(change.nodes, NODES)
        self._nodes = pa.concat_tables([self._nodes, nodes])
        stats.nodes_written = nodes.num_rows
        log = as_table(change.log_append, EDGE_EVENTS)
        self._log = pa.concat_tables([self._log, log])
        stats.log_rows_written = log.num_rows
        rows = as_table(change.edge_rows, RELATIONSHIPS)
        if change.replace_keys.num_rows or rows.num_rows:
            replaced = pc.is_in(_edge_key(self._edges), value_set=_edge_key(change.replace_keys))
            kept = self._edges.filter(pc.invert(replaced))
            self._edges = pa.concat_tables([kept, rows])
            stats.edge_rows_written = rows.num_rows
        return stats

    def nodes(self) -> pa.Table:  # noqa: D102
        return self._nodes

    def read_edges(self, selection: EdgeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return _selected(self._edges, selection.mask(self._edges), columns)

    def read_nodes(self, selection: NodeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return _selected(self._nodes, selection.mask(self._nodes), columns)

    def relationships(self) -> pa.Table:  # noqa: D102
        return self._edges

    def edge_events(self) -> pa.Table:  # noqa: D102
        return self._log


class DeltaGraphStore(GraphStore):
    """The graph in Delta tables under ``<warehouse>/silver``."""

    def __init__(self, silver_uri: str, io: DeltaIO) -> None:
        self.io = io
        self._entity_tables: list[str] = []
        self.nodes_uri = join(silver_uri, "nodes")
        self.relationships_uri = join(silver_uri, "relationships")
        self.edge_events_uri = join(silver_uri, "edge_events")

    def create(self) -> list[str]:
        """Create the three tables if missing; returns the ones created."""
        created = []
        # File statistics are kept only for id and type columns: statistics live on in the
        # Delta log after files are vacuumed, and must not hold erased values. No boolean
        # column: Delta-Spark (Databricks) refuses to alter a table that lists one.
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
                STATS_COLUMNS_PROPERTY: RELATIONSHIP_STATS_COLUMNS,
                # The gold build reads which edges changed from the change data feed
                # (as on Databricks, where setup creates the table with it on).
                "delta.enableChangeDataFeed": "true",
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

    def scan_relationships(self, entities: pa.Table) -> Scan:  # noqa: D102
        return self._rows_of(self.relationships_uri, entities)

    def scan_edge_events(self, entities: pa.Table) -> Scan:  # noqa: D102
        return self._rows_of(self.edge_events_uri, entities)

    def scan_edge_versions(self, column: str, ids: pa.Table, rel_types: list[str]) -> Scan:  # noqa: D102
        if column not in ("source_node_id", "target_node_id"):
            raise ValueError(f"cannot scan relationships by {column}")
        quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in rel_types) or "NULL"
        return self._rows_of(
            self.relationships_uri,
            ids.select(["id"]).rename_columns([column]),
            column,
            f"t.rel_type IN ({quoted})",
        )

    def _rows_of(self, uri: str, keys: pa.Table, column: str = "source_node_id", where: str = "TRUE") -> Scan:
        """Rows whose ``column`` is in ``keys``, filtered inside delta-rs's own query engine.

        DataFusion semi-joins against the key list while it scans, decoding the other
        columns only for matching rows (measured ~3x faster than streaming every row into
        DuckDB). DataFusion reads only Delta tables, so the list is written as a small
        temporary Delta table first.
        """
        table = self.io.open(uri)
        if keys.num_rows == 0 or not table.file_uris():
            return self.io.reader(uri, "SELECT * FROM t WHERE FALSE")
        folder = tempfile.mkdtemp(prefix="aag-entities-")
        self._entity_tables.append(folder)
        write_deltalake(folder, keys.select([column]))
        builder = QueryBuilder().register("t", table).register("e", DeltaTable(folder))
        return pa.RecordBatchReader.from_stream(
            builder.execute(f"SELECT t.* FROM t WHERE {where} AND t.{column} IN (SELECT {column} FROM e)")
        )

    def scans_done(self) -> None:  # noqa: D102
        self._drop_entity_tables()

    def _drop_entity_tables(self) -> None:
        while self._entity_tables:
            shutil.rmtree(self._entity_tables.pop(), ignore_errors=True)

    def scan_node_ids(self, node_types: list[str]) -> Scan:  # noqa: D102
        # nodes is partitioned by node_type, so only the touched partitions are read.
        quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in node_types) or "NULL"
        return self.io.reader(self.nodes_uri, f"SELECT node_id FROM t WHERE node_type IN ({quoted})")

    def commit(self, change: GraphChange) -> CommitStats:  # noqa: D102
        # Order matters for crash safety: nodes and the log only ever grow and are
        # de-duplicated on read, so writing them before the edges means a re-run
        # after a crash at any point converges to the same tables.
        stats = CommitStats()
        meta = change.metadata
        counts = change.counts
        if counts.get("nodes"):
            self.io.append(self.nodes_uri, as_scan(change.nodes, NODES), meta)
            stats.nodes_written = counts["nodes"]
        crash_point("nodes-committed")
        if counts.get("log"):
            self.io.append(self.edge_events_uri, as_scan(change.log_append, EDGE_EVENTS), meta)
            stats.log_rows_written = counts["log"]
        crash_point("log-committed")
        if change.replace_keys.num_rows == 0 and counts.get("edges"):
            # Only keys new to the graph: a plain append, no file is rewritten.
            self.io.append(self.relationships_uri, as_scan(change.edge_rows, RELATIONSHIPS), meta)
            stats.edge_rows_written = counts["edges"]
        elif change.replace_keys.num_rows:
            metrics = self.io.replace_keys(
                self.relationships_uri,
                change.replace_keys.select(["source_node_id", "rel_type", "source_system"]),
                as_table(change.edge_rows, RELATIONSHIPS),
                meta,
            )
            stats.edge_rows_written = counts.get("edges", 0)
            stats.edge_rows_rewritten = int(metrics.get("num_target_rows_copied", 0))
        crash_point("edges-committed")
        return stats

    def nodes(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.nodes_uri).cast(NODES)

    def read_edges(self, selection: EdgeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return _typed(self._read(self.relationships_uri, selection.condition(), columns), RELATIONSHIPS)

    def read_nodes(self, selection: NodeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return _typed(self._read(self.nodes_uri, selection.condition(), columns), NODES)

    def _read(self, uri: str, condition: exp.Expr, columns: Sequence[str] | None) -> pa.Table:
        # delta-rs's DataFusion reads PostgreSQL-style SQL.
        return self.io.read(uri, columns_sql(columns, "postgres"), render(condition, "postgres"))

    def relationships(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.relationships_uri).cast(RELATIONSHIPS)

    def edge_events(self) -> pa.Table:  # noqa: D102
        return self.io.read(self.edge_events_uri).cast(EDGE_EVENTS)


def _edge_key(table: pa.Table) -> pa.Array | pa.ChunkedArray:
    """The edge key K as one string per row (Arrow joins take no map columns)."""
    parts = [table.column(c).cast(pa.string()) for c in ("source_node_id", "rel_type", "source_system")]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Read columns with the table schema's types (stores differ in string and time types)."""
    return table.cast(pa.schema([schema.field(name) for name in table.column_names]))


def _selected(table: pa.Table, mask: pa.Array | pa.ChunkedArray, columns: Sequence[str] | None) -> pa.Table:
    kept = table.filter(mask)
    return kept.select(list(columns)) if columns is not None else kept
