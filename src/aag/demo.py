"""The seed's case end to end: a CRM full-record re-sync must not win unchanged fields.

Alex's phone was changed at 09:00 in the support desk (Zendesk). At 09:05 a
sales rep edits Alex's email in Salesforce, and Salesforce re-sends the whole
contact, phone included, stamped 09:05. A record-level CDP now shows the old
phone; AAG keeps the Salesforce phone edge at the time that field really last
changed, so the 09:00 phone wins.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aag.errors import InputError, NotFoundError
from aag.world import Score, World, generate, score

if TYPE_CHECKING:
    from aag.pipeline import BatchReport
    from aag.service import AagService

DEMO_CONTACT = "0035g00000DemoAAAR"
DEMO_ZENDESK_USER = "9001"
DEMO_ACCOUNT = "0015g00000AcmeAAAR"


@dataclass(frozen=True)
class DemoBatch:
    """One input file of the demo."""

    source_system: str
    source_object: str
    file_name: str
    rows: tuple[dict[str, Any], ...]
    story: str


def _contact(**changes: Any) -> dict[str, Any]:
    base = {
        "Id": DEMO_CONTACT,
        "AccountId": DEMO_ACCOUNT,
        "FirstName": "Alex",
        "LastName": "Example",
        "Email": "alex@example.com",
        "Phone": "+49 111 000 0000",
        "MailingStreet": "Leopoldstr. 1",
        "MailingCity": "München",
        "MailingPostalCode": "80802",
        "MailingCountry": "Germany",
        "HasOptedOutOfEmail": False,
        "LastModifiedDate": "2024-03-01T10:00:00.000+0000",
        "IsDeleted": False,
    }
    base.update(changes)
    return base


def _others(day: str) -> list[dict[str, Any]]:
    people = [
        ("Maria", "Rossi", "+39 06 1234 5678", "Roma", "IT"),
        ("Jan", "Novak", "+420 601 123 456", "Praha", "CZ"),
        ("Sofia", "Berg", "+46 8 123 456 78", "Stockholm", "SE"),
    ]
    out = []
    for i, (first, last, phone, city, country) in enumerate(people):
        out.append(
            {
                "Id": f"0035g00000Other{i}AA",
                "AccountId": None,
                "FirstName": first,
                "LastName": last,
                "Email": f"{first.lower()}.{last.lower()}@example.org",
                "Phone": phone,
                "MailingStreet": None,
                "MailingCity": city,
                "MailingPostalCode": None,
                "MailingCountry": country,
                "HasOptedOutOfEmail": i == 1,
                "LastModifiedDate": day,
                "IsDeleted": False,
            }
        )
    return out


def demo_batches() -> list[DemoBatch]:
    """The demo's input files, in arrival order."""
    return [
        DemoBatch(
            "salesforce",
            "Contact",
            "salesforce_contact_2024-03-01.jsonl",
            (_contact(), *_others("2024-03-01T10:00:00Z")),
            "2024-03-01 Salesforce: initial load; Alex's phone is +49 111 000 0000",
        ),
        DemoBatch(
            "salesforce",
            "Account",
            "salesforce_account_2024-03-01.jsonl",
            (
                {
                    "Id": DEMO_ACCOUNT,
                    "Name": "Acme GmbH",
                    "Website": "https://www.acme.example/",
                    "Industry": "Manufacturing",
                    "BillingCity": "München",
                    "BillingCountry": "Germany",
                    "LastModifiedDate": "2024-03-01T10:00:00.000+0000",
                    "IsDeleted": False,
                },
            ),
            "2024-03-01 Salesforce: Alex works at Acme GmbH (the contact's AccountId)",
        ),
        DemoBatch(
            "salesforce",
            "Asset",
            "salesforce_asset_2024-03-01.jsonl",
            tuple(
                {
                    "Id": f"02i5g00000Asset{n}AA",
                    "AccountId": DEMO_ACCOUNT,
                    "Name": name,
                    "SerialNumber": serial,
                    "Status": "Installed",
                    "LastModifiedDate": "2024-03-01T10:00:00.000+0000",
                    "IsDeleted": False,
                }
                for n, (name, serial) in enumerate(
                    (("Press 3000", "PR-3000-0042"), ("Robot Arm", "RA-7-1138"))
                )
            ),
            "2024-03-01 Salesforce: Acme owns a press and a robot arm (each Asset's AccountId)",
        ),
        DemoBatch(
            "zendesk",
            "users",
            "zendesk_users_2024-06-01.jsonl",
            (
                {
                    "id": DEMO_ZENDESK_USER,
                    "name": "Alex Example",
                    "email": "alex@example.com",
                    "phone": "+49 111 000 0000",
                    "external_id": DEMO_CONTACT,
                    "organization_id": None,
                    "created_at": "2024-06-01T08:00:00Z",
                    "updated_at": "2024-06-01T08:00:00Z",
                },
            ),
            "2024-06-01 Zendesk: Alex opens a ticket; same phone",
        ),
        DemoBatch(
            "zendesk",
            "users",
            "zendesk_users_2026-03-01T0900.jsonl",
            (
                {
                    "id": DEMO_ZENDESK_USER,
                    "name": "Alex Example",
                    "email": "alex@example.com",
                    "phone": "+49 987 654 3210",
                    "external_id": DEMO_CONTACT,
                    "organization_id": None,
                    "created_at": "2024-06-01T08:00:00Z",
                    "updated_at": "2026-03-01T09:00:00Z",
                },
            ),
            "2026-03-01 09:00 Zendesk: Alex calls support and gives a new phone",
        ),
        DemoBatch(
            "salesforce",
            "Contact",
            "salesforce_contact_2026-03-01T0905.jsonl",
            (_contact(Email="alex.example@newco.com", LastModifiedDate="2026-03-01T09:05:00.000+0000"),),
            "2026-03-01 09:05 Salesforce: a rep edits Alex's email; the CRM re-sends the "
            "whole contact, old phone included, stamped 09:05",
        ),
    ]


