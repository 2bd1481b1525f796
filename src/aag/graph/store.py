"""Where the graph lives: the two Delta tables plus the absorbed-event log.

A :class:`GraphStore` is thin on purpose: it knows how to *scan* its tables (as
Arrow streams the engine filters) and how to *commit* a batch's change. What to
read and what to write is decided by the rules, in the engine. The Delta store
is the product; the memory store (:mod:`aag.graph.memory`) holds the same tables
as Arrow so the rule tests can run on any engine without a table format. Flat edges become
relationships rows in :mod:`aag.graph.flat_edges` (its names still import from here).
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from sqlglot import exp

from aag.engine.dialect import in_list
from aag.faults import crash_point
from aag.graph import deletion_vectors
from aag.graph.deletion_vectors import KeyedRead
from aag.graph.delta import DeltaIO, is_local, join
from aag.graph.files import SnapshotFiles, local_path, snapshot_files
from aag.graph.flat_edges import flatten_edges as flatten_edges
from aag.graph.flat_edges import relationships_stream as relationships_stream
from aag.graph.flat_edges import unflatten_batch as unflatten_batch
from aag.model import EDGE_EVENTS, EDGE_KEY, NODES, RELATIONSHIPS
from aag.selection import EdgeSelection, NodeSelection, columns_sql, render

#: Delta table property naming the columns whose file statistics are kept.
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
#: Statistics columns of ``relationships``: ids, types and times (see :meth:`DeltaGraphStore.create`).
RELATIONSHIP_STATS_COLUMNS = "source_node_id,target_node_id,rel_type,updated_at,source_system"


#: Arrow data a store hands to the engine or receives from it: a table, a stream that is
#: read once, or a zero-argument callable opening either when the reader is ready for it.
#: (pyarrow ships no type information, so mypy checks the callable's shape only.)
Scan: TypeAlias = "pa.Table | pa.RecordBatchReader | Callable[[], pa.Table | pa.RecordBatchReader]"
#: A scan once opened.
Opened: TypeAlias = "pa.Table | pa.RecordBatchReader"


def _open(data: Scan) -> Opened:
    # A change may carry a zero-argument callable that opens its stream only when the
    # store is ready to read it (one open engine result at a time).
    return data() if callable(data) else data


def as_table(data: Scan, schema: pa.Schema) -> pa.Table:
    """Collect a table or stream (or a callable opening one) into a table of ``schema``."""
    data = _open(data)
    if isinstance(data, pa.RecordBatchReader):
        data = data.read_all()
    return data.cast(schema)


def as_scan(data: Scan, schema: pa.Schema) -> Opened:
    """A table or stream (or a callable opening one) cast to ``schema``, not collected."""
    return _open(data).cast(schema)


@dataclass(frozen=True)
class ChangeSql:
    """The same change as canonical SQL over the engine tables that hold it.

    A store whose tables live in the engine's own catalog commits from these queries
    without moving rows out of the engine (see :class:`aag.databricks.store.SparkTableGraphStore`).
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
        replaced_rows: The stored rows of (at least) ``replace_keys`` as the batch read
            them, if it has them: a store that records the change feed itself takes the
            deleted rows' images from here instead of reading them again (None: it reads).
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
    replaced_rows: Scan | None = None


@dataclass
class CommitStats:
    """What a commit wrote."""

    nodes_written: int = 0
    edge_rows_written: int = 0
    edge_rows_rewritten: int = 0
    log_rows_written: int = 0


