"""The graph as in-memory Arrow tables: the rule and identity tests' store on any engine.

It holds the same three tables as :class:`aag.graph.store.DeltaGraphStore` without a
table format, and returns whole tables from its scans (the engine filters them).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from aag.graph.store import CommitStats, GraphChange, GraphStore, Scan, as_table
from aag.model import EDGE_EVENTS, EDGE_KEY, NODES, RELATIONSHIPS
from aag.selection import EdgeSelection, NodeSelection


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

    def scan_node_ids(self, node_types: list[str], ids: pa.Table | None = None) -> Scan:  # noqa: D102
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


def _edge_key(table: pa.Table) -> pa.Array | pa.ChunkedArray:
    """The edge key K as one string per row (Arrow joins take no map columns)."""
    parts = [table.column(c).cast(pa.string()) for c in EDGE_KEY.names]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _selected(table: pa.Table, mask: pa.Array | pa.ChunkedArray, columns: Sequence[str] | None) -> pa.Table:
    kept = table.filter(mask)
    return kept.select(list(columns)) if columns is not None else kept
