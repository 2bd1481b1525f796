"""Each system's records as it exports them: its columns, formats and malformed rows.

:func:`export_round` writes one round's files: the records each system changed since the
last round, rendered in that system's own shape (:func:`_row`, Segment's identify calls),
with one malformed row per file (:data:`MALFORMED`), as JSON Lines, CSV or Parquet.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aag.world.model import OBJECT, ROUNDS, START, Person, Record, country_iso, country_name


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


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
            "MailingCountry": country_name(v["country"]),
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
                "LAND1": country_iso(v["country"]),
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
            "default_address_country_code": country_iso(v["country"]),
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


def export_round(
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