#: What :meth:`GraphStore.scan_edge_versions` returns at least: the links, no payload.
EDGE_VERSION_COLUMNS = (
    "source_node_id",
    "target_node_id",
    "rel_type",
    "updated_at",
    "is_current",
    "source_system",
)


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
    def scan_node_ids(self, node_types: list[str], ids: pa.Table | None = None) -> Scan:
        """``node_id`` of the stored nodes of these types.

        Without ``ids``, every one; with ``ids`` (a ``node_id`` column), at least those
        among ``ids``: a store may return more (the engine filters), never fewer.
        """

    @abstractmethod
    def scan_edge_versions(self, column: str, ids: pa.Table, rel_types: list[str]) -> Scan:
        """Relationships rows (every version) of these rel_types whose ``column`` is in ``ids``.

        The rows hold at least the columns of :data:`EDGE_VERSION_COLUMNS`.

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


class DeltaGraphStore(GraphStore):
    """The graph in Delta tables under ``<warehouse>/silver``."""

    def __init__(self, silver_uri: str, io: DeltaIO, deletion_vectors: bool = False) -> None:
        self.io = io
        #: Commit replaced edge versions merge-on-read (:mod:`aag.graph.deletion_vectors`)
        #: instead of delta-rs's copy-on-write MERGE; local tables only.
        self.deletion_vectors = deletion_vectors and is_local(silver_uri)
        self._entity_tables: list[str] = []
        self._keyed_reads: list[KeyedRead] = []
        #: The last snapshot read per table: a batch's several scans of one version
        #: decode its vectors once.
        self._snapshots: dict[str, SnapshotFiles] = {}
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
        quoted = in_list(rel_types)
        return self._rows_of(
            self.relationships_uri,
            ids.select(["id"]).rename_columns([column]),
            column,
            f"t.rel_type IN ({quoted})",
            ", ".join(f"t.{c}" for c in EDGE_VERSION_COLUMNS),
            # DuckDB's reader takes a third of delta-rs's time for this scan, vectors or not.
            without_vectors=True,
        )

    def _rows_of(
        self,
        uri: str,
        keys: pa.Table,
        column: str = "source_node_id",
        where: str = "TRUE",
        select: str = "t.*",
        without_vectors: bool = False,
        partition: tuple[str, list[str]] | None = None,
    ) -> Scan:
        """Rows whose ``column`` is in ``keys``, filtered inside delta-rs's own query engine.

        DataFusion semi-joins against the key list while it scans (measured ~3x faster
        than streaming every row into DuckDB). DataFusion reads only Delta tables, so the
        list is written as a small temporary Delta table first. A local table whose files
        carry deletion vectors is read by :func:`deletion_vectors.keyed_rows` instead
        (delta-rs decodes every row of such a file), as is every local table when
        ``without_vectors`` says DuckDB reads this scan faster anyway. ``partition`` (the
        partition column and its values, which ``where`` must also name) lets it read a
        partitioned table's files of those values.
        """
        table = self.io.open(uri)
        if keys.num_rows == 0 or not table.file_uris():
            return self.io.reader(uri, f"SELECT {select} FROM t WHERE FALSE")  # noqa: S608 - select is a constant of this class
        if is_local(uri):
            # A partitioned table's files are chosen by their values: ``where`` names the
            # partition column, which the files do not hold.
            local_where = "TRUE" if partition else where
            keyed = deletion_vectors.keyed_rows(
                table, keys, column, local_where, select, without_vectors, partition, self._snapshot
            )
            if keyed is not None:
                self._keyed_reads.append(keyed)
                return keyed.reader
        folder = tempfile.mkdtemp(prefix="aag-entities-")
        self._entity_tables.append(folder)
        write_deltalake(folder, keys.select([column]))
        builder = QueryBuilder().register("t", table).register("e", DeltaTable(folder))
        # The join's key filter is pushed into the Parquet scan, which then decodes the
        # other columns of matching rows only (deletion vectors are still honoured).
        builder.execute("SET datafusion.execution.parquet.pushdown_filters = true").read_all()
        # column and select are constants of this class; the filter is in_list-quoted.
        sql = f"SELECT {select} FROM t WHERE {where} AND t.{column} IN (SELECT {column} FROM e)"  # noqa: S608
        return pa.RecordBatchReader.from_stream(builder.execute(sql))

    def _snapshot(self, table: DeltaTable) -> SnapshotFiles:
        """:func:`snapshot_files` of ``table``, reused while its version and files are those read."""
        known = self._snapshots.get(table.table_uri)
        # The file names (unique per write) guard against a table re-created at that path.
        if (
            known is None
            or known.version != table.version()
            or known.files != [local_path(u) for u in table.file_uris()]
        ):
            known = self._snapshots[table.table_uri] = snapshot_files(table)
        return known

    def scans_done(self) -> None:  # noqa: D102
        self._drop_entity_tables()

    def _drop_entity_tables(self) -> None:
        while self._keyed_reads:
            self._keyed_reads.pop().close()
        while self._entity_tables:
            shutil.rmtree(self._entity_tables.pop(), ignore_errors=True)

    def scan_node_ids(self, node_types: list[str], ids: pa.Table | None = None) -> Scan:  # noqa: D102
        # nodes is partitioned by node_type, so only the touched partitions are read.
        quoted = in_list(node_types)
        if ids is not None:
            # A semi-join while scanning: only the matches leave the reader. DuckDB's reader
            # of the partitions' files takes under half of delta-rs's time.
            types = f"t.node_type IN ({quoted})"
            return self._rows_of(
                self.nodes_uri,
                ids.select(["node_id"]),
                "node_id",
                types,
                "t.node_id",
                without_vectors=True,
                partition=("node_type", node_types),
            )
        return self.io.reader(self.nodes_uri, f"SELECT node_id FROM t WHERE node_type IN ({quoted})")  # noqa: S608 - node types via in_list

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
        elif change.replace_keys.num_rows and self.deletion_vectors:
            replaced = change.replaced_rows
            metrics = deletion_vectors.replace_keys(
                self.relationships_uri,
                change.replace_keys.select(EDGE_KEY.names),
                as_table(change.edge_rows, RELATIONSHIPS),
                meta,
                images=None if replaced is None else as_table(replaced, RELATIONSHIPS),
            )
            stats.edge_rows_written = counts.get("edges", 0)
        elif change.replace_keys.num_rows:
            metrics = self.io.replace_keys(
                self.relationships_uri,
                change.replace_keys.select(EDGE_KEY.names),
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


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Read columns with the table schema's types (stores differ in string and time types)."""
    return table.cast(pa.schema([schema.field(name) for name in table.column_names]))
