"""Planning a batch's graph change: field events in, graph change out.

The engine-neutral heart of a batch: it runs on any :class:`~aag.graph.store.GraphStore`
and leaves the change in the engine until the store has committed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from aag.engine.base import Engine
from aag.graph.store import ChangeSql, GraphChange, GraphStore, relationships_stream
from aag.identity import ID_KEYS, ID_ROWS, IdentitySettings, release_identity, resolve_identity
from aag.model import EDGE_EVENTS, EDGE_KEY, NODES, RELATIONSHIPS
from aag.rules import FLAT_EDGES, OUT_FLAT, OUT_KEYS, OUT_LOG, OUT_ROWS, apply_edge_rules, release_rule_tables
from aag.sources.base import EVENTS_TABLE, NODES_TABLE

#: Engine view of the batch's nodes that the graph does not hold yet.
NEW_NODES = "batch_new_nodes"
#: Engine table of their ids.
NEW_NODE_IDS = "batch_new_node_ids"


@dataclass
class Plan:
    """What a batch will write (left in the engine), and how the edge rules got there."""

    engine: Engine
    replace_keys: pa.Table
    counts: dict[str, int]
    new_versions: int
    paths: dict[str, int]
    #: Engine tables the change is still computed from (dropped on release).
    inputs: tuple[str, ...] = ()
    #: Whether identity added SAME_AS changes (:data:`aag.identity.ID_ROWS`).
    identity: bool = False
    #: Identity counts for the report (empty when identity did not run).
    identity_counts: dict[str, int] = field(default_factory=dict)

    def change(self, metadata: dict[str, Any] | None = None) -> GraphChange:
        """The change as streams out of the engine, each opened when the store reads it."""
        engine = self.engine
        rows = f"SELECT * FROM {OUT_ROWS}"
        if self.identity:
            rows += f" UNION ALL SELECT * FROM {ID_ROWS}"
        keys = f"SELECT * FROM {OUT_KEYS}"
        if self.identity:
            keys += f" UNION ALL SELECT * FROM {ID_KEYS}"
        flat = f"SELECT {', '.join(FLAT_EDGES.names)} FROM {OUT_FLAT}"
        more = [lambda: engine.stream(f"SELECT * FROM {ID_ROWS}")] if self.identity else []
        return GraphChange(
            nodes=lambda: engine.stream(f"SELECT * FROM {NEW_NODES}"),
            replace_keys=self.replace_keys,
            # The lineage maps are built in Arrow as the rows stream out (see unflatten_batch).
            edge_rows=lambda: relationships_stream(engine.stream(flat), *more),
            log_append=lambda: engine.stream(f"SELECT * FROM {OUT_LOG}"),
            counts=self.counts,
            metadata=dict(metadata or {}),
            # The stored rows of the replaced keys, as the rules read them (SAME_AS keys of
            # records outside the batch are not among them; the store then reads its files).
            replaced_rows=lambda: engine.stream(
                "SELECT r.* FROM existing_rel r WHERE EXISTS (SELECT 1 FROM "
                f"({keys}) k WHERE k.source_node_id = r.source_node_id AND k.rel_type = r.rel_type "
                "AND k.source_system = r.source_system)"
            ),
            sql=ChangeSql(
                nodes=f"SELECT * FROM {NEW_NODES}",
                replace_keys=keys,
                edge_rows=rows,
                log_append=f"SELECT * FROM {OUT_LOG}",
            ),
        )

    def release(self) -> None:
        """Drop the engine tables holding the change (and the batch's inputs)."""
        release_identity(self.engine)
        release_rule_tables(self.engine)
        for name in (NEW_NODES, NEW_NODE_IDS, *self.inputs):
            self.engine.drop(name)


#: Batches with at most this many nodes look their ids up in the store; larger ones read
#: the ids of their node types whole (a lookup list that large costs more to write than
#: the scan it narrows).
LOOKUP_NODE_IDS = 250_000


def empty_change(metadata: dict[str, Any] | None = None) -> GraphChange:
    """A change that writes nothing (a batch without field events)."""
    return GraphChange(
        nodes=NODES.empty_table(),
        replace_keys=EDGE_KEY.empty_table(),
        edge_rows=RELATIONSHIPS.empty_table(),
        log_append=EDGE_EVENTS.empty_table(),
        counts={"nodes": 0, "edges": 0, "log": 0},
        metadata=dict(metadata or {}),
    )


def plan_change(
    engine: Engine,
    store: GraphStore,
    events: str = EVENTS_TABLE,
    nodes: str = NODES_TABLE,
    identity: IdentitySettings | None = None,
    day_precision: Sequence[str] = (),
    repeats: str | None = None,
) -> Plan:
    """Decide what a batch of field events changes in the graph.

    Args:
        engine: Engine running the rules.
        store: Current graph.
        events: Engine table of the batch's field events (:data:`aag.model.FIELD_EVENTS`).
        nodes: Engine table of the node rows they refer to (:data:`aag.model.NODES`), one
            per node id.
        identity: Identity rules of the batch's entity type (none: records are not linked).
        day_precision: Event id prefixes of day-precision sources, whose events finer
            same-day events shadow (:func:`aag.rules.apply_edge_rules`).
        repeats: Engine table of the only entities whose keys may carry several of the
            batch's events, if the extraction knows them (:attr:`aag.sources.base.Extracted.repeats`);
            dropped with the plan.

    Returns:
        The plan: counts, rule paths, and the change left in the engine until
        :meth:`Plan.release`, which also drops ``events`` and ``nodes``.
    """
    temp = (
        "incoming",
        "batch_entities",
        "store_rel",
        "existing_rel",
        "store_log",
        "existing_log",
        "store_node_ids",
        *((repeats,) if repeats else ()),
    )
    try:
        engine.view("incoming", f"SELECT * FROM {events}")
        engine.materialize("batch_entities", f"SELECT DISTINCT source_node_id FROM {events}")
        entities = engine.query("SELECT source_node_id FROM batch_entities")
        # Only the touched entities' history enters the rules; the scans stream through.
        engine.register_scan("store_rel", store.scan_relationships(entities))
        engine.materialize(
            "existing_rel",
            "SELECT * FROM store_rel WHERE source_node_id IN (SELECT source_node_id FROM batch_entities)",
        )
        engine.register_scan("store_log", store.scan_edge_events(entities))
        engine.materialize(
            "existing_log",
            "SELECT * FROM store_log WHERE source_node_id IN (SELECT source_node_id FROM batch_entities)",
        )
        store.scans_done()
        result = apply_edge_rules(engine, day_precision, repeats)
        types = [
            str(t) for t in engine.query(f"SELECT DISTINCT node_type FROM {nodes}").column(0).to_pylist()
        ]
        batch_ids = None
        if engine.query(f"SELECT count(*) AS n FROM {nodes}").column(0)[0].as_py() <= LOOKUP_NODE_IDS:
            # A small batch looks its own node ids up instead of reading every stored id
            # of their types, which grows with the graph.
            batch_ids = engine.query(f"SELECT node_id FROM {nodes}")
        engine.register_scan("store_node_ids", store.scan_node_ids(types, batch_ids))
        engine.materialize(
            NEW_NODE_IDS,
            # NOT EXISTS (ids are never NULL): a hash anti-join on every engine.
            f"SELECT node_id FROM {nodes} n WHERE NOT EXISTS "
            "(SELECT 1 FROM store_node_ids s WHERE s.node_id = n.node_id)",
        )
        store.scans_done()
        # Only the ids are kept: a second copy of the rows (all of them on a first load)
        # would sit in the engine's memory through the commit, where the batch peaks.
        engine.view(NEW_NODES, f"SELECT * FROM {nodes} WHERE node_id IN (SELECT node_id FROM {NEW_NODE_IDS})")
        new_nodes = engine.query(f"SELECT count(*) AS n FROM {NEW_NODE_IDS}").column(0)[0].as_py()
        linked = None
        if identity is not None:
            linked = resolve_identity(
                engine, store, identity, "batch_entities", OUT_FLAT, OUT_KEYS, "existing_rel", NEW_NODE_IDS
            )
            store.scans_done()
        keys_sql = f"SELECT * FROM {OUT_KEYS}"
        if linked is not None:
            keys_sql += f" UNION ALL SELECT * FROM {ID_KEYS}"
        replace_keys = engine.query(keys_sql)
    except BaseException:
        store.scans_done()
        release_identity(engine)
        release_rule_tables(engine)
        for name in (NEW_NODES, NEW_NODE_IDS, *temp, events, nodes):
            engine.drop(name)
        raise
    # The change is still a view over these tables: they live until Plan.release().
    return Plan(
        engine=engine,
        replace_keys=replace_keys,
        counts={
            "nodes": int(new_nodes),
            "edges": result.new_rows + (linked.rows if linked else 0),
            "log": result.log_events,
        },
        new_versions=result.new_versions,
        paths=result.paths,
        inputs=(*temp, events, nodes),
        identity=linked is not None,
        identity_counts={}
        if linked is None
        else {"records_examined": linked.closure, "links_written": linked.rows, "links_ended": linked.keys},
    )
