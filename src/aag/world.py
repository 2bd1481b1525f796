"""A generated five-source customer world with known truth.

People live in Salesforce, SAP, Shopify, Zendesk and Segment. Over seven sync
rounds they change fields in *one* system at a time (a new phone in the shop, a
move entered by the ERP clerk, a consent click in the CRM), while unrelated
edits and bulk jobs re-stamp whole records. Each system exports what it holds
in its own format and with its own notion of time (record-level timestamps,
SAP's day-precision ``LAEDA``, Shopify's field-level consent time, Segment's
per-call traits).

The world also has what real feeds have: login identifies that re-send the traits the
app cached (stale, at a fresh timestamp), people who change their e-mail in one system
while the others keep the old one (identity must remember), relatives' shop accounts on
a family mailbox (a wrong merge, split by an operator's unlink), duplicate CRM contacts
that are later deleted (``IsDeleted``), SAP customers flagged for deletion (``LOEVM =
'X'``), and a few malformed rows in every round (missing keys, unparseable times,
invalid SAP dates, traits that are not an object, impossible times: year 9999 or before
1900) that must end in quarantine. Files come in all three bronze formats: Salesforce's
Bulk API CSV, SAP extracts as Parquet, and JSON Lines from Shopify, Zendesk and Segment.

Because the generator knows the true current value of every field (the last
real change), it can score any resolution: :func:`score` compares AAG's
field-level profiles with a record-level "latest record wins" view built from
the same files and the same customer clusters, so the difference is the
resolution rule alone.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aag.normalize import normalise

#: Attributes scored (``full_name`` is left out: only Zendesk and SAP hold it, as one
#: field, so both views see the same values).
SCORED = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "street",
    "city",
    "postal_code",
    "country",
    "email_marketing_consent",
)
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

FIRST = ("Ana", "Ben", "Chloé", "Dev", "Eva", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Kai", "Lea")
LAST = ("Lima", "Berg", "Novak", "Rossi", "Okafor", "Schmidt", "Dubois", "Tanaka", "Silva", "Weber")
#: city, postal code, country name (CRM style), ISO code, phone prefix
PLACES = (
    ("Berlin", "10115", "Germany", "DE", "+49 30 "),
    ("München", "80802", "Germany", "DE", "+49 89 "),
    ("Paris", "75002", "France", "FR", "+33 1 "),
    ("Wien", "1010", "Austria", "AT", "+43 1 "),
    ("Madrid", "28013", "Spain", "ES", "+34 91 "),
    ("London", "sw1a 1aa", "United Kingdom", "GB", "+44 20 "),
)
STREETS = ("Hauptstr. 1", "Rue de Rivoli 5", "Gran Vía 12", "Ringstraße 3", "High St 9", "Parkweg 22")

#: Which systems hold which attributes (SPEC §7).
HOLDS = {
    "salesforce": {
        "email",
        "phone",
        "first_name",
        "last_name",
        "street",
        "city",
        "postal_code",
        "country",
        "email_marketing_consent",
    },
    "sap": {"email", "phone", "full_name", "street", "city", "postal_code", "country"},
    "shopify": {
        "email",
        "phone",
        "first_name",
        "last_name",
        "street",
        "city",
        "postal_code",
        "country",
        "email_marketing_consent",
    },
    "zendesk": {"email", "phone", "full_name"},
    "segment": {"email", "phone", "first_name", "last_name"},
}
PRESENCE = {"salesforce": 0.85, "sap": 0.35, "shopify": 0.6, "zendesk": 0.35, "segment": 0.45}
#: Each system's export format: Salesforce's Bulk API returns CSV, SAP extracts land as
#: Parquet, the others deliver JSON.
FORMATS = {"salesforce": "csv", "sap": "parquet", "shopify": "jsonl", "zendesk": "jsonl", "segment": "jsonl"}
#: Share of Salesforce people with a duplicate contact (deleted in a later round), share of
#: SAP customers flagged for deletion, share of Segment users who log in per round.
DUPLICATE_CONTACTS = 0.03
SAP_DELETIONS = 0.05
LOGINS = 0.35
#: Share of people whose only record is a shop account on a relative's mailbox: identity
#: joins them to the relative's customer, and an operator splits them off with an unlink.
FAMILY_MAILBOXES = 0.02
#: Export times: an initial full export, then every two months the records each system
#: changed since the last one (a CDC feed polled that often).
ROUNDS = tuple(datetime(2025 + m // 12, m % 12 + 1, 1, tzinfo=UTC) for m in range(0, 14, 2))
START = datetime(2024, 1, 1, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Record:
    """One person's record in one system, as that system holds it."""

    system: str
    record_id: str
    values: dict[str, Any]
    updated_at: datetime
    consent_at: datetime | None = None
    #: ``(time, {trait: value})`` identify calls (Segment only).
    calls: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    dirty: bool = True
    #: A duplicate contact nobody edits (Salesforce only).
    duplicate: bool = False
    #: The round in which the system deletes the record, if it does.
    delete_in_round: int | None = None
    deleted_at: datetime | None = None

    @property
    def live(self) -> bool:
        """Whether the system still holds the record."""
        return self.deleted_at is None


