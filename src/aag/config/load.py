"""Reading a configuration folder: CSV parsing, validation and the cross-file checks."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from aag.config.files import (
    FUTURE_TOLERANCE_COLUMN,
    IDENTITY_BLOCKLIST_FILE,
    IDENTITY_RULES_FILE,
    LANDING_SHAPES_FILE,
    PRIORITY_FILE,
    REFERENCE_NORMALISERS,
    REGISTRY_FILE,
    SOURCE_LIST_SEPARATOR,
    SOURCE_NAME,
    STRATEGIES,
    SURVIVORSHIP_FILE,
    TIME_FORMATS,
    BlockedValue,
    IdentityRule,
    LandingColumn,
    ObjectSpec,
    RegistryRow,
    SurvivorshipRule,
)
from aag.config.settings import Config, default_config_dir
from aag.errors import ConfigError
from aag.normalize import split_normaliser

_M = TypeVar("_M", bound=BaseModel)


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
    objects = _build_objects(rows)
    # Like the identity files, a folder made before landing_shapes.csv existed gets the
    # packaged shapes.
    shapes = _validated(LandingColumn, _or_default(folder, LANDING_SHAPES_FILE), LANDING_SHAPES_FILE)
    _check_shapes(shapes, objects)
    return Config(
        registry=tuple(rows),
        priorities=priorities,
        directory=folder,
        identity_rules=identity_rules,
        blocklist=blocklist,
        tolerances=tolerances,
        survivorship=survivorship,
        landing_shapes=tuple(shapes),
        _objects=objects,
    )


def _check_shapes(shapes: list[LandingColumn], objects: dict[tuple[str, str], ObjectSpec]) -> None:
    """Each shape row names a configured object, and no column or field twice in its shape."""
    seen: set[tuple[str, str, str, str, str]] = set()
    for number, row in enumerate(shapes, start=2):
        where = f"{LANDING_SHAPES_FILE} line {number}"
        key = (row.source_system.lower(), row.source_object.lower())
        if key not in objects:
            raise ConfigError(f"{where}: {row.source_system}.{row.source_object} is not in {REGISTRY_FILE}")
        for kind, name in (("landed_column", row.landed_column), ("source_field", row.source_field)):
            if (*key, row.shape, kind, name) in seen:
                raise ConfigError(f"{where}: {kind} {name!r} appears twice in shape {row.shape!r}")
            seen.add((*key, row.shape, kind, name))


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
        if not SOURCE_NAME.fullmatch(name):
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
