"""Scoring a resolution against the truth the generator kept.

:func:`score` compares AAG's field-level profiles, and a record-level "latest record
wins" view built from the same records (:func:`record_level_values`), with every
person's true current values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aag.normalize import normalise
from aag.world.model import HOLDS, SCORED, Person, World, country_iso

#: Normaliser of each scored attribute, as the registry maps it.
NORMALISER = {
    "email": "email",
    "phone": "phone",
    "first_name": "text",
    "last_name": "text",
    "street": "text",
    "city": "text",
    "postal_code": "upper",
    "country": "country",
    "email_marketing_consent": "bool",
}


def _norm(attr: str, value: Any) -> str | None:
    if value is None:
        return None
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if attr == "country":
        text = country_iso(text)
    return normalise(NORMALISER[attr], text)


def record_level_values(person: Person) -> dict[str, str | None]:
    """A record-level CDP's view: per attribute, the record with the latest timestamp wins."""
    best: dict[str, tuple[datetime, str | None]] = {}
    # A deleted record leaves a record-level CDP too.
    for rec in person.live_records():
        if rec.system == "segment":
            for when, traits in rec.calls:
                for attr, value in traits.items():
                    if attr in SCORED and (attr not in best or when >= best[attr][0]):
                        best[attr] = (when, _norm(attr, value))
            continue
        stamp = rec.updated_at
        if rec.system == "sap":
            # SAP says only which day: a record-level CDP reads LAEDA as midnight too.
            stamp = stamp.replace(hour=0, minute=0, second=0)
        for attr in SCORED:
            if attr in HOLDS[rec.system] and (attr not in best or stamp >= best[attr][0]):
                best[attr] = (stamp, _norm(attr, rec.values[attr]))
    return {attr: value for attr, (_, value) in best.items()}


#: Kinds of people the score also reports on their own.
GROUPS = ("changed their e-mail", "share a family mailbox")


@dataclass
class Score:
    """Accuracy of field-level (AAG) and record-level resolution against the truth."""

    people: int
    cells: int
    field_level_correct: int
    record_level_correct: int
    people_in_one_customer: int
    per_attribute: dict[str, tuple[int, int, int]]
    #: The same counts for kinds of people: (people, cells, AAG right, latest record right).
    per_group: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    #: What the ingest saw (filled in by :func:`aag.demo.run_world`): files per format,
    #: rows landed and quarantined, and the generator's malformed rows and deletions.
    files_by_format: dict[str, int] = field(default_factory=dict)
    rows_landed: int = 0
    rows_quarantined: int = 0
    malformed_rows: int = 0
    deleted_records: int = 0
    #: Wrong merges an operator split with ``aag identity unlink``.
    wrong_merges: int = 0

    @property
    def field_level(self) -> float:
        """Share of (person, attribute) cells AAG gets right."""
        return self.field_level_correct / self.cells if self.cells else 0.0

    @property
    def record_level(self) -> float:
        """Share of cells a latest-record-wins view gets right."""
        return self.record_level_correct / self.cells if self.cells else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``aag demo --json``)."""
        return {
            "people": self.people,
            "cells": self.cells,
            "field_level_accuracy": round(self.field_level, 4),
            "record_level_accuracy": round(self.record_level, 4),
            "people_in_one_customer": self.people_in_one_customer,
            "files_by_format": self.files_by_format,
            "rows_landed": self.rows_landed,
            "rows_quarantined": self.rows_quarantined,
            "malformed_rows_generated": self.malformed_rows,
            "records_deleted_in_source": self.deleted_records,
            "per_attribute": {
                a: {"cells": n, "field_level_correct": f, "record_level_correct": r}
                for a, (n, f, r) in self.per_attribute.items()
            },
            "per_group": {
                g: {"people": p, "cells": n, "field_level_correct": f, "record_level_correct": r}
                for g, (p, n, f, r) in self.per_group.items()
            },
            "wrong_merges_unlinked": self.wrong_merges,
        }


def score(
    world: World, profiles: dict[str, dict[str, Any]], customer_of: dict[tuple[str, str], str]
) -> Score:
    """Score AAG's profiles and the record-level view against the truth.

    Args:
        world: The generated world.
        profiles: AAG profile rows by customer id.
        customer_of: ``(system, record id) → customer id`` (AAG's identity map).
    """
    cells = field_ok = record_ok = one = 0
    per: dict[str, list[int]] = {a: [0, 0, 0] for a in SCORED}
    groups: dict[str, list[int]] = {g: [0, 0, 0, 0] for g in GROUPS}
    for person in world.people:
        mine = [
            groups[g]
            for g, member in zip(GROUPS, (person.email_changed, person.family), strict=True)
            if member
        ]
        for g in mine:
            g[0] += 1
        live = person.live_records()
        customers = {customer_of.get((r.system, r.record_id)) for r in live}
        if len(customers) == 1 and None not in customers:
            one += 1
        customer = customer_of.get((live[0].system, live[0].record_id))
        profile = profiles.get(customer or "", {})
        record_view = record_level_values(person)
        held = set().union(*(HOLDS[r.system] for r in live))
        for attr in SCORED:
            if attr not in held:
                continue
            truth = _norm(attr, person.truth[attr])
            cells += 1
            per[attr][0] += 1
            right = (profile.get(attr) == truth, record_view.get(attr) == truth)
            for g in mine:
                g[1] += 1
                g[2] += right[0]
                g[3] += right[1]
            if right[0]:
                field_ok += 1
                per[attr][1] += 1
            if right[1]:
                record_ok += 1
                per[attr][2] += 1
    return Score(
        people=len(world.people),
        cells=cells,
        field_level_correct=field_ok,
        record_level_correct=record_ok,
        people_in_one_customer=one,
        per_attribute={a: (v[0], v[1], v[2]) for a, v in per.items()},
        per_group={g: (v[0], v[1], v[2], v[3]) for g, v in groups.items()},
    )
