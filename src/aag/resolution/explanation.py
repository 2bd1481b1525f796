"""Why an attribute has its value: the winner, each loser's reason, the history.

:func:`explain` reads the ranking of :func:`aag.resolution.ranked_values` and names, for
every other value, the key of the ordering that put it behind the winner, in the order
the ranking applies the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from aag.config import SOURCE_LIST_SEPARATOR, SurvivorshipRule
from aag.resolution.winners import PLACEHOLDER_VALUES, RULE_TEXT, UNLISTED_POSITION


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
    #: The survivorship strategy of the attribute (``survivorship.csv``).
    strategy: str = "latest"
    #: The part of the rule that put the winner before the best other value
    #: (:data:`DECIDING_KEYS`); ``unopposed`` when no allowed source holds another value,
    #: ``not_allowed`` when only sources the rule does not allow hold one, ``no_value``.
    decided_by: str = "unopposed"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "customer_id": self.customer_id,
            "attribute": self.attribute,
            "rel_type": self.rel_type,
            "strategy": self.strategy,
            "rule": self.rule,
            "decided_by": self.decided_by,
            "winner": self.winner,
            "losers": self.losers,
            "history": self.history,
            "identity": self.identity,
        }


#: Why a competing value lost (``kind`` of each loser in an explanation): first the
#: reasons of the strategies, then those of the latest rule, in rule order.
LOSS_KINDS = (
    "agrees",
    "not_allowed",
    "later_in_source_order",
    "less_frequent",
    "newer",
    "placeholder",
    "older",
    "lower_confidence",
    "less_trusted",
    "tie_break",
)


#: Loss kind of the runner-up → the part of the rule that decided (``decided_by``).
DECIDING_KEYS = {
    "later_in_source_order": "source_order",
    "less_frequent": "most_frequent",
    "newer": "oldest",
    "placeholder": "latest_non_empty",
    "older": "latest",
    "lower_confidence": "confidence",
    "less_trusted": "source_priority",
    "tie_break": "tie_break",
}


def rule_text(rule: SurvivorshipRule) -> str:
    """The rule of one attribute in words (the ``latest`` rule is :data:`RULE_TEXT`)."""
    if rule.strategy == "source_order":
        text = (
            f"source order {', '.join(rule.source_order)}: the value of the first listed source "
            f"that holds one wins (other sources after them); ties go to the latest rule: {RULE_TEXT}"
        )
    elif rule.strategy == "most_frequent":
        text = (
            "most frequent: the value held by the most current source records wins; "
            f"ties go to the latest rule: {RULE_TEXT}"
        )
    elif rule.strategy == "oldest":
        text = (
            "oldest updated_at (the field's own change time) wins; ties go to higher confidence, "
            "then the more trusted source (lower priority number), then source name and value id"
        )
    elif rule.strategy == "latest_non_empty":
        text = (
            f"placeholders ({', '.join(PLACEHOLDER_VALUES)}) only win when nothing else is held; "
            f"otherwise {RULE_TEXT}"
        )
    else:
        text = RULE_TEXT
    if rule.allowed_sources:
        text = f"only values from {', '.join(rule.allowed_sources)} can win; {text}"
    return text


def _why_lost(winner: dict[str, Any] | None, loser: dict[str, Any]) -> tuple[str, str]:
    """The kind (:data:`LOSS_KINDS`) and the sentence saying why ``loser`` is not the winner.

    The reasons are tried in the order the ranking applies them, so the sentence names
    the key that decided.
    """
    if not loser["allowed"]:
        return "not_allowed", (
            f"{loser['source_system']} may not supply this attribute (allowed: "
            f"{', '.join(str(loser['allowed_sources']).split(SOURCE_LIST_SEPARATOR))})"
        )
    assert winner is not None  # an allowed value exists, so one of them won
    strategy = winner["strategy"]
    if loser["target_node_id"] == winner["target_node_id"]:
        return "agrees", f"agrees with the winner: {loser['source_system']} holds the same value"
    if strategy == "source_order" and loser["source_position"] > winner["source_position"]:
        listed = ", ".join(str(winner["source_order"]).split(SOURCE_LIST_SEPARATOR))
        where = (
            "is not in the source order"
            if loser["source_position"] >= UNLISTED_POSITION
            else "comes after it in the source order"
        )
        return "later_in_source_order", (
            f"source order {listed}: {winner['source_system']} holds a value and "
            f"{loser['source_system']} {where}"
        )
    if strategy == "most_frequent" and loser["holders"] < winner["holders"]:
        return "less_frequent", (
            f"less frequent: held by {_records(loser['holders'])}, "
            f"the winner by {_records(winner['holders'])}"
        )
    if strategy == "oldest" and loser["updated_at"] > winner["updated_at"]:
        return "newer", (
            f"newer: this field last changed in {loser['source_system']} at "
            f"{_iso(loser['updated_at'])}, after {winner['source_system']} set the winner at "
            f"{_iso(winner['updated_at'])}"
        )
    if strategy == "latest_non_empty" and loser["is_placeholder"] > winner["is_placeholder"]:
        return "placeholder", f"a placeholder ({loser['value']!r}), not a value"
    if strategy != "oldest" and loser["updated_at"] < winner["updated_at"]:
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


def _records(n: int) -> str:
    return f"{n} current record{'' if n == 1 else 's'}"


def explain(
    ranked: pa.Table,
    history: pa.Table,
    customer_id: str,
    attribute: str,
    rel_type: str,
    rule: SurvivorshipRule | None = None,
) -> Explanation:
    """Build the explanation from the ranked current values and the version history.

    Args:
        ranked: Output of :func:`ranked_values` for (at least) this entity.
        history: Every version row (current or not) of this entity and rel_type, with
            its ``value``.
        customer_id: The entity.
        attribute: Canonical attribute name.
        rel_type: Its rel_type.
        rule: The attribute's survivorship rule (``latest`` if omitted).
    """
    rule = rule or SurvivorshipRule(attribute=attribute, rel_type=rel_type)
    rows = [r for r in ranked.to_pylist() if r["entity_id"] == customer_id and r["rel_type"] == rel_type]
    # Values that may not win have no rank: they come last, by source.
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["source_system"], r["value"]))
    winner = rows[0] if rows and rows[0]["rank"] == 1 else None
    losers = []
    for row in rows[1:] if winner else rows:
        kind, why = _why_lost(winner, row)
        losers.append({**_public(row), "kind": kind, "why_lost": why})
    # The first loser with another value is the runner-up: what beat it decided.
    runner_up = next((loser["kind"] for loser in losers if loser["kind"] in DECIDING_KEYS), None)
    if winner is None:
        decided_by = "not_allowed" if rows else "no_value"
    else:
        decided_by = DECIDING_KEYS[runner_up] if runner_up else "unopposed"
    why_won = "ranked first by the rule"
    if winner and rule.strategy != "latest":
        why_won = f"ranked first by the rule ({rule.strategy}; decided by {decided_by})"
    hist = sorted(history.to_pylist(), key=lambda r: (r["source_system"], r["updated_at"]))
    return Explanation(
        customer_id=customer_id,
        attribute=attribute,
        rel_type=rel_type,
        rule=rule_text(rule),
        winner={**_public(winner), "why_won": why_won} if winner else None,
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
        strategy=rule.strategy,
        decided_by=decided_by,
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
