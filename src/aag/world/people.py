"""The people and their lives: who has which records, and what changes between rounds.

:func:`generate` draws the customers and their records in each system, then lets them
live through the export rounds (real changes in one system at a time, re-stamps, logins,
deletions) and writes each round's files (:mod:`aag.world.render`). The generator keeps
the truth: every field's last real change.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aag.world.model import FORMATS, HOLDS, OBJECT, PLACES, ROUNDS, SCORED, START, Person, Record, World
from aag.world.render import export_round

FIRST = ("Ana", "Ben", "Chloé", "Dev", "Eva", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Kai", "Lea")
LAST = ("Lima", "Berg", "Novak", "Rossi", "Okafor", "Schmidt", "Dubois", "Tanaka", "Silva", "Weber")
STREETS = ("Hauptstr. 1", "Rue de Rivoli 5", "Gran Vía 12", "Ringstraße 3", "High St 9", "Parkweg 22")
#: Share of people with a record in each system.
PRESENCE = {"salesforce": 0.85, "sap": 0.35, "shopify": 0.6, "zendesk": 0.35, "segment": 0.45}
#: Share of Salesforce people with a duplicate contact (deleted in a later round), share of
#: SAP customers flagged for deletion, share of Segment users who log in per round.
DUPLICATE_CONTACTS = 0.03
SAP_DELETIONS = 0.05
LOGINS = 0.35
#: Share of people whose only record is a shop account on a relative's mailbox: identity
#: joins them to the relative's customer, and an operator splits them off with an unlink.
FAMILY_MAILBOXES = 0.02


def _sf_id(i: int) -> str:
    return f"003{i:012d}AAA"


def _initial(rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, postal, country, _, prefix = rng.choice(PLACES)
    return {
        "first_name": first,
        "last_name": last,
        "email": "",
        "phone": prefix + str(rng.randrange(1_000_000, 9_999_999)),
        "street": rng.choice(STREETS),
        "city": city,
        "postal_code": postal,
        "country": country,
        "email_marketing_consent": rng.random() < 0.5,
    }


def generate(
    folder: Path,
    people: int,
    seed: int = 7,
    formats: Mapping[str, str] | str | None = None,
    malformed: bool = True,
) -> World:
    """Generate ``people`` customers over the sync rounds and write the bronze files.

    Args:
        folder: Where the files go (``round<k>/<system>_<object>.<format>``).
        people: Number of real customers.
        seed: Random seed (the same seed gives the same files).
        formats: ``jsonl``, ``csv`` or ``parquet`` for every system, or a format per
            system; :data:`FORMATS` by default.
        malformed: Put one malformed row (see :data:`aag.world.render.MALFORMED`) in every file but ADR6.

    Returns:
        The world, with the files in the order they should be ingested.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    persons: list[Person] = []
    for i in range(people):
        values = _initial(rng)
        values["email"] = f"{values['first_name'].lower()}.{values['last_name'].lower()}.{i}@example.com"
        values["email"] = values["email"].replace("é", "e")
        born = START + timedelta(seconds=rng.randrange(0, 300 * 86400))
        records: dict[str, Record] = {}
        for system, p in PRESENCE.items():
            if rng.random() < p:
                created = born + timedelta(seconds=rng.randrange(0, 30 * 86400))
                rid = {
                    "salesforce": _sf_id(i),
                    "sap": f"{i + 100000:010d}",
                    "shopify": str(7_000_000 + i),
                    "zendesk": str(900_000 + i),
                    "segment": f"usr_{i}",
                }[system]
                rec = Record(system, rid, dict(values), created, consent_at=created)
                if system == "segment":
                    rec.calls.append((created, dict(values)))
                records[system] = rec
        if not records:
            records["salesforce"] = Record("salesforce", _sf_id(i), dict(values), born, consent_at=born)
        if "segment" in records and "salesforce" in records and i % 3:
            # Identified with the CRM id: Segment's user_id names the Salesforce Contact.
            records["segment"].record_id = records["salesforce"].record_id
        if "salesforce" in records and rng.random() < DUPLICATE_CONTACTS:
            # A rep created the contact twice; the CRM's dedup job deletes the copy later.
            created = records["salesforce"].updated_at + timedelta(days=rng.randrange(1, 20))
            dup = Record("salesforce", f"003{i:012d}DUP", dict(values), created, consent_at=created)
            dup.duplicate = True
            dup.delete_in_round = rng.randrange(2, len(ROUNDS))
            records["salesforce:duplicate"] = dup
        if "sap" in records and len(records) > 1 and rng.random() < SAP_DELETIONS:
            records["sap"].delete_in_round = rng.randrange(2, len(ROUNDS))
        truth_at = dict.fromkeys(values, born)
        persons.append(Person(i, dict(values), truth_at, records))
    wrong_merges = _family_mailboxes(rng, persons)

    if formats is None:
        formats = FORMATS
    elif isinstance(formats, str):
        formats = dict.fromkeys(FORMATS, formats)
    files: list[tuple[str, str, Path]] = []
    events = bad = 0
    for k, round_end in enumerate(ROUNDS):
        round_start = ROUNDS[k - 1] if k else START
        if k:
            for person in persons:
                _live(rng, person, round_start, round_end, k)
        written, n, m = export_round(folder / f"round{k + 1}", persons, k, formats, malformed)
        files += written
        events += n
        bad += m
    deleted = sum(not rec.live for p in persons for rec in p.records.values())
    return World(
        persons, files, events, malformed_rows=bad, deleted_records=deleted, wrong_merges=wrong_merges
    )


