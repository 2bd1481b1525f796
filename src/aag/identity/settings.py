"""The identity rules of one entity type: identifier limits, blocklist, operator decisions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from aag.config import Config
from aag.identity.overrides import PairRule, read_decisions, rules_in_force
from aag.ids import value_node_id
from aag.normalize import normalise
from aag.sources.base import SOURCE_RECORD_REL

#: rel_type of the derived cluster edges (member → survivor).
SAME_AS_REL = "SAME_AS"
#: ``source_system`` of edges AAG derives itself.
IDENTITY_SYSTEM = "aag"


@dataclass(frozen=True)
class IdentitySettings:
    """The identity rules that apply to one entity type."""

    entity_type: str
    #: rel_type → max records per source system sharing one target.
    limits: dict[str, int]
    blocked_node_ids: tuple[str, ...]
    #: Operator decisions in force between records of this entity type.
    pair_rules: tuple[PairRule, ...] = ()

    @classmethod
    def from_config(
        cls, config: Config, entity_type: str, pair_rules: tuple[PairRule, ...] = ()
    ) -> IdentitySettings | None:
        """Settings for ``entity_type``, or None when no rule applies to it.

        ``pair_rules`` are the operator decisions in force (:func:`aag.identity.overrides.rules_in_force`).
        """
        limits = {
            r.rel_type: r.max_records_per_source
            for r in config.identity_rules
            if r.entity_type == entity_type
        }
        if not limits:
            return None
        blocked = []
        for row in config.blocklist:
            value = normalise(config.normaliser_of(row.node_type), row.value)
            if value:
                blocked.append(value_node_id(row.node_type, value))
        return cls(
            entity_type=entity_type,
            limits=limits,
            blocked_node_ids=tuple(sorted(set(blocked))),
            pair_rules=tuple(pair_rules),
        )

    def pairs(self, action: str) -> pa.Table:
        """Entity id pairs (``a``, ``b``) of the decisions with this action."""
        rows = [(r.entity_a, r.entity_b) for r in self.pair_rules if r.action == action]
        return pa.table(
            {
                "a": pa.array([a for a, _ in rows], pa.string()),
                "b": pa.array([b for _, b in rows], pa.string()),
            }
        )

    @property
    def rel_types(self) -> list[str]:
        """Identifier rel_types (sorted)."""
        return sorted(self.limits)

    @property
    def scanned_rel_types(self) -> list[str]:
        """What the closure reads: identifiers, the record edge (first-seen time), SAME_AS."""
        return sorted({*self.limits, SOURCE_RECORD_REL, SAME_AS_REL})


def identity_settings(config: Config, entity_type: str, overrides: Path | None) -> IdentitySettings | None:
    """The identity rules of ``entity_type`` with the operator decisions in ``overrides`` (a CSV)."""
    rules = rules_in_force(config, read_decisions(overrides)) if overrides is not None else []
    return IdentitySettings.from_config(
        config, entity_type, tuple(r for r in rules if r.entity_type == entity_type)
    )