@dataclass
class Person:
    """A real customer: the truth, and their records."""

    index: int
    truth: dict[str, Any]
    truth_at: dict[str, datetime]
    #: By system, plus ``salesforce:duplicate`` for a duplicate contact.
    records: dict[str, Record]
    #: Changed their e-mail in one system while other systems held the old one.
    email_changed: bool = False
    #: Shares a relative's mailbox (one side of a wrong merge an operator unlinks).
    family: bool = False

    def live_records(self) -> list[Record]:
        """The records their systems still hold."""
        return [rec for rec in self.records.values() if rec.live]


@dataclass
class World:
    """The generated people and the files each round exported."""

    people: list[Person]
    files: list[tuple[str, str, Path]]
    field_events_estimate: int
    #: Malformed rows written (each must end in quarantine with a reason).
    malformed_rows: int = 0
    #: Records their systems deleted (``IsDeleted``, ``LOEVM``).
    deleted_records: int = 0
    #: ``(record to split off, record of the customer it leaves)`` as ``SOURCE:OBJECT:ID``:
    #: the wrong merges an operator fixes with ``aag identity unlink``.
    wrong_merges: list[tuple[str, str]] = field(default_factory=list)


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
        malformed: Put one malformed row (see :data:`MALFORMED`) in every file but ADR6.

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
        written, n, m = _export(folder / f"round{k + 1}", persons, k, formats, malformed)
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


def _country_name(iso_or_name: str) -> str:
    for _, _, name, iso, _ in PLACES:
        if iso_or_name in (iso, name):
            return name
    return iso_or_name


def _country_iso(iso_or_name: str) -> str:
    for _, _, name, iso, _ in PLACES:
        if iso_or_name in (iso, name):
            return iso
    return iso_or_name


def _row(rec: Record, person: Person) -> dict[str, Any] | list[dict[str, Any]]:
    v = rec.values
    full = f"{v['first_name']} {v['last_name']}"
    sf_link = person.records.get("salesforce")
    if rec.system == "salesforce":
        return {
            "Id": rec.record_id,
            "AccountId": None,
            "FirstName": v["first_name"],
            "LastName": v["last_name"],
            "Email": v["email"],
            "Phone": v["phone"],
            "MailingStreet": v["street"],
            "MailingCity": v["city"],
            "MailingPostalCode": v["postal_code"],
            "MailingCountry": _country_name(v["country"]),
            "HasOptedOutOfEmail": not v["email_marketing_consent"],
            "LastModifiedDate": _iso(rec.updated_at),
            "IsDeleted": not rec.live,
        }
    if rec.system == "sap":
        return [
            {
                "KUNNR": rec.record_id,
                "NAME1": v["first_name"],
                "NAME2": v["last_name"],
                "STRAS": v["street"],
                "ORT01": v["city"],
                "PSTLZ": v["postal_code"],
                "LAND1": _country_iso(v["country"]),
                "TELF1": v["phone"],
                "ADRNR": "A" + rec.record_id,
                "ERDAT": rec.updated_at.strftime("%Y%m%d"),
                "LAEDA": rec.updated_at.strftime("%Y%m%d"),
                "LOEVM": "" if rec.live else "X",
            },
            {
                "ADDRNUMBER": "A" + rec.record_id,
                "PERSNUMBER": "",
                "CONSNUMBER": "001",
                "SMTP_ADDR": v["email"],
                "FLGDEFAULT": "X",
                "DATE_FROM": "20000101",
            },
        ]
    if rec.system == "shopify":
        return {
            "id": int(rec.record_id),
            "email": v["email"],
            "phone": v["phone"],
            "first_name": v["first_name"],
            "last_name": v["last_name"],
            "accepts_marketing": v["email_marketing_consent"],
            "accepts_marketing_updated_at": _iso(rec.consent_at or rec.updated_at),
            "default_address_address1": v["street"],
            "default_address_city": v["city"],
            "default_address_zip": v["postal_code"],
            "default_address_country_code": _country_iso(v["country"]),
            "created_at": _iso(rec.updated_at),
            "updated_at": _iso(rec.updated_at),
        }
    if rec.system == "zendesk":
        return {
            "id": int(rec.record_id),
            "name": full,
            "email": v["email"],
            "phone": v["phone"],
            "external_id": sf_link.record_id if sf_link and person.index % 5 else None,
            "organization_id": None,
            "created_at": _iso(rec.updated_at),
            "updated_at": _iso(rec.updated_at),
        }
    raise ValueError(rec.system)


_TRAIT = {"email": "email", "phone": "phone", "first_name": "firstName", "last_name": "lastName"}
OBJECT = {
    "salesforce": "Contact",
    "sap": "KNA1",
    "shopify": "customers",
    "zendesk": "users",
    "segment": "identifies",
}


