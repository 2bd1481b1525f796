"""Resolution (SPEC §4): the winning value per entity and attribute, and why it won.

:mod:`~aag.resolution.winners` holds the one ordering rule and computes winners and
profiles on the engine; :mod:`~aag.resolution.explanation` names, for an attribute, the
winner, each loser's reason and the history.
"""

from aag.resolution.explanation import DECIDING_KEYS, LOSS_KINDS, Explanation, explain, rule_text
from aag.resolution.winners import (
    CUSTOMER_ATTRIBUTES,
    PLACEHOLDER_VALUES,
    RULE_TEXT,
    STRATEGY_KEYS,
    UNLISTED_POSITION,
    WINNER_ORDER,
    order_by,
    profile_sql,
    profiles,
    ranked_values,
)

__all__ = [
    "CUSTOMER_ATTRIBUTES",
    "DECIDING_KEYS",
    "LOSS_KINDS",
    "PLACEHOLDER_VALUES",
    "RULE_TEXT",
    "STRATEGY_KEYS",
    "UNLISTED_POSITION",
    "WINNER_ORDER",
    "Explanation",
    "explain",
    "order_by",
    "profile_sql",
    "profiles",
    "ranked_values",
    "rule_text",
]
