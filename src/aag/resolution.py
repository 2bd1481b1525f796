"""Resolution (SPEC §4): one winning value per entity and attribute, explained.

Among the *current* edges of all sources for an entity and a rel_type, the
winner has the latest ``updated_at``, then the highest ``confidence``, then the
lowest source priority number, then (a deterministic last resort) the lowest
source name and value id. The ordering lives in :data:`WINNER_ORDER` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from aag.config import Config
from aag.engine.base import Engine

#: Canonical customer attributes (SPEC §6), in profile column order.
CUSTOMER_ATTRIBUTES: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "street",
    "city",
    "postal_code",
    "country",
    "email_marketing_consent",
)

#: The one ordering rule; dbt's ``resolve_winner`` macro holds the same list.
WINNER_ORDER = "updated_at DESC, confidence DESC, priority ASC, source_system ASC, target_node_id ASC"

RULE_TEXT = (
    "latest updated_at (the field's own change time) wins; ties go to higher confidence, "
    "then the more trusted source (lower priority number), then source name and value id"
)

_RANKED = f"""
SELECT c.*, row_number() OVER (
           PARTITION BY entity_id, rel_type ORDER BY {WINNER_ORDER}) AS rank,
       count(*) OVER (PARTITION BY entity_id, rel_type) AS competing_values
FROM (
    SELECT e.source_node_id AS entity_id, e.rel_type, e.target_node_id, n.value,
           e.updated_at, e.confidence, e.source_system, e.source_event_id,
           coalesce(p.priority, 1000000) AS priority
    FROM res_edges e
    JOIN res_nodes n ON n.node_id = e.target_node_id
    LEFT JOIN res_priorities p ON p.source_system = e.source_system
    WHERE e.is_current
) c
"""


def ranked_values(engine: Engine, edges: pa.Table, nodes: pa.Table, config: Config) -> pa.Table:
    """Every current value of every entity × rel_type, ranked (rank 1 = winner).

    Args:
        engine: Engine to run on.
        edges: Relationships rows (any superset of what is needed).
        nodes: Node rows holding at least the edges' targets.
        config: Supplies source priorities.

    Returns:
        Columns ``entity_id, rel_type, target_node_id, value, updated_at, confidence,
        source_system, source_event_id, priority, rank, competing_values``.
    """
    engine.register(
        "res_edges",
        edges.select(
            [
                "source_node_id",
                "target_node_id",
                "rel_type",
                "updated_at",
                "confidence",
                "is_current",
                "source_system",
                "source_event_id",
            ]
        ),
    )
    engine.register("res_nodes", nodes.select(["node_id", "value"]))
    engine.register("res_priorities", config.priority_table())
    try:
        return engine.query(_RANKED + " ORDER BY entity_id, rel_type, rank")
    finally:
        for name in ("res_edges", "res_nodes", "res_priorities"):
            engine.drop(name)


def profile_rows(
    ranked: pa.Table, config: Config, entity_ids: list[str], version: int = 2
) -> list[dict[str, Any]]:
    """Wide profiles (v1: values; v2: plus ``<attr>_source`` and ``<attr>_updated_at``)."""
    rel_of = config.attribute_rel_types()
    attr_of_rel = {rel: attr for attr, rel in rel_of.items()}
    winners: dict[str, dict[str, dict[str, Any]]] = {}
    for row in ranked.filter(pa.compute.equal(ranked.column("rank"), 1)).to_pylist():
        attr = attr_of_rel.get(row["rel_type"])
        if attr:
            winners.setdefault(row["entity_id"], {})[attr] = row
    out = []
    for entity in entity_ids:
        record: dict[str, Any] = {"customer_id": entity}
        found = winners.get(entity, {})
        for attr in CUSTOMER_ATTRIBUTES:
            win = found.get(attr)
            record[attr] = win["value"] if win else None
            if version >= 2:
                record[f"{attr}_source"] = win["source_system"] if win else None
                record[f"{attr}_updated_at"] = win["updated_at"] if win else None
        out.append(record)
    return out


@dataclass
class Explanation:
    """Why an attribute of an entity has the value it has."""

    customer_id: str
    attribute: str
    rel_type: str
    rule: str
    winner: dict[str, Any] | None
    losers: list[dict[str, Any]]
    history: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "customer_id": self.customer_id,
            "attribute": self.attribute,
            "rel_type": self.rel_type,
            "rule": self.rule,
            "winner": self.winner,
            "losers": self.losers,
            "history": self.history,
        }


def _why_lost(winner: dict[str, Any], loser: dict[str, Any]) -> str:
    if loser["target_node_id"] == winner["target_node_id"]:
        return f"agrees with the winner: {loser['source_system']} holds the same value"
    if loser["updated_at"] < winner["updated_at"]:
        return (
            f"older: this field last changed in {loser['source_system']} at "
            f"{_iso(loser['updated_at'])}, after that {winner['source_system']} "
            f"changed it at {_iso(winner['updated_at'])}"
        )
    if loser["confidence"] < winner["confidence"]:
        return f"same time, lower confidence ({loser['confidence']} < {winner['confidence']})"
    if loser["priority"] > winner["priority"]:
        return (
            f"same time and confidence, less trusted source (priority {loser['priority']} "
            f"> {winner['priority']})"
        )
    return "full tie; decided by the deterministic tie-break (source name, then value id)"


def explain(
    ranked: pa.Table, history: pa.Table, customer_id: str, attribute: str, rel_type: str
) -> Explanation:
    """Build the explanation from the ranked current values and the version history.

    Args:
        ranked: Output of :func:`ranked_values` for (at least) this entity.
        history: Every version row (current or not) of this entity and rel_type, with
            its ``value``.
        customer_id: The entity.
        attribute: Canonical attribute name.
        rel_type: Its rel_type.
    """
    rows = [r for r in ranked.to_pylist() if r["entity_id"] == customer_id and r["rel_type"] == rel_type]
    rows.sort(key=lambda r: r["rank"])
    winner = rows[0] if rows else None
    losers = []
    for row in rows[1:]:
        losers.append({**_public(row), "why_lost": _why_lost(winner, row) if winner else ""})
    hist = sorted(history.to_pylist(), key=lambda r: (r["source_system"], r["updated_at"]))
    return Explanation(
        customer_id=customer_id,
        attribute=attribute,
        rel_type=rel_type,
        rule=RULE_TEXT,
        winner={**_public(winner), "why_won": "ranked first by the rule"} if winner else None,
        losers=losers,
        history=[
            {
                "source_system": h["source_system"],
                "value": h["value"],
                "updated_at": h["updated_at"],
                "valid_to": h["valid_to"],
                "is_current": h["is_current"],
                "source_event_id": h["source_event_id"],
                "source_field": h["source_field"],
            }
            for h in hist
        ],
    )


def _iso(value: Any) -> str:
    return str(value.isoformat()).replace("+00:00", "Z")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "value": row["value"],
        "source_system": row["source_system"],
        "updated_at": row["updated_at"],
        "confidence": round(float(row["confidence"]), 4),
        "priority": row["priority"],
        "source_event_id": row["source_event_id"],
    }
