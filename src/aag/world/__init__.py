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

The package: the fixed facts and data types (:mod:`aag.world.model`), the people and
their lives (:mod:`aag.world.people`), each system's export files
(:mod:`aag.world.render`), and the scoring (:mod:`aag.world.scoring`).
"""

from __future__ import annotations

from aag.world.model import FORMATS, HOLDS, OBJECT, PLACES, ROUNDS, SCORED, START, Person, Record, World
from aag.world.people import (
    DUPLICATE_CONTACTS,
    FAMILY_MAILBOXES,
    FIRST,
    LAST,
    LOGINS,
    PRESENCE,
    SAP_DELETIONS,
    STREETS,
    generate,
)
from aag.world.render import MALFORMED
from aag.world.scoring import GROUPS, NORMALISER, Score, record_level_values, score

__all__ = [
    "DUPLICATE_CONTACTS",
    "FAMILY_MAILBOXES",
    "FIRST",
    "FORMATS",
    "GROUPS",
    "HOLDS",
    "LAST",
    "LOGINS",
    "MALFORMED",
    "NORMALISER",
    "OBJECT",
    "PLACES",
    "PRESENCE",
    "ROUNDS",
    "SAP_DELETIONS",
    "SCORED",
    "START",
    "STREETS",
    "Person",
    "Record",
    "Score",
    "World",
    "generate",
    "record_level_values",
    "score",
]
