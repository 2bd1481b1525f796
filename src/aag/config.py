"""Configuration as data: the attribute registry, source priorities and survivorship.

The CSVs in ``src/aag/defaults/seeds`` are dbt seeds (``seed-paths``) and the engine
reads the very same files, so field mapping and conflict resolution have one source of truth.
A warehouse may carry its own copies under ``<warehouse>/config`` (written by
``aag init``); otherwise the packaged defaults are used.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from aag.errors import ConfigError
from aag.normalize import split_normaliser

REGISTRY_FILE = "attribute_name_registry.csv"
PRIORITY_FILE = "source_priority.csv"
IDENTITY_RULES_FILE = "identity_rules.csv"
IDENTITY_BLOCKLIST_FILE = "identity_blocklist.csv"
SURVIVORSHIP_FILE = "survivorship.csv"
#: Every config file a warehouse carries (``aag init`` copies them).
CONFIG_FILES = (
    REGISTRY_FILE,
    PRIORITY_FILE,
    IDENTITY_RULES_FILE,
    IDENTITY_BLOCKLIST_FILE,
    SURVIVORSHIP_FILE,
)
#: Survivorship strategies (``survivorship.csv``); ``latest`` is the rule of SPEC §4 and
#: applies to every attribute the file does not list. aag.resolution.STRATEGY_KEYS says
#: how each one ranks.
STRATEGIES = ("latest", "source_order", "most_frequent", "oldest", "latest_non_empty")
#: Separator of the source lists in ``survivorship.csv`` (``sap|salesforce``).
SOURCE_LIST_SEPARATOR = "|"
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]+")

_M = TypeVar("_M", bound=BaseModel)

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
    _objects: dict[tuple[str, str], ObjectSpec] = field(default_factory=dict, repr=False)

    def object(self, source_system: str, source_object: str) -> ObjectSpec:
        """Look up an object; raises :class:`ConfigError` naming the known ones."""
        key = (source_system.lower(), source_object.lower())
        spec = self._objects.get(key)
        if spec is None:
            known = ", ".join(sorted(s.name for s in self._objects.values()))
            raise ConfigError(f"unknown source object {source_system}.{source_object}; known: {known}")
        return spec

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


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [
                {k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)
            ]
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _build_objects(rows: Iterable[RegistryRow]) -> dict[tuple[str, str], ObjectSpec]:
    grouped: dict[tuple[str, str], list[RegistryRow]] = {}
    for row in rows:
        grouped.setdefault((row.source_system, row.source_object), []).append(row)
    objects: dict[tuple[str, str], ObjectSpec] = {}
    for (system, obj), obj_rows in grouped.items():
        where = f"{REGISTRY_FILE}: {system}.{obj}"
        ids = [r for r in obj_rows if r.role == "record_id"]
        times = [r for r in obj_rows if r.role == "record_time"]
        deleted = [r for r in obj_rows if r.role == "deleted"]
        attrs = tuple(r for r in obj_rows if r.role in ("attribute", "reference"))
        same_as = []
        for row in obj_rows:
            if row.role == "same_as":
                if "." not in row.attribute:
                    raise ConfigError(
                        f"{where}.{row.source_field}: same_as rows name the linked object "
                        "as system.Object in the attribute column"
                    )
                same_as.append(row)
        if len(ids) != 1:
            raise ConfigError(f"{where} needs exactly one record_id row, found {len(ids)}")
        if len(times) > 1 or len(deleted) > 1:
            raise ConfigError(f"{where} has more than one record_time or deleted row")
        time_format = times[0].normaliser if times else "iso8601"
        if time_format not in TIME_FORMATS:
            raise ConfigError(f"{where}: record_time format must be one of {TIME_FORMATS}")
        for attr in attrs:
            if not (attr.attribute and attr.rel_type and attr.node_type):
                raise ConfigError(
                    f"{where}.{attr.source_field}: attribute rows need attribute, rel_type and node_type"
                )
            split_normaliser(attr.normaliser)
            if attr.role == "reference" and (
                "." not in attr.attribute or attr.normaliser not in REFERENCE_NORMALISERS
            ):
                raise ConfigError(
                    f"{where}.{attr.source_field}: reference rows name the target object as "
                    f"system.Object in the attribute column and use a normaliser of "
                    f"{', '.join(REFERENCE_NORMALISERS)}"
                )
            if not times and not attr.event_time_field:
                raise ConfigError(f"{where}.{attr.source_field}: no record_time and no field time")
        objects[(system.lower(), obj.lower())] = ObjectSpec(
            source_system=system,
            source_object=obj,
            entity_type=ids[0].entity_type,
            id_field=ids[0].source_field,
            id_normaliser=ids[0].normaliser,
            time_field=times[0].source_field if times else None,
            time_format=time_format,
            deleted_field=deleted[0].source_field if deleted else None,
            deleted_normaliser=deleted[0].normaliser if deleted else "bool",
            attributes=attrs,
            same_as=tuple(same_as),
        )
    _check_references(objects)
    return objects


def _check_references(objects: dict[tuple[str, str], ObjectSpec]) -> None:
    """A reference must compute the very node id the target object gives its records.

    Both ids hash ``entity_type|system|Object|record id``, so the reference's node type and
    id normaliser must be the target's entity type and id normaliser, or the edge would
    point at an entity no record of the target ever becomes. Targets that are not
    configured (yet) cannot be checked.
    """
    for spec in objects.values():
        for row in spec.references:
            system, _, obj = row.attribute.partition(".")
            target = objects.get((system.lower(), obj.lower()))
            if target is None:
                continue
            if row.node_type != target.entity_type or row.normaliser != target.id_normaliser:
                raise ConfigError(
                    f"{REGISTRY_FILE}: {spec.name}.{row.source_field} references {target.name}, "
                    f"whose records are {target.entity_type!r} entities with "
                    f"{target.id_normaliser!r} ids; the reference row says node_type "
                    f"{row.node_type!r}, normaliser {row.normaliser!r}"
                )


def load_config(directory: Path | None = None) -> Config:
    """Load and validate the registry, priorities, identity and survivorship rules.

    Args:
        directory: Folder holding the CSV files; the packaged defaults if omitted. The
            identity files (:data:`IDENTITY_RULES_FILE`, :data:`IDENTITY_BLOCKLIST_FILE`)
            fall back to the packaged defaults when the folder has none; without
            :data:`SURVIVORSHIP_FILE` every attribute is resolved by ``latest``.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On a missing file, an invalid row, or an inconsistent object.
    """
    folder = directory or default_config_dir()
    rows = _validated(RegistryRow, folder / REGISTRY_FILE, REGISTRY_FILE)
    priorities: dict[str, int] = {}
    tolerances: dict[str, timedelta] = {}
    for number, raw in enumerate(_read_csv(folder / PRIORITY_FILE), start=2):
        try:
            priorities[raw["source_system"]] = int(raw["priority"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{PRIORITY_FILE} line {number}: needs source_system, priority") from exc
        hours = raw.get(FUTURE_TOLERANCE_COLUMN, "")
        if hours:
            tolerances[raw["source_system"]] = _tolerance(hours, number)
    # The identity files are optional in a config folder: the packaged defaults apply.
    identity_rules = tuple(
        _validated(IdentityRule, _or_default(folder, IDENTITY_RULES_FILE), IDENTITY_RULES_FILE)
    )
    blocklist = tuple(
        _validated(BlockedValue, _or_default(folder, IDENTITY_BLOCKLIST_FILE), IDENTITY_BLOCKLIST_FILE)
    )
    # A folder without survivorship.csv (made before the file existed) resolves every
    # attribute by the latest rule: the packaged file says the same for its attributes.
    survivorship = (
        _survivorship(folder / SURVIVORSHIP_FILE, rows, priorities)
        if (folder / SURVIVORSHIP_FILE).exists()
        else {}
    )
    return Config(
        registry=tuple(rows),
        priorities=priorities,
        directory=folder,
        identity_rules=identity_rules,
        blocklist=blocklist,
        tolerances=tolerances,
        survivorship=survivorship,
        _objects=_build_objects(rows),
    )


def _survivorship(
    path: Path, registry: list[RegistryRow], priorities: dict[str, int]
) -> dict[str, SurvivorshipRule]:
    """The rows of ``survivorship.csv``, checked against the registry and the sources.

    Every mistake is a :class:`ConfigError` naming the line: an attribute no registry row
    maps (or listed twice), an unknown strategy, a source list that is malformed or names
    a source neither the registry nor ``source_priority.csv`` knows, a ``source_order``
    list on another strategy or missing on ``source_order``. Nothing falls back silently.
    """
    rel_of: dict[str, str] = {}
    for row in registry:
        if row.role == "attribute" and row.attribute:
            rel_of.setdefault(row.attribute, row.rel_type)
    sources = {row.source_system for row in registry} | set(priorities)
    rules: dict[str, SurvivorshipRule] = {}
    for number, raw in enumerate(_read_csv(path), start=2):
        where = f"{SURVIVORSHIP_FILE} line {number}"
        attribute = raw.get("attribute", "")
        strategy = raw.get("strategy", "")
        if attribute not in rel_of:
            raise ConfigError(
                f"{where}: unknown attribute {attribute!r}; the registry maps: {', '.join(sorted(rel_of))}"
            )
        if attribute in rules:
            raise ConfigError(f"{where}: attribute {attribute!r} is listed twice")
        if strategy not in STRATEGIES:
            raise ConfigError(f"{where}: unknown strategy {strategy!r}; one of: {', '.join(STRATEGIES)}")
        order = _source_list(raw.get("source_order", ""), sources, f"{where}: source_order")
        allowed = _source_list(raw.get("allowed_sources", ""), sources, f"{where}: allowed_sources")
        if strategy == "source_order" and not order:
            raise ConfigError(f"{where}: strategy source_order needs a source_order list (e.g. sap|shopify)")
        if strategy != "source_order" and order:
            raise ConfigError(f"{where}: a source_order list only applies to strategy source_order")
        rules[attribute] = SurvivorshipRule(
            attribute=attribute,
            rel_type=rel_of[attribute],
            strategy=strategy,
            source_order=order,
            allowed_sources=allowed,
            description=raw.get("description", ""),
        )
    return rules


def _source_list(cell: str, known: set[str], where: str) -> tuple[str, ...]:
    """A ``sap|salesforce`` cell as names (spaces around names are ignored; empty: none)."""
    if not cell.strip():
        return ()
    names = tuple(name.strip() for name in cell.split(SOURCE_LIST_SEPARATOR))
    for name in names:
        if not _SOURCE_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}: {cell!r} is not a list of source names separated by "
                f"{SOURCE_LIST_SEPARATOR!r} (e.g. sap|salesforce)"
            )
        if name not in known:
            raise ConfigError(f"{where}: unknown source {name!r}; known: {', '.join(sorted(known))}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: {cell!r} names a source twice")
    return names


def _tolerance(hours: str, line: int) -> timedelta:
    """A ``future_tolerance_hours`` cell as a duration (a number of hours, at least 0)."""
    try:
        value = float(hours)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 24.0 * 366:
        raise ConfigError(
            f"{PRIORITY_FILE} line {line}: {FUTURE_TOLERANCE_COLUMN} must be a number of hours "
            f"from 0 to 8784, got {hours!r}"
        )
    return timedelta(hours=value)


def _or_default(folder: Path, name: str) -> Path:
    path = folder / name
    return path if path.exists() else default_config_dir() / name


def _validated(model: type[_M], path: Path, name: str) -> list[_M]:
    """Rows of a config CSV validated as ``model``."""
    out = []
    for number, raw in enumerate(_read_csv(path), start=2):
        clean = {k: v for k, v in raw.items() if v != ""}
        try:
            out.append(model.model_validate(clean))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{name} line {number}: {loc}: {first['msg']}") from exc
    return out
