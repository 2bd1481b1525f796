"""Identity outside a batch: the warehouse's identity settings, and re-linking records.

An operator decision (:mod:`aag.identity.overrides`) changes clusters without any new
field event, so the records it names are re-linked on their own: their clusters are
recomputed by the same identity step a batch runs (:func:`aag.identity.resolve_identity`,
with the records as its touched set) and the ``SAME_AS`` change is committed like a
batch's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from aag.engine.base import Engine
from aag.errors import InputError, WarehouseError
from aag.graph.store import GraphChange, GraphStore
from aag.graph.warehouse import Warehouse
from aag.identity import (
    ID_KEYS,
    ID_ROWS,
    IdentitySettings,
    identity_settings,
    release_identity,
    resolve_identity,
)
from aag.identity.overrides import (
    Action,
    Decision,
    append_decision,
    canonical_record,
    decision_now,
    entity_of,
    overrides_path,
    read_decisions,
    rules_in_force,
)
from aag.model import EDGE_EVENTS, NODES

_TEMP = ("relink_entities", "relink_store", "relink_rows", "relink_batch", "relink_keys", "relink_new")


def warehouse_overrides(warehouse: Warehouse) -> Path | None:
    """The warehouse's identity decisions file (None for a warehouse on an object store)."""
    return overrides_path(warehouse.uri) if warehouse.local else None


def warehouse_identity(warehouse: Warehouse, entity_type: str) -> IdentitySettings | None:
    """Identity rules of ``entity_type`` in this warehouse, operator decisions included."""
    return identity_settings(warehouse.config, entity_type, warehouse_overrides(warehouse))


def relink(
    engine: Engine, store: GraphStore, settings: IdentitySettings, entity_ids: list[str], meta: dict[str, str]
) -> dict[str, int]:
    """Recompute the clusters of these records and commit the ``SAME_AS`` change.

    Args:
        engine: Compute engine.
        store: The graph.
        settings: Identity rules with the decisions in force.
        entity_ids: Records whose clusters a decision changed.
        meta: Commit metadata.

    Returns:
        Identity counts: records examined, links written, links ended.
    """
    entities = pa.table({"source_node_id": pa.array(sorted(set(entity_ids)), pa.string())})
    try:
        engine.register("relink_entities", entities)
        engine.register_scan("relink_store", store.scan_relationships(entities))
        engine.materialize(
            "relink_rows",
            "SELECT * FROM relink_store WHERE source_node_id IN (SELECT source_node_id FROM relink_entities)",
        )
        store.scans_done()
        # No field event: the batch writes no row and replaces no key of its own.
        engine.materialize("relink_batch", "SELECT * FROM relink_rows WHERE FALSE")
        engine.materialize(
            "relink_keys", "SELECT source_node_id, rel_type, source_system FROM relink_rows WHERE FALSE"
        )
        engine.materialize("relink_new", "SELECT source_node_id AS node_id FROM relink_entities WHERE FALSE")
        result = resolve_identity(
            engine,
            store,
            settings,
            "relink_entities",
            "relink_batch",
            "relink_keys",
            "relink_rows",
            "relink_new",
            touched="relink_entities",
        )
        store.scans_done()
        change = GraphChange(
            nodes=NODES.empty_table(),
            replace_keys=engine.query(f"SELECT * FROM {ID_KEYS}"),
            edge_rows=engine.query(f"SELECT * FROM {ID_ROWS}"),
            log_append=EDGE_EVENTS.empty_table(),
            counts={"nodes": 0, "edges": result.rows, "log": 0},
            metadata=dict(meta),
        )
        try:
            store.commit(change)
        except ValueError as exc:  # a store that commits only SQL-planned batches
            raise WarehouseError(f"cannot re-link records in this store: {exc}") from exc
    finally:
        store.scans_done()
        release_identity(engine)
        for name in _TEMP:
            engine.drop(name)
    return {"records_examined": result.closure, "links_written": result.rows, "links_ended": result.keys}


def decide(
    warehouse: Warehouse,
    engine: Engine,
    action: Action,
    records: list[str],
    note: str = "",
    customer_of_second: list[str] | None = None,
) -> dict[str, Any]:
    """Record an operator decision about two records and re-link them at once.

    The caller holds the warehouse's writer lock.

    ``unlink`` splits the first record off the second record's customer: it is kept apart
    from the second record and from every other record of that customer
    (``customer_of_second``), one pair row each, since records tied only through the
    value the two share could otherwise pull it back in. ``undo`` withdraws the whole
    decision the pair belongs to (every pair of the first record stamped with the same
    time).

    Args:
        warehouse: A local warehouse.
        engine: Compute engine.
        action: ``unlink`` (never one customer), ``link`` (always one) or ``undo``.
        records: Exactly two ``SOURCE:OBJECT:ID`` records, both in the graph.
        note: Why (kept in the decisions file and shown by ``explain``).
        customer_of_second: For ``unlink``: the records of the second record's customer.

    Returns:
        The decision as stored and the identity counts of the re-link.

    Raises:
        InputError: Not two different records, a record unknown to the config or the graph,
            records of different entity types, or an undo with nothing to undo.
        WarehouseError: A warehouse on an object store (decisions live in its config folder).
    """
    path = warehouse_overrides(warehouse)
    if path is None:
        raise WarehouseError("identity decisions are kept in a local warehouse's config folder")
    if len(records) != 2:
        raise InputError(f"name exactly two records (--record twice), got {len(records)}")
    config = warehouse.config
    first, second = (canonical_record(config, r) for r in records)
    if first == second:
        raise InputError(f"{first}: a record is always one customer with itself")
    (type_a, entity_a), (type_b, entity_b) = entity_of(config, first), entity_of(config, second)
    if type_a != type_b:
        raise InputError(
            f"{first} is a {type_a} record and {second} a {type_b} record: only records of one type link"
        )
    known = warehouse.graph.nodes_with_ids([entity_a, entity_b])
    for record, entity in ((first, entity_a), (second, entity_b)):
        if entity not in known:
            raise InputError(f"{record}: no such record in the graph")
    in_force = rules_in_force(config, read_decisions(path))
    pair = tuple(sorted((first, second)))
    partners = [second]
    if action == "undo":
        mine = [r for r in in_force if (r.record_a, r.record_b) == pair]
        if not mine:
            raise InputError(f"no decision about {first} and {second} is in force: nothing to undo")
        stamp = mine[0].decided_at
        partners = sorted(
            {
                r.record_b if r.record_a == first else r.record_a
                for r in in_force
                if r.decided_at == stamp and first in (r.record_a, r.record_b)
            }
            | {second}
        )
    elif action == "unlink":
        others = {canonical_record(config, r) for r in customer_of_second or []}
        partners = sorted((others | {second}) - {first})
    decision = decision_now(action, first, second, note)
    touched = {entity_a, entity_b}
    for partner in partners:
        append_decision(path, Decision(action, first, partner, decision.decided_at, note))
        touched.add(entity_of(config, partner)[1])
    settings = warehouse_identity(warehouse, type_a)
    counts: dict[str, int] = {}
    if settings is not None:
        counts = relink(engine, warehouse.graph, settings, sorted(touched), {"aag.identity": action})
    return {
        "action": action,
        "records": [first, second],
        "pairs": [[first, p] for p in partners],
        "decided_at": decision.decided_at,
        "note": note,
        "identity": counts,
    }
