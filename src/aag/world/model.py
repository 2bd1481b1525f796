"""The world's fixed facts and data types: systems, places, rounds, people and records.

What every part of the generator agrees on: which system holds which attributes and in
what format and object it exports them, the places people live, the export rounds, and
the :class:`Person`, :class:`Record` and :class:`World` the generation fills in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
#: city, postal code, country name (CRM style), ISO code, phone prefix
PLACES = (
    ("Berlin", "10115", "Germany", "DE", "+49 30 "),
    ("München", "80802", "Germany", "DE", "+49 89 "),
    ("Paris", "75002", "France", "FR", "+33 1 "),
    ("Wien", "1010", "Austria", "AT", "+43 1 "),
    ("Madrid", "28013", "Spain", "ES", "+34 91 "),
    ("London", "sw1a 1aa", "United Kingdom", "GB", "+44 20 "),
)

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
#: Each system's export format: Salesforce's Bulk API returns CSV, SAP extracts land as
#: Parquet, the others deliver JSON.
FORMATS = {"salesforce": "csv", "sap": "parquet", "shopify": "jsonl", "zendesk": "jsonl", "segment": "jsonl"}
#: The source object each system's records are exported as.
OBJECT = {
    "salesforce": "Contact",
    "sap": "KNA1",
    "shopify": "customers",
    "zendesk": "users",
    "segment": "identifies",
}
#: Export times: an initial full export, then every two months the records each system
#: changed since the last one (a CDC feed polled that often).
ROUNDS = tuple(datetime(2025 + m // 12, m % 12 + 1, 1, tzinfo=UTC) for m in range(0, 14, 2))
START = datetime(2024, 1, 1, tzinfo=UTC)


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


def country_name(iso_or_name: str) -> str:
    """The CRM-style country name of a place's ISO code or name (else the text as given)."""
    for _, _, name, iso, _ in PLACES:
        if iso_or_name in (iso, name):
            return name
    return iso_or_name


def country_iso(iso_or_name: str) -> str:
    """The ISO code of a place's country name or code (else the text as given)."""
    for _, _, name, iso, _ in PLACES:
        if iso_or_name in (iso, name):
            return iso
    return iso_or_name
