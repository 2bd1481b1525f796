"""Erasure is complete: after `aag erase` + `aag vacuum`, no file under the warehouse holds
the customer's values (decoded, not grepped in compressed bytes), and later batches that
carry the same source records are suppressed, not re-created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from aag.errors import NotFoundError
from aag.service import AagService
from aag.serving.intake import Intake, parse_calls

from .tables import tally

SF_ID = "0035g00000EraseAAA"
BY = ("--requested-by", "dpo@example.org")
#: Everything that identifies the erased person, raw and normalised.
SECRETS = (
    "Erase.Me@Example.com",
    "erase.me@example.com",
    "+49 30 9999999",
    "+49309999999",
    "Eraselda",
    "Geheimweg 7",
    SF_ID,
    "0000777001",
)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _contact(record_id: str, first: str, email: str, phone: str, when: str) -> dict[str, Any]:
    return {
        "Id": record_id,
        "FirstName": first,
        "LastName": "Muster",
        "Email": email,
        "Phone": phone,
        "MailingStreet": "Geheimweg 7" if record_id == SF_ID else "Open St 1",
        "LastModifiedDate": when,
        "IsDeleted": False,
    }


def _texts(value: object) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return [] if value is None else [str(value)]


def scan(warehouse: Path) -> dict[str, list[str]]:
    """Every file under the warehouse, decoded: Parquet cell by cell, the rest as text."""
    found: dict[str, list[str]] = {}
    files = sorted(p for p in warehouse.rglob("*") if p.is_file())
    for path in files:
        if path.suffix == ".parquet":
            cells = [t for row in pq.read_table(path).to_pylist() for t in _texts(row)]
            text = "\n".join(cells)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        hits = [s for s in SECRETS if s.lower() in text.lower()]
        if hits:
            found[str(path.relative_to(warehouse))] = hits
    if not found:
        tally("warehouse files scanned after erasure, none holding an erased value", len(files))
    return found


@pytest.fixture
def erased(tmp_path) -> dict[str, Any]:
    wh = tmp_path / "wh"
    svc = AagService(str(wh))
    svc.init()
    other = "0035g00000KeepsAAA"
    secret_mail, secret_phone = "Erase.Me@Example.com", "+49 30 9999999"
    svc.ingest(
        "salesforce",
        "Contact",
        [
            _write(
                tmp_path / "sf.jsonl",
                [
                    _contact(SF_ID, "Eraselda", secret_mail, secret_phone, "2025-01-01T00:00:00Z"),
                    _contact(other, "Kept", "kept@example.com", "+49 30 1111111", "2025-01-01T00:00:00Z"),
                ],
            )
        ],
    )
    svc.ingest(
        "salesforce",
        "ContactHistory",
        [
            _write(
                tmp_path / "hist.jsonl",
                [
                    {
                        "Id": "017000000000001",
                        "ContactId": SF_ID,
                        "Field": "Phone",
                        "OldValue": "+49 30 5555555",
                        "NewValue": secret_phone,
                        "CreatedDate": "2024-12-31T10:00:00Z",
                    }
                ],
            )
        ],
    )
    svc.ingest(
        "sap",
        "ADR6",
        [
            _write(
                tmp_path / "adr6.jsonl",
                [{"ADDRNUMBER": "A777", "CONSNUMBER": "001", "SMTP_ADDR": secret_mail}],
            )
        ],
    )
    svc.ingest(
        "sap",
        "KNA1",
        [
            _write(
                tmp_path / "kna1.jsonl",
                [
                    {
                        "KUNNR": "0000777001",
                        "NAME1": "Eraselda",
                        "NAME2": "Muster",
                        "ADRNR": "A777",
                        "LAEDA": "20250102",
                    }
                ],
            )
        ],
    )
    # A shop record of the same person with a bad phone: its raw row sits in quarantine too.
    svc.ingest(
        "shopify",
        "customers",
        [
            _write(
                tmp_path / "shop.jsonl",
                [
                    {
                        "id": 4242,
                        "email": secret_mail,
                        "phone": "call Eraselda",
                        "updated_at": "2025-01-03T00:00:00Z",
                    }
                ],
            )
        ],
    )
    svc.ingest(
        "zendesk",
        "users",
        [
            _write(
                tmp_path / "zd.jsonl",
                [
                    {
                        "id": 99,
                        "name": "Eraselda Muster",
                        "email": secret_mail,
                        "external_id": SF_ID,
                        "updated_at": "2025-01-04T00:00:00Z",
                    }
                ],
            )
        ],
    )
    # Rows of the person that never became records: a contact whose Id is malformed, two
    # Zendesk users quarantined for their time, and an identify call still in the intake spool.
    svc.ingest(
        "salesforce",
        "Contact",
        [
            _write(
                tmp_path / "sf-bad-id.jsonl",
                [_contact("not an id!", "Eraselda", secret_mail, secret_phone, "2025-01-05T00:00:00Z")],
            )
        ],
    )
    reasons = {r["reason"] for r in svc.warehouse.quarantine().to_pylist() if r["source_object"] == "Contact"}
    assert reasons == {"invalid record id (Id)"}
    svc.ingest(
        "zendesk",
        "users",
        [
            _write(
                tmp_path / "zd-bad-time.jsonl",
                [
                    {"id": 555, "name": "E. Muster", "email": secret_mail, "updated_at": "soon"},
                    # Only the phone, spelt as the graph stores it: found by the node's value.
                    {"id": 556, "name": "E. M.", "phone": "+49309999999", "updated_at": "soon"},
                ],
            )
        ],
    )
    spool = Intake(svc.warehouse.intake_root, lambda path: None)  # type: ignore[arg-type,return-value]
    spool.accept(
        parse_calls(
            json.dumps(
                {
                    "batch": [
                        {"userId": "web-77", "traits": {"email": secret_mail, "firstName": "Eraselda"}},
                        {"userId": "web-78", "traits": {"email": "kept@example.com"}},
                    ]
                }
            ).encode(),
            batch=True,
        )
    )
    customer = svc.find_customer("salesforce", SF_ID)
    assert svc.find_customer("sap", "0000777001") == svc.find_customer("zendesk", "99") == customer
    assert scan(wh), "the secrets must be somewhere before the erasure, or the scan proves nothing"
    done = subprocess.run(
        [sys.executable, "-m", "aag.cli", "erase", "--customer", customer, "--warehouse", str(wh), *BY],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    vacuum = subprocess.run(
        [sys.executable, "-m", "aag.cli", "vacuum", "--warehouse", str(wh)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert vacuum.returncode == 0, vacuum.stderr
    return {"svc": svc, "wh": wh, "customer": customer, "other": other, "tmp": tmp_path}


def test_no_file_under_the_warehouse_holds_the_erased_values(erased):
    assert scan(erased["wh"]) == {}
    # Only the person's rows went: the other caller's spooled call is still there.
    spooled = [p.read_text() for p in erased["svc"].warehouse.intake_root.rglob("*.jsonl")]
    assert any("kept@example.com" in text for text in spooled)
    svc = erased["svc"]
    # The other customer is untouched.
    assert svc.profile(svc.find_customer("salesforce", erased["other"]))["email"] == "kept@example.com"
    with pytest.raises(NotFoundError):
        svc.find_customer("salesforce", SF_ID)


def test_the_erasure_log_says_who_and_when_but_holds_no_value(erased):
    log = erased["svc"].warehouse.erasures().to_pylist()
    assert {r["requested_by"] for r in log} == {"dpo@example.org"}
    assert {(r["source_system"], r["source_object"]) for r in log} >= {
        ("salesforce", "Contact"),
        ("salesforce", "ContactHistory"),
        ("sap", "KNA1"),
        ("sap", "ADR6"),
        ("shopify", "customers"),
        ("zendesk", "users"),
    }
    assert all(r["erased_at"] is not None and len(r["record_key"]) == 64 for r in log)


def test_later_batches_carrying_the_erased_records_are_suppressed(erased):
    svc, tmp = erased["svc"], erased["tmp"]
    again = svc.ingest(
        "salesforce",
        "Contact",
        [
            _write(
                tmp / "sf-again.jsonl",
                [
                    _contact(
                        SF_ID, "Eraselda", "Erase.Me@Example.com", "+49 30 9999999", "2025-06-01T00:00:00Z"
                    ),
                    _contact(
                        "0035g00000NewbeAAA",
                        "New",
                        "new@example.com",
                        "+49 30 2222222",
                        "2025-06-01T00:00:00Z",
                    ),
                ],
            )
        ],
    )[0]
    assert (again.rows_suppressed, again.rows_landed, again.rows_processed) == (1, 1, 1)
    with pytest.raises(NotFoundError):
        svc.find_customer("salesforce", SF_ID)
    svc.find_customer("salesforce", "0035g00000NewbeAAA")
    svc.vacuum()
    assert scan(erased["wh"]) == {}
