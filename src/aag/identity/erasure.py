"""What a GDPR erasure of one identity cluster removes, read through any graph store.

One rule for the embedded erase (:func:`aag.service.erasure.erase_customer`) and the
Databricks erase task (:mod:`aag.databricks.erase`): the members' value nodes go unless
another entity points at them too, entities the members point at stay, and rows that
never became records are found by the person's e-mail addresses and phone numbers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aag.config import Config
from aag.graph.delta import now_utc
from aag.graph.store import GraphStore
from aag.ids import record_key
from aag.normalize import split_normaliser
from aag.selection import EdgeSelection, NodeSelection
from aag.sources import extractor_for
from aag.sources.base import SOURCE_RECORD_NODE, SOURCE_RECORD_REL

#: Reads the landed rows of some records of one object (``system, object, record ids``),
#: parsed into the columns its extractor lands; ``None`` when nothing of it was landed.
LandedOf = Callable[[str, str, list[str]], "pa.Table | None"]


@dataclass(frozen=True)
class ErasurePlan:
    """What an erasure of one identity cluster removes from the graph (any engine)."""

    #: Every edge version the members hold as source.
    edges: pa.Table
    #: ``SYSTEM:OBJECT:ID`` of each source record of the cluster.
    records: list[str]
    #: Value nodes another entity also points at: they stay.
    shared: set[str]
    #: The value nodes only the cluster used, then the members themselves.
    drop_nodes: list[str]


def plan_erasure(graph: GraphStore, members: list[str]) -> ErasurePlan:
    """Which nodes and records an erasure of ``members`` removes, read through ``graph``.

    The one rule both the embedded erase and the Databricks erase task follow: the
    members' value nodes go unless another entity points at them too, and entities
    the members point at (the company a contact works at) stay.
    """
    edges = graph.read_edges(EdgeSelection(sources=members))
    targets = sorted(set(edges.column("target_node_id").to_pylist()) - set(members))
    own_records = {str(r["target_node_id"]) for r in edges.to_pylist() if r["rel_type"] == SOURCE_RECORD_REL}
    record_nodes = graph.read_nodes(NodeSelection(ids=own_records))
    records = [r["value"] for r in record_nodes.to_pylist() if r["node_type"] == SOURCE_RECORD_NODE]
    shared: set[str] = set()
    if targets:
        held = graph.read_edges(EdgeSelection(targets=targets), ["source_node_id", "target_node_id"])
        mine = pc.is_in(held.column("source_node_id"), pa.array(members, pa.string()))
        others = held.filter(pc.invert(mine))
        shared = {str(t) for t in others.column("target_node_id").to_pylist()}
    found = graph.read_nodes(NodeSelection(ids=targets, with_value=True), ["node_id"])
    values = {str(v) for v in found.column("node_id").to_pylist()}
    drop_nodes = [t for t in targets if t in values and t not in shared] + members
    return ErasurePlan(edges, records, shared, drop_nodes)


def records_by_object(records: list[str]) -> dict[tuple[str, str], list[str]]:
    """``SYSTEM:OBJECT:ID`` record keys grouped as record ids per ``(system, object)``."""
    by_object: dict[tuple[str, str], list[str]] = {}
    for record in records:
        system, obj, record_id = record.split(":", 2)
        by_object.setdefault((system, obj), []).append(record_id)
    return by_object


def add_related(
    config: Config, by_object: dict[tuple[str, str], list[str]], landed_of: LandedOf
) -> dict[tuple[str, str], pa.Table]:
    """Add the records of other objects that only make sense with these ones.

    SAP's ADR6 e-mail rows of a KNA1 customer are the customer's data too: an object whose
    extractor reads other objects names them (:meth:`~aag.sources.base.Extractor.related_records`).
    ``by_object`` is extended in place.

    Returns:
        The landed rows read on the way, by object (read them once).
    """
    landed: dict[tuple[str, str], pa.Table] = {}
    for (system, obj), record_ids in list(by_object.items()):
        extractor = extractor_for(config.object(system, obj), config)
        rows = landed_of(system, obj, record_ids) if extractor.reads else None
        if rows is None:
            continue
        landed[(system, obj)] = rows
        for other, ids in extractor.related_records(rows).items():
            by_object.setdefault((system, other), []).extend(ids)
    return landed


def needles_for(
    config: Config, graph: GraphStore, plan: ErasurePlan, landed: Mapping[tuple[str, str], pa.Table]
) -> list[str]:
    """The person's e-mail addresses and phone numbers to search raw rows for.

    Both spellings: the graph's normalised values, and the values as the sources sent them
    in the landed rows given (``+49 30 1234567``, ``Jane.Doe@Example.com``). Read before the
    nodes and rows go. Values another entity also holds are left out: a row carrying one
    of them may be someone else's.
    """
    rel_types = identifying_rel_types(config)
    found: set[str] = set()
    node_ids = identifying_node_ids(plan.edges, plan.shared, rel_types)
    if node_ids:
        values = graph.read_nodes(NodeSelection(ids=node_ids), ["value"]).column("value").to_pylist()
        found |= {str(v) for v in values if v}
    for (system, obj), rows in landed.items():
        for name in identifying_fields(config, system, obj, rel_types):
            found |= {str(v).strip() for v in rows.column(name).to_pylist() if v and str(v).strip()}
    return needles_of(found)


#: Normalisers whose values identify a person on their own (an e-mail, a phone number).
IDENTIFYING_NORMALISERS = ("email", "phone")
#: Shorter values are not searched for: they would match unrelated rows.
MIN_NEEDLE = 6


def identifying_rel_types(config: Config) -> set[str]:
    """Relationship types whose values identify a person on their own (e-mail, phone)."""
    rows = [r for spec in config.objects for r in spec.attributes]
    return {r.rel_type for r in rows if split_normaliser(r.normaliser)[0] in IDENTIFYING_NORMALISERS}


def identifying_fields(config: Config, system: str, obj: str, rel_types: set[str]) -> tuple[str, ...]:
    """The source fields of one object that carry those relationship types."""
    spec = config.object(system, obj)
    return tuple(
        r.source_field
        for r in spec.attributes
        if split_normaliser(r.normaliser)[0] in IDENTIFYING_NORMALISERS and r.rel_type in rel_types
    )


def identifying_node_ids(edges: pa.Table, shared: set[str], rel_types: set[str]) -> list[str]:
    """The value nodes of ``edges`` with an identifying type, but those another entity holds."""
    mine = {
        str(r["target_node_id"])
        for r in edges.select(["target_node_id", "rel_type"]).to_pylist()
        if r["rel_type"] in rel_types
    }
    return sorted(mine - shared)


def new_erasure(requested_by: str, customer_id: str) -> dict[str, Any]:
    """The columns every erasure log row of one erasure shares: a new id, now, who, whom."""
    return {
        "erasure_id": str(uuid.uuid4()),
        "erased_at": now_utc().as_py(),
        "requested_by": requested_by,
        "customer_id": customer_id,
    }


def log_rows(
    erasure: dict[str, Any], source_system: str, source_object: str, record_ids: list[str]
) -> list[dict[str, Any]]:
    """Erasure log rows (:data:`aag.model.ERASURES`): one one-way key per record, no value.

    ``erasure`` holds the columns every row of one erasure shares (``erasure_id``,
    ``erased_at``, ``requested_by``, ``customer_id``).
    """
    return [
        {
            **erasure,
            "source_system": source_system,
            "source_object": source_object,
            "record_key": record_key(source_system, source_object, r),
        }
        for r in sorted(set(record_ids))
    ]


def needles_of(found: set[str]) -> list[str]:
    """The values searched for in raw rows: lower-case, none shorter than :data:`MIN_NEEDLE`."""
    return sorted({v.lower() for v in found if len(v) >= MIN_NEEDLE})


__all__ = [
    "IDENTIFYING_NORMALISERS",
    "MIN_NEEDLE",
    "ErasurePlan",
    "LandedOf",
    "add_related",
    "identifying_fields",
    "identifying_node_ids",
    "identifying_rel_types",
    "log_rows",
    "needles_for",
    "needles_of",
    "new_erasure",
    "plan_erasure",
    "records_by_object",
]
