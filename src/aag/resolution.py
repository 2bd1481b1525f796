"""Resolution (SPEC §4): one winning value per entity and attribute, explained.

Among the *current* edges of all sources for an entity and a rel_type, the
winner has the latest ``updated_at``, then the highest ``confidence``, then the
lowest source priority number, then (a deterministic last resort) the lowest
source name and value id. The ordering lives in :data:`WINNER_ORDER` once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from aag.config import Config
from aag.engine.base import Engine
from aag.identity import SAME_AS_REL

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

# The values of all records of one customer compete: a record's values count for the
# survivor its SAME_AS edge points at (identity), or for itself.
_RANKED = f"""
SELECT c.*, row_number() OVER (
           PARTITION BY entity_id, rel_type ORDER BY {WINNER_ORDER}) AS rank,
       count(*) OVER (PARTITION BY entity_id, rel_type) AS competing_values
FROM (
    SELECT coalesce(m.survivor, e.source_node_id) AS entity_id, e.rel_type, e.target_node_id, n.value,
           e.updated_at, e.confidence, e.source_system, e.source_event_id,
           coalesce(p.priority, 1000000) AS priority
    FROM res_edges e
    JOIN res_nodes n ON n.node_id = e.target_node_id
    LEFT JOIN res_priorities p ON p.source_system = e.source_system
    LEFT JOIN (SELECT source_node_id AS member, target_node_id AS survivor FROM res_edges
               WHERE rel_type = '{SAME_AS_REL}' AND is_current) m ON m.member = e.source_node_id
    WHERE e.is_current AND e.rel_type <> '{SAME_AS_REL}'
) c
"""


def _register(engine: Engine, edges: pa.Table, nodes: pa.Table, config: Config) -> None:
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


def _release(engine: Engine, *extra: str) -> None:
    for name in (*extra, "res_edges", "res_nodes", "res_priorities"):
        engine.drop(name)


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
    _register(engine, edges, nodes, config)
    try:
        return engine.query(_RANKED + " ORDER BY entity_id, rel_type, rank")
    finally:
        _release(engine)


def _winner_column(rel_type: str | None, column: str, sql_type: str) -> str:
    if rel_type is None:  # no source maps this attribute: the column exists, always NULL
        return f"CAST(NULL AS {sql_type})"
    return f"max(CASE WHEN r.rel_type = '{rel_type}' THEN r.{column} END)"


def profile_sql(config: Config, version: int) -> str:
    """SQL pivoting the winners (``res_ranked``) into one row per ``res_customers`` row."""
    rel_of = config.attribute_rel_types()
    cols = ["c.node_id AS customer_id"]
    for attr in CUSTOMER_ATTRIBUTES:
        rel = rel_of.get(attr)
        cols.append(f"{_winner_column(rel, 'value', 'VARCHAR')} AS {attr}")
        if version >= 2:
            cols.append(f"{_winner_column(rel, 'source_system', 'VARCHAR')} AS {attr}_source")
            cols.append(f"{_winner_column(rel, 'updated_at', 'TIMESTAMPTZ')} AS {attr}_updated_at")
    return f"""
SELECT {", ".join(cols)}
FROM res_customers c
LEFT JOIN res_ranked r ON r.entity_id = c.node_id AND r.rank = 1
GROUP BY c.node_id
ORDER BY customer_id
"""


def profiles(
    engine: Engine,
    edges: pa.Table,
    nodes: pa.Table,
    customers: pa.Table,
    config: Config,
    version: int = 2,
) -> pa.Table:
    """Wide profiles (v1: values; v2: plus ``<attr>_source`` and ``<attr>_updated_at``).

    Args:
        engine: Engine to run on.
        edges: Relationships rows of (at least) these customers.
        nodes: Node rows holding at least the edges' targets.
        customers: Table with a ``node_id`` column: the customers to return, one row each.
        config: Registry (attribute → rel_type) and priorities.
        version: Profile version, 1 or 2.
    """
    _register(engine, edges, nodes, config)
    engine.register("res_customers", customers.select(["node_id"]))
    try:
        engine.view("res_ranked", _RANKED)
        return engine.query(profile_sql(config, version))
    finally:
        _release(engine, "res_ranked", "res_customers")


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
    #: Operator decisions about the customer's records (``aag identity``), as sentences.
    identity: list[str] = field(default_factory=list)

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
            "identity": self.identity,
        }


#: Why a competing value lost, in rule order (``kind`` of each loser in an explanation).
LOSS_KINDS = ("agrees", "older", "lower_confidence", "less_trusted", "tie_break")


def _why_lost(winner: dict[str, Any], loser: dict[str, Any]) -> tuple[str, str]:
    """The kind (:data:`LOSS_KINDS`) and the sentence saying why ``loser`` is not the winner."""
    if loser["target_node_id"] == winner["target_node_id"]:
        return "agrees", f"agrees with the winner: {loser['source_system']} holds the same value"
    if loser["updated_at"] < winner["updated_at"]:
        return "older", (
            f"older: this field last changed in {loser['source_system']} at "
            f"{_iso(loser['updated_at'])}, after that {winner['source_system']} "
            f"changed it at {_iso(winner['updated_at'])}"
        )
    if loser["confidence"] < winner["confidence"]:
        return "lower_confidence", (
            # Confidence is stored as FLOAT: 0.8 reads back as 0.800000011920929.
            f"same time, lower confidence ({round(float(loser['confidence']), 4)} < "
            f"{round(float(winner['confidence']), 4)})"
        )
    if loser["priority"] > winner["priority"]:
        return "less_trusted", (
            f"same time and confidence, less trusted source (priority {loser['priority']} "
            f"> {winner['priority']})"
        )
    return "tie_break", "full tie; decided by the deterministic tie-break (source name, then value id)"


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
        kind, why = _why_lost(winner, row) if winner else ("", "")
        losers.append({**_public(row), "kind": kind, "why_lost": why})
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