#: Malformed rows, one per object and round in turn: ``(object key, overrides, why)``. The
#: record ids belong to nobody in the world, so the truth does not depend on them.
MALFORMED: dict[str, tuple[dict[str, Any], ...]] = {
    "salesforce": (
        {"Id": ""},
        {"Id": "003GHOST0000000001", "LastModifiedDate": "last tuesday"},
        {"Id": "003GHOST0000000002", "LastModifiedDate": "9999-12-31T23:59:59.000+0000"},
    ),
    "sap": (
        {"KUNNR": "", "LAEDA": "20250101"},
        {"KUNNR": "9999999999", "LAEDA": "20251341"},
        {"KUNNR": "9999999998", "LAEDA": "18991231"},
    ),
    "shopify": (
        {"id": None},
        {"id": 6999999, "updated_at": "soon"},
        {"id": 6999998, "updated_at": "1850-01-01T00:00:00Z"},
    ),
    "zendesk": (
        {"id": 899999, "updated_at": "n/a"},
        {"id": None},
        {"id": 899998, "updated_at": "2999-01-01T00:00:00Z"},
    ),
    "segment": (
        {"message_id": "bad-traits", "user_id": "ghost", "traits": ["email", "ghost@example.com"]},
        {
            "message_id": "bad-time",
            "user_id": "ghost",
            "timestamp": "yesterday",
            "traits": {"firstName": "Ghost"},
        },
        {
            "message_id": "far-future",
            "user_id": "ghost",
            "timestamp": "9999-12-31T00:00:00Z",
            "traits": {"firstName": "Ghost"},
        },
    ),
}
#: Fields cleared in a malformed row so that it names no real person.
_IDENTIFIERS = ("Email", "email", "SMTP_ADDR", "Phone", "phone", "TELF1", "external_id", "ADRNR")


def _malformed(key: str, template: dict[str, Any], k: int) -> dict[str, Any]:
    overrides = MALFORMED[key][k % len(MALFORMED[key])]
    row = {col: (None if col in _IDENTIFIERS else value) for col, value in template.items()}
    row.update(overrides)
    if key == "segment":
        row["message_id"] = f"{overrides['message_id']}-{k}"
        row.setdefault("traits", {})
    return row


def _cell(value: Any) -> str:
    """A value as a CSV or Parquet string (Segment traits as JSON text, SPEC §7)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write(path: Path, rows: list[dict[str, Any]], fmt: str) -> Path:
    """Write rows as JSON Lines, CSV (empty cell = null) or Parquet (string columns)."""
    path = path.with_suffix("." + fmt)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({c: "" if v is None else _cell(v) for c, v in row.items()})
    elif fmt == "parquet":
        columns = {
            c: pa.array([None if r[c] is None else _cell(r[c]) for r in rows], pa.string()) for c in rows[0]
        }
        pq.write_table(pa.table(columns), path)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return path


def _export(
    folder: Path, persons: list[Person], k: int, formats: Mapping[str, str], malformed: bool
) -> tuple[list[tuple[str, str, Path]], int, int]:
    """Write one round's files: the records each system changed since the last round.

    Returns:
        The files, the field events they hold (about), and the malformed rows written.
    """
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in (*OBJECT, "sap_adr6")}
    for person in persons:
        for rec in person.records.values():
            if rec.system == "segment":
                for n, (when, traits) in enumerate(rec.calls):
                    after = ROUNDS[k - 1] if k else START - timedelta(days=1)
                    if after < when <= ROUNDS[k]:
                        rows["segment"].append(
                            {
                                "message_id": f"m-{rec.record_id}-{n}",
                                "user_id": rec.record_id,
                                "anonymous_id": f"anon-{person.index}",
                                "timestamp": _iso(when),
                                "received_at": _iso(when + timedelta(seconds=2)),
                                "traits": {_TRAIT[a]: v for a, v in traits.items() if a in _TRAIT},
                            }
                        )
                continue
            if not rec.dirty:
                continue
            rec.dirty = False
            out = _row(rec, person)
            if isinstance(out, list):
                rows["sap"].append(out[0])
                rows["sap_adr6"].append(out[1])
            else:
                rows[rec.system].append(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    events = bad = 0
    # ADR6 lands before KNA1: the email is joined when the KNA1 rows are processed.
    for key in ("salesforce", "sap_adr6", "sap", "shopify", "zendesk", "segment"):
        if not rows[key]:
            continue
        system, obj = ("sap", "ADR6") if key == "sap_adr6" else (key, OBJECT[key])
        events += len(rows[key]) * (1 if key == "sap_adr6" else 10)
        if malformed and key in MALFORMED:
            # Mid-file, so that the rows around it must still be processed.
            rows[key].insert(len(rows[key]) // 2, _malformed(key, rows[key][0], k))
            bad += 1
        path = _write(folder / f"{system}_{obj}", rows[key], formats[system])
        written.append((system, obj, path))
    return written, events, bad


def _norm(attr: str, value: Any) -> str | None:
    if value is None:
        return None
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if attr == "country":
        text = _country_iso(text)
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