def _family_mailboxes(rng: random.Random, persons: list[Person]) -> list[tuple[str, str]]:
    """Make some people a shop account on the previous person's mailbox (a wrong merge)."""
    out: list[tuple[str, str]] = []
    taken: set[int] = set()
    for j in range(1, len(persons)):
        if rng.random() >= FAMILY_MAILBOXES or j - 1 in taken:
            continue
        relative, person = persons[j - 1], persons[j]
        anchor = next(
            (
                rec
                for rec in relative.records.values()
                if rec.system in ("salesforce", "shopify", "zendesk")
                and not rec.duplicate
                and rec.delete_in_round is None
            ),
            None,
        )
        if anchor is None:
            continue
        person.truth["email"] = relative.truth["email"]
        created = min(r.updated_at for r in person.records.values())
        person.records = {
            "shopify": Record("shopify", str(7_000_000 + j), dict(person.truth), created, consent_at=created)
        }
        person.family = relative.family = True
        taken |= {j - 1, j}
        out.append(
            (
                f"shopify:customers:{7_000_000 + j}",
                f"{anchor.system}:{OBJECT[anchor.system]}:{anchor.record_id}",
            )
        )
    return out


def _new_value(rng: random.Random, attr: str, person: Person) -> Any:
    if attr == "phone":
        return rng.choice(PLACES)[4] + str(rng.randrange(1_000_000, 9_999_999))
    if attr == "email":
        return f"{person.truth['first_name'].lower()}.{rng.randrange(10**6)}@mail.example".replace("é", "e")
    if attr == "last_name":
        return rng.choice(LAST)
    if attr == "email_marketing_consent":
        return not person.truth["email_marketing_consent"]
    raise ValueError(attr)


def _live(rng: random.Random, person: Person, start: datetime, end: datetime, k: int) -> None:
    """Real changes (each in one system), re-stamps, logins and deletions between two rounds."""
    span = int((end - start).total_seconds())
    editable = [rec for rec in person.live_records() if not rec.duplicate]
    for _ in range(rng.choice((0, 0, 1, 1))):
        when = start + timedelta(seconds=rng.randrange(60, span - 60))
        kind = rng.choice(("phone", "phone", "address", "email_marketing_consent", "last_name", "email"))
        needs = "city" if kind == "address" else kind
        holders = [rec for rec in editable if needs in HOLDS[rec.system]]
        # Any system may take a new address while the others keep the old one: identity
        # remembers the old one, so the records stay one customer (SPEC §8). A shared
        # family mailbox stays as it is, so the wrong merge stays what the operator fixed.
        if kind == "email" and person.family:
            continue
        if kind == "email":
            # SAP's address lives in ADR6, which KNA1 joins as landed: a bulk load of several
            # rounds at once sees only the latest address, so its history would differ from
            # round-by-round ingest. The ERP keeps its address; the other systems change theirs.
            holders = [rec for rec in holders if rec.system != "sap"]
        if not holders:
            continue
        rec = rng.choice(holders)
        system = rec.system
        if kind == "email" and len(person.live_records()) > 1:
            person.email_changed = True
        if kind == "address":
            city, postal, country, _, _ = rng.choice(PLACES)
            changed = {"street": rng.choice(STREETS), "city": city, "postal_code": postal, "country": country}
        else:
            changed = {kind: _new_value(rng, kind, person)}
        for attr, value in changed.items():
            person.truth[attr] = value
            person.truth_at[attr] = when
            rec.values[attr] = value
        rec.updated_at = max(rec.updated_at, when)
        if "email_marketing_consent" in changed:
            rec.consent_at = when
        if system == "segment":
            rec.calls.append((when, {a: v for a, v in changed.items() if a in HOLDS["segment"]}))
        rec.dirty = True
    # Unrelated edits and bulk jobs: the record is re-written, its mapped fields are not.
    for rec in person.live_records():
        if rec.system != "segment" and rng.random() < 0.3:
            rec.updated_at = max(rec.updated_at, start + timedelta(seconds=rng.randrange(60, span - 60)))
            rec.dirty = True
    # A login: the app identifies the user with the traits it cached, stale or not, at the
    # login's time. Only the field-level rule can tell that nothing changed.
    segment = person.records.get("segment")
    if segment is not None and rng.random() < LOGINS:
        when = start + timedelta(seconds=rng.randrange(60, span - 60))
        segment.calls.append((when, {a: segment.values[a] for a in HOLDS["segment"]}))
    for rec in person.live_records():
        if rec.delete_in_round is not None and rec.delete_in_round <= k and _redundant(rec, person):
            rec.deleted_at = start + timedelta(seconds=rng.randrange(60, span - 60))
            rec.updated_at = max(rec.updated_at, rec.deleted_at)
            rec.dirty = True


def _redundant(rec: Record, person: Person) -> bool:
    """Whether every true value the record holds is also held by another live record.

    Deleting a record that alone holds a true value would leave a truth no system can
    show; the generator waits until that is no longer the case.
    """
    others = [other for other in person.live_records() if other is not rec]
    return bool(others) and all(
        any(attr in HOLDS[o.system] and o.values[attr] == person.truth[attr] for o in others)
        for attr in SCORED
        if attr in HOLDS[rec.system] and rec.values[attr] == person.truth[attr]
    )
