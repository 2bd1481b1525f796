"""Operator decisions on identity: keep two records apart, or join them (SPEC §8).

Identity links records through the identifier values they share or have shared. When a
merge is wrong (a family sharing one mailbox) or a match is missed, an operator records
a decision about a *pair of source records*:

* ``unlink``: the two records are never one customer, whatever they share;
* ``link``: the two records are one customer, whatever they share;
* ``undo``: the pair's earlier decision no longer applies.

Decisions are data: an append-only CSV, ``<warehouse>/config/identity_overrides.csv``,
one row per decision with its time and note. The last row of a pair is in force, so the
file is also the audit trail. Every identity run applies the decisions in force to the
clusters it computes, so a decision survives re-ingest and gives the same clusters in
any batch order.

Unlinks are constraints on connected components, which plain label propagation cannot
honour, so a cluster holding an unlinked pair is split here, in Python: such clusters
are a handful of records. The split is a greedy union over the cluster's links in a
fixed order (operator links first, then shared values by their earliest-seen record;
within a value, records by rank), skipping any union that would put an unlinked pair
together.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from aag.config import Config
from aag.errors import ConfigError, InputError
from aag.ids import entity_node_id
from aag.normalize import InvalidValueError, normalise

OVERRIDES_FILE = "identity_overrides.csv"
COLUMNS = ("action", "record_a", "record_b", "decided_at", "note")
Action = Literal["link", "unlink", "undo"]
ACTIONS: tuple[Action, ...] = ("link", "unlink", "undo")


@dataclass(frozen=True)
class Decision:
    """One row of the overrides file: an operator's decision about two records."""

    action: Action
    record_a: str
    record_b: str
    decided_at: str
    note: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        """The two records, in a fixed order (a decision is about an unordered pair)."""
        a, b = sorted((self.record_a, self.record_b))
        return a, b


@dataclass(frozen=True)
class PairRule:
    """A decision in force, with the records' entity ids."""

    action: Literal["link", "unlink"]
    entity_type: str
    record_a: str
    record_b: str
    entity_a: str
    entity_b: str
    decided_at: str
    note: str

    def sentence(self) -> str:
        """How ``explain`` shows the decision."""
        verb = "kept apart from" if self.action == "unlink" else "linked to"
        note = f" ({self.note})" if self.note else ""
        return f"{self.record_a} {verb} {self.record_b} by an operator on {self.decided_at}{note}"


def parse_record(config: Config, text: str) -> tuple[str, str, str]:
    """``SOURCE:OBJECT:ID`` → (source_system, source_object, canonical record id).

    Raises:
        InputError: If the text is not of that form, names an unknown object, or holds an
            id that object's id normaliser rejects.
    """
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InputError(
            f"record {text!r}: expected SOURCE:OBJECT:ID, e.g. salesforce:Contact:0035g00000AbCdE"
        )
    try:
        spec = config.object(parts[0].strip(), parts[1].strip())
    except ConfigError as exc:
        raise InputError(f"record {text!r}: {exc}") from exc
    try:
        record_id = normalise(spec.id_normaliser, parts[2].strip())
    except InvalidValueError as exc:
        raise InputError(f"record {text!r}: not a valid {spec.name} id ({exc})") from exc
    if not record_id:
        raise InputError(f"record {text!r}: empty record id")
    return spec.source_system, spec.source_object, record_id


def entity_of(config: Config, record: str) -> tuple[str, str]:
    """(entity type, entity id) of a ``SOURCE:OBJECT:ID`` record."""
    system, obj, record_id = parse_record(config, record)
    entity_type = config.object(system, obj).entity_type
    return entity_type, entity_node_id(entity_type, system, obj, record_id)


def canonical_record(config: Config, record: str) -> str:
    """A record written the one way the file stores it (configured names, canonical id)."""
    return ":".join(parse_record(config, record))