def write_demo_files(folder: Path) -> list[tuple[DemoBatch, Path]]:
    """Write the demo's bronze files as JSON Lines."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for batch in demo_batches():
        path = folder / batch.file_name
        with path.open("w", encoding="utf-8") as handle:
            for row in batch.rows:
                handle.write(json.dumps(row) + "\n")
        out.append((batch, path))
    return out


def record_level_view() -> dict[str, Any]:
    """What a record-level CDP ("latest record wins") shows for Alex's phone and email."""
    latest: dict[str, tuple[str, Any]] = {}
    for batch in demo_batches():
        for row in batch.rows:
            if row.get("Id") == DEMO_CONTACT or row.get("external_id") == DEMO_CONTACT:
                stamp = str(row.get("LastModifiedDate") or row.get("updated_at"))
                stamp = stamp.replace(".000+0000", "Z")
                for attr, key in (
                    ("phone", "Phone" if "Phone" in row else "phone"),
                    ("email", "Email" if "Email" in row else "email"),
                ):
                    if attr not in latest or stamp >= latest[attr][0]:
                        latest[attr] = (stamp, row[key])
    return {attr: value for attr, (_, value) in latest.items()}


@dataclass(frozen=True)
class SeedCase:
    """What the seed's case ends with: Alex's customer, profile and phone explanation."""

    customer_id: str
    profile: dict[str, Any]
    explain_phone: dict[str, Any]
    #: What a record-level CDP would show (:func:`record_level_view`).
    record_level: dict[str, Any]


def run_seed_case(
    service: AagService, folder: Path, on_batch: Callable[[DemoBatch, Path], None] | None = None
) -> SeedCase:
    """Write the seed case's files into ``folder``, ingest them in order, and read Alex back.

    Args:
        service: Service on an initialised warehouse.
        folder: Where the demo's input files go.
        on_batch: Called before each file is ingested.
    """
    for batch, path in write_demo_files(folder):
        if on_batch:
            on_batch(batch, path)
        service.ingest(batch.source_system, batch.source_object, [path])
    customer = service.find_customer("salesforce", DEMO_CONTACT)
    return SeedCase(
        customer_id=customer,
        profile=service.profile(customer, 2),
        explain_phone=service.explain(customer, "phone").as_dict(),
        record_level=record_level_view(),
    )


