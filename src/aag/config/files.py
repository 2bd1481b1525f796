"""The config files and their rows: what each CSV of a warehouse's configuration holds.

Names of the files, the values their columns may take, and one model per row kind
(validated by pydantic when :func:`aag.config.load_config` reads them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

REGISTRY_FILE = "attribute_name_registry.csv"
PRIORITY_FILE = "source_priority.csv"
IDENTITY_RULES_FILE = "identity_rules.csv"
IDENTITY_BLOCKLIST_FILE = "identity_blocklist.csv"
SURVIVORSHIP_FILE = "survivorship.csv"
LANDING_SHAPES_FILE = "landing_shapes.csv"
#: Every config file a warehouse carries (``aag init`` copies them).
CONFIG_FILES = (
    REGISTRY_FILE,
    PRIORITY_FILE,
    IDENTITY_RULES_FILE,
    IDENTITY_BLOCKLIST_FILE,
    SURVIVORSHIP_FILE,
    LANDING_SHAPES_FILE,
)
#: The landing shape every object has without a ``landing_shapes.csv`` row: the source
#: API's field names, as the registry spells them.
API_SHAPE = "api"
#: Survivorship strategies (``survivorship.csv``); ``latest`` is the rule of SPEC §4 and
#: applies to every attribute the file does not list. aag.resolution.STRATEGY_KEYS says
#: how each one ranks.
STRATEGIES = ("latest", "source_order", "most_frequent", "oldest", "latest_non_empty")
#: Separator of the source lists in ``survivorship.csv`` (``sap|salesforce``).
SOURCE_LIST_SEPARATOR = "|"
#: What a source system name may be made of.
SOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]+")

Role = Literal["record_id", "record_time", "deleted", "attribute", "same_as", "reference"]
TIME_FORMATS = ("iso8601", "yyyymmdd")
#: Column of ``source_priority.csv`` giving how far (in hours) a source's event times may lie
#: after their ingest time; a file without the column, or a blank cell, gets the default.
FUTURE_TOLERANCE_COLUMN = "future_tolerance_hours"
DEFAULT_FUTURE_TOLERANCE = timedelta(days=1)
#: Event times before this are bad input (SPEC §11): no source system predates it, and a
#: zero date read as a time lands here (``0001-01-01``, Excel's ``1899-12-30``).
EARLIEST_EVENT_TIME = datetime(1900, 1, 1, tzinfo=UTC)
#: Normalisers a ``reference`` row may use: the id canonicalisations of ``record_id`` rows.
REFERENCE_NORMALISERS = ("id", "salesforce_id")


class RegistryRow(BaseModel):
    """One row of ``attribute_name_registry.csv``.

    ``role`` says what the source field is: the record's id, its record-level event
    time (``normaliser`` = time format), its deletion flag, an attribute that
    becomes an edge ``entity -[rel_type]-> value node``, or ``same_as``: a field
    holding the id of the same entity's record in another object (``attribute`` =
    ``system.Object``), so the record joins that entity deterministically, or
    ``reference``: a field holding the id of a record of another object (``attribute`` =
    ``system.Object``, ``node_type`` = that object's entity type), which becomes the edge
    ``entity -[rel_type]-> that record's entity node``.
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    source_system: str
    source_object: str
    source_field: str
    role: Role = "attribute"
    entity_type: str = "customer"
    attribute: str = ""
    rel_type: str = ""
    node_type: str = ""
    normaliser: str = "text"
    confidence: float = 1.0
    event_time_field: str = ""
    description: str = ""

    @field_validator("source_system", "source_object", "source_field", "entity_type")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("confidence")
    @classmethod
    def _unit_interval(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError("confidence must be between 0 and 1")
        return value


class LandingColumn(BaseModel):
    """One row of ``landing_shapes.csv``: a column of a connector's table and the field it holds.

    A managed connector (Fivetran, Segment's warehouse destination) lands an object in
    its own shape: other column names than the source API's. Each row names one column
    of that ``shape`` and the registry ``source_field`` (the API's name) it carries; a
    dotted ``source_field`` (``traits.address.city``) is a key inside a JSON object field.
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    source_system: str
    source_object: str
    shape: str
    landed_column: str
    source_field: str
    description: str = ""

    @field_validator("source_system", "source_object", "landed_column", "source_field")
    @classmethod
    def _filled(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("shape")
    @classmethod
    def _shape_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value) or value == API_SHAPE:
            raise ValueError(f"shape must be a lower-case name other than {API_SHAPE!r}")
        return value


@dataclass(frozen=True)
class ObjectSpec:
    """Everything the registry says about one source object."""

    source_system: str
    source_object: str
    entity_type: str
    id_field: str
    id_normaliser: str
    time_field: str | None
    time_format: str
    deleted_field: str | None
    deleted_normaliser: str
    #: Rows that become edges: ``attribute`` rows (to value nodes) and ``reference`` rows
    #: (to other entities), in registry order.
    attributes: tuple[RegistryRow, ...]
    #: ``same_as`` rows (their ``attribute`` names the linked ``system.Object``).
    same_as: tuple[RegistryRow, ...] = ()

    @property
    def name(self) -> str:
        """``system.object``, as shown in messages."""
        return f"{self.source_system}.{self.source_object}"

    @property
    def references(self) -> tuple[RegistryRow, ...]:
        """The ``reference`` rows among :attr:`attributes`."""
        return tuple(row for row in self.attributes if row.role == "reference")

    @property
    def fields(self) -> tuple[str, ...]:
        """Every source column the registry reads from this object."""
        cols = [self.id_field]
        cols += [c for c in (self.time_field, self.deleted_field) if c]
        for row in self.attributes:
            cols.append(row.source_field)
            if row.event_time_field:
                cols.append(row.event_time_field)
        cols += [row.source_field for row in self.same_as]
        return tuple(dict.fromkeys(cols))


class IdentityRule(BaseModel):
    """One row of ``identity_rules.csv``: an edge type whose target identifies an entity.

    Records of ``entity_type`` whose current ``rel_type`` edges point at the same value
    node belong to one entity, unless that node is over-shared: more than
    ``max_records_per_source`` records of one source system point at it (a
    ``test@test.com`` typed into every guest checkout), or it is on the blocklist.
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    entity_type: str
    rel_type: str
    max_records_per_source: int = 2
    description: str = ""

    @field_validator("max_records_per_source")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value


@dataclass(frozen=True)
class SurvivorshipRule:
    """How one attribute picks its winner (a row of ``survivorship.csv``).

    ``strategy`` is one of :data:`STRATEGIES`. ``source_order`` (only with
    ``source_order``) ranks the listed sources first, in that order; ``allowed_sources``,
    when not empty, are the only sources whose values may win: the others' values are
    listed by ``explain`` but never chosen, so an attribute held only by them is empty.
    """

    attribute: str
    rel_type: str
    strategy: str = "latest"
    source_order: tuple[str, ...] = ()
    allowed_sources: tuple[str, ...] = ()
    description: str = ""


def default_rule(attribute: str, rel_type: str) -> SurvivorshipRule:
    """The ``latest`` rule for an attribute without a row."""
    return SurvivorshipRule(attribute=attribute, rel_type=rel_type)


class BlockedValue(BaseModel):
    """One row of ``identity_blocklist.csv``: a value that never links records."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    node_type: str
    value: str
    reason: str = ""
