"""The loaded configuration: one object every layer asks about sources, rules and priorities."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pyarrow as pa

from aag.config.files import (
    API_SHAPE,
    DEFAULT_FUTURE_TOLERANCE,
    SOURCE_LIST_SEPARATOR,
    BlockedValue,
    IdentityRule,
    LandingColumn,
    ObjectSpec,
    RegistryRow,
    SurvivorshipRule,
    default_rule,
)
from aag.errors import ConfigError


@dataclass(frozen=True)
class Config:
    """The loaded registry, priorities and identity rules."""

    registry: tuple[RegistryRow, ...]
    priorities: dict[str, int]
    directory: Path | None = None
    identity_rules: tuple[IdentityRule, ...] = ()
    blocklist: tuple[BlockedValue, ...] = ()
    #: Per source system, how far after ingest an event time may lie (see
    #: :meth:`future_tolerance`); sources not listed get :data:`DEFAULT_FUTURE_TOLERANCE`.
    tolerances: dict[str, timedelta] = field(default_factory=dict)
    #: Attribute → its survivorship rule; attributes not listed use ``latest``.
    survivorship: dict[str, SurvivorshipRule] = field(default_factory=dict)
    #: Rows of ``landing_shapes.csv``: how managed connectors name each object's fields.
    landing_shapes: tuple[LandingColumn, ...] = ()
    _objects: dict[tuple[str, str], ObjectSpec] = field(default_factory=dict, repr=False)

    def object(self, source_system: str, source_object: str) -> ObjectSpec:
        """Look up an object; raises :class:`ConfigError` naming the known ones."""
        key = (source_system.lower(), source_object.lower())
        spec = self._objects.get(key)
        if spec is None:
            known = ", ".join(sorted(s.name for s in self._objects.values()))
            raise ConfigError(f"unknown source object {source_system}.{source_object}; known: {known}")
        return spec

    def landing_shape(self, source_system: str, source_object: str, shape: str) -> dict[str, str]:
        """Landed column → registry source field of one object in one landing shape.

        ``api`` (the registry's own names) is an empty mapping; a shape that
        ``landing_shapes.csv`` does not define for the object is a :class:`ConfigError`.
        """
        spec = self.object(source_system, source_object)
        if shape == API_SHAPE:
            return {}
        key = (spec.source_system.lower(), spec.source_object.lower())
        mine = [r for r in self.landing_shapes if (r.source_system.lower(), r.source_object.lower()) == key]
        columns = {r.landed_column: r.source_field for r in mine if r.shape == shape}
        if not columns:
            known = ", ".join(sorted({API_SHAPE, *(r.shape for r in mine)}))
            raise ConfigError(f"{spec.name} has no landing shape {shape!r}; known: {known}")
        return columns

    def landing_shapes_of(self, source_system: str, source_object: str) -> dict[str, dict[str, str]]:
        """Every landing shape of one object by name, ``api`` (an empty mapping) first."""
        spec = self.object(source_system, source_object)
        key = (spec.source_system.lower(), spec.source_object.lower())
        names = sorted(
            {
                r.shape
                for r in self.landing_shapes
                if (r.source_system.lower(), r.source_object.lower()) == key
            }
        )
        return {
            API_SHAPE: {},
            **{name: self.landing_shape(spec.source_system, spec.source_object, name) for name in names},
        }

    @property
    def objects(self) -> tuple[ObjectSpec, ...]:
        """Every configured source object."""
        return tuple(self._objects.values())

    def attribute_rel_types(self) -> dict[str, str]:
        """Canonical attribute name → rel_type, over all sources."""
        out: dict[str, str] = {}
        for row in self.registry:
            if row.role == "attribute" and row.attribute:
                out.setdefault(row.attribute, row.rel_type)
        return out

    def normaliser_of(self, node_type: str) -> str:
        """The normaliser the registry applies to values of a node type (``text`` if none)."""
        for row in self.registry:
            if row.role == "attribute" and row.node_type == node_type:
                return row.normaliser
        return "text"

    def future_tolerance(self, source_system: str) -> timedelta:
        """How far after its ingest time an event time of ``source_system`` may lie.

        A later time is bad input (SPEC §11): it would win its field until the clock
        catches up. The margin absorbs clock skew between the source and this machine.
        """
        return self.tolerances.get(source_system, DEFAULT_FUTURE_TOLERANCE)

    def survivorship_rule(self, attribute: str) -> SurvivorshipRule:
        """The rule resolving ``attribute`` (``latest`` unless ``survivorship.csv`` says otherwise)."""
        rule = self.survivorship.get(attribute)
        if rule is not None:
            return rule
        return default_rule(attribute, self.attribute_rel_types().get(attribute, ""))

    def survivorship_table(self) -> pa.Table:
        """The rules as an Arrow table for SQL joins, keyed by rel_type.

        Columns ``rel_type, strategy, source_order, allowed_sources``; the lists are
        joined with :data:`SOURCE_LIST_SEPARATOR` (NULL when empty), the form dbt's
        ``survivorship_rules`` model gives the seed.
        """
        rules = list(self.survivorship.values())

        def joined(names: tuple[str, ...]) -> str | None:
            return SOURCE_LIST_SEPARATOR.join(names) or None

        return pa.table(
            {
                "rel_type": pa.array([r.rel_type for r in rules], pa.string()),
                "strategy": pa.array([r.strategy for r in rules], pa.string()),
                "source_order": pa.array([joined(r.source_order) for r in rules], pa.string()),
                "allowed_sources": pa.array([joined(r.allowed_sources) for r in rules], pa.string()),
            }
        )

    def priority_table(self) -> pa.Table:
        """Priorities as an Arrow table for SQL joins."""
        return pa.table(
            {
                "source_system": pa.array(list(self.priorities), pa.string()),
                "priority": pa.array(list(self.priorities.values()), pa.int32()),
            }
        )


def default_config_dir() -> Path:
    """The packaged default seeds (the same files the dbt project uses)."""
    return Path(str(resources.files("aag") / "defaults" / "seeds"))