def _unlink(service: AagService, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Apply the operator's unlinks whose records are in the graph; returns the others."""
    left = []
    for first, second in pairs:
        try:
            service.decide_identity("unlink", [first, second], "shared family mailbox")
        except (InputError, NotFoundError):
            left.append((first, second))
    return left


def run_world(
    service: AagService,
    folder: Path,
    people: int,
    on_file: Callable[[str, str, Path], None] | None = None,
    on_report: Callable[[BatchReport], None] | None = None,
) -> tuple[Score, World]:
    """Generate the five-source world, ingest every round, and score both resolutions.

    Args:
        service: Service on an initialised warehouse.
        folder: Where the generated files go.
        people: Number of real customers.
        on_file: Called before each file is ingested.
        on_report: Called with each file's report once it is committed.

    Returns:
        The score (AAG's field-level profiles vs. latest-record-wins) and the world.
    """
    world = generate(folder, people)
    landed = quarantined = 0
    pending = list(world.wrong_merges)
    rounds = sorted({path.parent for _, _, path in world.files})
    # After the third round an operator notices the wrong merges and splits them; the
    # later rounds must keep them apart.
    noticed = [p for _, _, p in world.files if p.parent == rounds[min(2, len(rounds) - 1)]][-1]
    for system, obj, path in world.files:
        if on_file:
            on_file(system, obj, path)
        for report in service.ingest(system, obj, [path]):
            if on_report:
                on_report(report)
            landed += report.rows_landed
            quarantined += report.rows_quarantined
        if path == noticed:
            pending = _unlink(service, pending)
    pending = _unlink(service, pending)
    profiles = {str(row["customer_id"]): row for row in service.customer_profiles(1).to_pylist()}
    customer_of = {
        (str(row["source_system"]), str(row["source_record_id"])): str(row["customer_id"])
        for row in service.identity_map().to_pylist()
    }
    result = score(world, profiles, customer_of)
    result.files_by_format = dict(Counter(path.suffix.lstrip(".") for _, _, path in world.files))
    result.rows_landed, result.rows_quarantined = landed, quarantined
    result.malformed_rows, result.deleted_records = world.malformed_rows, world.deleted_records
    result.wrong_merges = len(world.wrong_merges) - len(pending)
    return result, world


def demo_warehouse(warehouse: str | None) -> str:
    """Where the demo runs: the warehouse given, else ``$AAG_WAREHOUSE``, else a new temporary folder."""
    return warehouse or os.environ.get("AAG_WAREHOUSE") or tempfile.mkdtemp(prefix="aag-demo-")


def demo_inputs(service: AagService) -> Path:
    """The folder for the demo's input files: inside a local warehouse, else a temporary one."""
    if service.warehouse.local:
        return Path(service.warehouse.uri) / "demo-input"
    return Path(tempfile.mkdtemp(prefix="aag-demo-input-"))


def explorer_link(service: AagService, customer: str, program: str) -> dict[str, str]:
    """A read-only key for the explorer, the command that serves it, and the URL to open.

    The key travels in the URL's fragment, which browsers never send to a server.

    Args:
        service: Service on a local warehouse (the key goes into its config folder).
        customer: The customer the explorer opens on.
        program: How to call aag (the command that serves the explorer starts with it).
    """
    from aag.serving.keys import KEYS_FILE, add_key, read_keys, revoke_key

    assert service.warehouse.config_dir is not None
    path = service.warehouse.config_dir / KEYS_FILE
    if path.exists() and any(k.name == "demo-explorer" for k in read_keys(path)):
        revoke_key(path, "demo-explorer")
    key = add_key(path, "demo-explorer", frozenset({"read"}))
    return {
        "command": f"{program} serve --warehouse {service.warehouse.uri}",
        "url": f"http://127.0.0.1:8787/#key={key}&customer={customer}",
    }