def read_decisions(path: Path) -> list[Decision]:
    """Every decision in the file, in order (none when the file does not exist).

    Raises:
        ConfigError: On a malformed row (the line is named).
    """
    if not path.exists():
        return []
    out = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                action = (row.get("action") or "").strip()
                a, b = (row.get("record_a") or "").strip(), (row.get("record_b") or "").strip()
                if action not in ACTIONS or not a or not b or a == b:
                    raise ConfigError(
                        f"{path.name} line {number}: needs action (link, unlink or undo) and two "
                        "different records"
                    )
                out.append(
                    Decision(
                        action=action,  # type: ignore[arg-type]  # checked against ACTIONS above
                        record_a=a,
                        record_b=b,
                        decided_at=(row.get("decided_at") or "").strip(),
                        note=(row.get("note") or "").strip(),
                    )
                )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path.name}: not a readable CSV file ({exc})") from exc
    return out


def append_decision(path: Path, decision: Decision) -> None:
    """Append one decision (the file and its header are created when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if new:
        writer.writerow(COLUMNS)
    writer.writerow(
        [decision.action, decision.record_a, decision.record_b, decision.decided_at, decision.note]
    )
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def decision_now(action: Action, record_a: str, record_b: str, note: str = "") -> Decision:
    """A decision stamped with the current UTC time."""
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Decision(action=action, record_a=record_a, record_b=record_b, decided_at=stamp, note=note)


def rules_in_force(config: Config, decisions: Iterable[Decision]) -> list[PairRule]:
    """The last decision of each pair, unless it is an undo, with entity ids.

    Records are matched in canonical form, so ``Salesforce:contact:…`` and the configured
    spelling are one record. A row naming an object the config no longer has is an error.
    """
    last: dict[tuple[str, str], Decision] = {}
    for decision in decisions:
        a = canonical_record(config, decision.record_a)
        b = canonical_record(config, decision.record_b)
        key = (min(a, b), max(a, b))
        last[key] = Decision(decision.action, key[0], key[1], decision.decided_at, decision.note)
    out = []
    for (a, b), decision in sorted(last.items()):
        if decision.action == "undo":
            continue
        type_a, entity_a = entity_of(config, a)
        type_b, entity_b = entity_of(config, b)
        if type_a != type_b:
            raise ConfigError(
                f"{OVERRIDES_FILE}: {a} is a {type_a}, {b} a {type_b}; only records of one type link"
            )
        out.append(
            PairRule(
                action=decision.action,
                entity_type=type_a,
                record_a=a,
                record_b=b,
                entity_a=entity_a,
                entity_b=entity_b,
                decided_at=decision.decided_at,
                note=decision.note,
            )
        )
    return out


def split_apart(
    links: list[tuple[str, str]], rank: dict[str, int], apart: set[tuple[str, str]]
) -> dict[str, int]:
    """Clusters of records that keep every unlinked pair apart.

    Args:
        links: (record, hub) pairs: a hub is a shared identifier value or an operator link
            (hub ids starting with ``link:``); records sharing a hub are joined.
        rank: Each record's rank (first seen, then id): the smallest rank of a cluster is
            its survivor.
        apart: Unordered record pairs (sorted tuples) that must end in different clusters.

    Returns:
        Each record's label: the rank of its cluster's survivor.
    """
    parent = {record: record for record in rank}
    members = {record: {record} for record in rank}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def clash(x: str, y: str) -> bool:
        small, big = sorted((members[x], members[y]), key=len)
        return any((min(p, q), max(p, q)) in apart for p in small for q in big)

    hubs: dict[str, list[str]] = {}
    for record, hub in links:
        hubs.setdefault(hub, []).append(record)
    order = sorted(
        hubs,
        key=lambda h: (not h.startswith("link:"), min(rank[r] for r in hubs[h]), h),
    )
    for hub in order:
        records = sorted(set(hubs[hub]), key=lambda r: rank[r])
        # Each record joins every earlier record of the hub it may join: a record kept apart
        # from the earliest one must not stop the others from meeting through this hub.
        for n, record in enumerate(records):
            for earlier in records[:n]:
                x, y = find(earlier), find(record)
                if x == y or clash(x, y):
                    continue
                if rank[x] > rank[y]:
                    x, y = y, x
                parent[y] = x
                members[x] |= members.pop(y)
    return {record: min(rank[m] for m in members[find(record)]) for record in rank}


def overrides_path(warehouse_uri: str) -> Path:
    """Where a local warehouse keeps its identity decisions."""
    return Path(warehouse_uri) / "config" / OVERRIDES_FILE
