"""Why a customer looks as it does: profiles, explanations, the graph around it, raw rows.

:class:`Lineage` builds on :class:`~aag.service.reads.GraphReads`: the resolved profile, the
winner, losers and history of one attribute, the current graph around an entity with
its winning edges marked, and the bronze rows every source sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aag.config import ObjectSpec
from aag.errors import InputError, NotFoundError
from aag.graph.store import flatten_edges
from aag.identity.overrides import read_decisions, rules_in_force
from aag.identity.relink import warehouse_overrides
from aag.resolution import profiles, ranked_values
from aag.resolution.explanation import Explanation, explain
from aag.selection import EdgeSelection
from aag.service.reads import GraphReads
from aag.sources import objects_belonging_to
from aag.sources.base import SOURCE_RECORD_REL


class Lineage:
    """Explanations of one customer's values, read through :class:`~aag.service.reads.GraphReads`."""

    def __init__(self, reads: GraphReads) -> None:
        self.reads = reads

    def profile(self, customer_id: str, version: int = 2) -> dict[str, Any]:
        """The resolved profile of one customer (v1, v2 or v3 shape).

        Any record id of the customer (a merged-away customer id included) gives the
        profile of the cluster's survivor, whose id is the profile's ``customer_id``.
        """
        survivor, edges, nodes = self.reads.customer_edges(customer_id)
        one = pa.table({"node_id": pa.array([survivor], pa.string())})
        table = profiles(self.reads.engine(), edges, nodes, one, self.reads.warehouse.config, version)
        row: dict[str, Any] = table.to_pylist()[0]
        return row

    def explain(self, customer_id: str, attribute: str) -> Explanation:
        """Winner, competing values and version history of one attribute."""
        rel_types = self.reads.warehouse.config.attribute_rel_types()
        if attribute not in rel_types:
            raise NotFoundError(f"unknown attribute {attribute!r}; known: {', '.join(sorted(rel_types))}")
        rel_type = rel_types[attribute]
        survivor, edges, nodes = self.reads.customer_edges(customer_id)
        ranked = ranked_values(self.reads.engine(), edges, nodes, self.reads.warehouse.config)
        flat = flatten_edges(edges)
        values = dict(
            zip(nodes.column("node_id").to_pylist(), nodes.column("value").to_pylist(), strict=True)
        )
        mine = flat.filter(pc.equal(flat.column("rel_type"), rel_type))
        history = mine.append_column(
            "value",
            pa.array([values.get(t) for t in mine.column("target_node_id").to_pylist()], pa.string()),
        )
        rule = self.reads.warehouse.config.survivorship_rule(attribute)
        result = explain(ranked, history, survivor, attribute, rel_type, rule)
        result.identity = self.identity_decisions(self.reads.members(survivor))
        return result

    def identity_decisions(self, entity_ids: list[str] | None = None) -> list[str]:
        """Operator decisions in force (about any of these records, if given), as sentences."""
        path = warehouse_overrides(self.reads.warehouse)
        if path is None:
            return []
        rules = rules_in_force(self.reads.warehouse.config, read_decisions(path))
        wanted = set(entity_ids) if entity_ids is not None else None
        return [r.sentence() for r in rules if wanted is None or r.entity_a in wanted or r.entity_b in wanted]

    def neighbourhood(self, entity_id: str, hops: int = 2, max_nodes: int = 500) -> dict[str, Any]:
        """The current graph around an entity, up to ``hops`` entity-to-entity steps.

        Every reached entity brings its value nodes and outgoing edges; walking goes
        along edges in both directions (an asset points at its company), but never
        through a value node: a shared value is not a path between customers.

        Args:
            entity_id: Any entity node id (a customer's record ids reach its survivor).
            hops: Entity-to-entity steps to follow (0 = the entity and its values).
            max_nodes: Stop expanding once this many nodes are collected.

        Returns:
            ``{"root", "nodes": [...], "edges": [...], "truncated"}``; edges are current
            edges only, with source system, field and field time.
        """
        self.reads.warehouse.require()
        if hops < 0 or hops > 5:
            raise InputError("hops must be between 0 and 5")
        if not self.reads.customer_exists(entity_id):
            raise NotFoundError(f"no entity {entity_id!r} in the graph")
        root = self.reads.survivor(entity_id)
        seen: set[str] = set()
        cluster = {root, *self.reads.members(root)}
        frontier = set(cluster)
        edges: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        truncated = False
        for step in range(hops + 1):
            frontier -= seen
            if not frontier:
                break
            seen |= frontier
            found = self.reads.graph.read_edges(EdgeSelection(ends=frontier, current=True))
            keep = ["source_node_id", "target_node_id", "rel_type", "source_system", "source_field"]
            rows = (
                flatten_edges(found)
                .select([*keep, "updated_at", "confidence", "source_event_id"])
                .to_pylist()
            )
            ends = {r["source_node_id"] for r in rows} | {r["target_node_id"] for r in rows}
            reached = self.reads.nodes_by_id(sorted(ends - seen)).to_pylist()
            nxt = {str(n["node_id"]) for n in reached if n["value"] is None}
            too_many = len(seen) + len(nxt) > max_nodes
            last = step == hops or too_many
            truncated = truncated or (too_many and step < hops)
            for row in rows:
                # Entities one step beyond the last hop stay out, with their edges.
                if last and (row["source_node_id"] in nxt or row["target_node_id"] in nxt):
                    continue
                key = (row["source_node_id"], row["target_node_id"], row["rel_type"], row["source_system"])
                edges.setdefault(key, row)
            if last:
                break
            frontier = nxt
        ids = sorted({e[0] for e in edges} | {e[1] for e in edges} | {root})
        # One row per node, in id order: a store may hold a node twice and return rows in any order.
        found = self.reads.nodes_by_id(ids).select(["node_id", "node_type", "value"]).to_pylist()
        nodes = sorted({str(n["node_id"]): n for n in found}.values(), key=lambda n: str(n["node_id"]))
        winners = self.winning_edges(root)
        edge_rows = [
            {
                **row,
                # Only the customer's own edges can hold its winners (a company's city is not).
                "winner": row["source_node_id"] in cluster
                and (row["target_node_id"], row["source_system"]) in winners.get(row["rel_type"], set()),
            }
            for _, row in sorted(edges.items())
        ]
        return {"root": root, "hops": hops, "nodes": nodes, "edges": edge_rows, "truncated": truncated}

    def winning_edges(self, customer_id: str) -> dict[str, set[tuple[str, str]]]:
        """rel_type → {(value node id, source)} of the customer's winning values."""
        survivor, edges, nodes = self.reads.customer_edges(customer_id)
        ranked = ranked_values(self.reads.engine(), edges, nodes, self.reads.warehouse.config)
        out: dict[str, set[tuple[str, str]]] = {}
        for row in ranked.to_pylist():
            if row["entity_id"] == survivor and row["rank"] == 1:
                out.setdefault(row["rel_type"], set()).add((row["target_node_id"], row["source_system"]))
        return out

    def bronze_rows(self, customer_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The raw rows every source sent about a customer's records, as landed in bronze.

        Args:
            customer_id: Any record id of the customer.
            limit: At most this many rows per bronze table (the latest first).

        Returns:
            One dict per row: source system and object, record id, batch, landing time,
            and the row exactly as received (parsed JSON).
        """
        _, edges, _ = self.reads.customer_edges(customer_id)
        record_ids = [
            str(r["target_node_id"]) for r in edges.to_pylist() if r["rel_type"] == SOURCE_RECORD_REL
        ]
        records = [r["value"] for r in self.reads.nodes_by_id(record_ids).to_pylist() if r["value"]]
        wh = self.reads.warehouse
        out: list[dict[str, Any]] = []
        by_object: dict[tuple[str, str], set[str]] = {}
        for record in records:
            system, obj, record_id = str(record).split(":", 2)
            by_object.setdefault((system, obj), set()).add(record_id)
            for owned in objects_belonging_to(wh.config, system, obj):
                by_object.setdefault((system, owned.source_object), set()).add(record_id)
        for (system, obj), ids in sorted(by_object.items()):
            rows = wh.bronze_of(system, obj, ids, ["_record_id", "_batch_id", "_landed_at", "_raw"])
            if rows is None:
                continue
            ordered = sorted(rows.to_pylist(), key=lambda r: r["_landed_at"], reverse=True)[:limit]
            spec = wh.config.object(system, obj)
            for r in ordered:
                raw = json.loads(r["_raw"])
                out.append(
                    {
                        "source_system": system,
                        "source_object": obj,
                        "record_id": r["_record_id"],
                        "batch_id": r["_batch_id"],
                        "landed_at": r["_landed_at"],
                        "record_time_field": spec.time_field,
                        "record_time": _record_time(spec, raw),
                        "row": raw,
                    }
                )
        return out


def _record_time(spec: ObjectSpec, raw: Any) -> str | None:
    """The record-level time of a raw row as ISO 8601 UTC, by the registry's ``record_time`` row.

    ``None`` when the object has no record time (ADR6) or the row's value does not parse
    (such rows are quarantined; the bronze row still shows what came in).
    """
    value = raw.get(spec.time_field) if spec.time_field and isinstance(raw, dict) else None
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if spec.time_format == "yyyymmdd":
            stamp = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        else:
            stamp = datetime.fromisoformat(text)
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except ValueError:
        return None
    fraction = f".{stamp.microsecond:06d}" if stamp.microsecond else ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
