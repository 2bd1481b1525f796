"""Every source object end to end: hand-written bronze rows through the real service.

Each test lands files with :class:`AagService` on a temporary warehouse (real Delta
tables) and reads back ``silver/relationships`` and ``silver/nodes``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aag.config import default_config_dir, load_config
from aag.errors import ConfigError
from aag.ids import entity_node_id, value_node_id
from aag.normalize import normalise, sf_id18, sql_normalise
from aag.service import AagService
from aag.sources.base import SOURCE_RECORD_NODE, SOURCE_RECORD_REL

ACME = sf_id18("0015g00000AcmeX")
BETA = sf_id18("0015g00000BetaY")
CONTACT = sf_id18("0035g00000Abcde")


#: A source row or an edge row as JSON-like values.
Row = dict[str, Any]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _jsonl(path: Path, rows: list[Row]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, rows: list[Row]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


class Batches:
    """Writes each batch to its own file and ingests it."""

    def __init__(self, svc: AagService, folder: Path) -> None:
        self.svc = svc
        self.folder = folder
        self.n = 0

    def __call__(self, system: str, obj: str, rows: list[Row], fmt: str = "jsonl"):
        self.n += 1
        path = self.folder / f"{self.n:03d}_{system}_{obj}.{fmt}"
        write = _csv if fmt == "csv" else _jsonl
        report = self.svc.ingest(system, obj, [write(path, rows)])[0]
        assert report.status == "committed"
        assert report.rows_landed == report.rows_processed + report.rows_quarantined
        return report


@pytest.fixture
def svc(tmp_path) -> AagService:
    service = AagService(str(tmp_path / "wh"))
    service.init()
    return service


@pytest.fixture
def ingest(svc, tmp_path) -> Batches:
    folder = tmp_path / "in"
    folder.mkdir()
    return Batches(svc, folder)


def edges(svc: AagService) -> list[Row]:
    """Every relationships row with its target node's value and type and its properties."""
    nodes = {n["node_id"]: n for n in svc.warehouse.graph.nodes().to_pylist()}
    out = []
    for e in svc.warehouse.graph.relationships().to_pylist():
        target = nodes.get(e["target_node_id"]) or {}
        out.append(
            {
                **e,
                "props": dict(e["properties"] or []),
                "value": target.get("value"),
                "target_type": target.get("node_type"),
            }
        )
    return out


def record_entity(svc: AagService, system: str, obj: str, record_id: str) -> str:
    """The entity a source record maps to, read from its identity edge."""
    target = value_node_id(SOURCE_RECORD_NODE, f"{system}:{obj}:{record_id}")
    found: set[str] = {
        e["source_node_id"]
        for e in svc.warehouse.graph.relationships().to_pylist()
        if e["rel_type"] == SOURCE_RECORD_REL and e["target_node_id"] == target
    }
    assert len(found) == 1, (system, obj, record_id, found)
    return found.pop()


def versions(svc: AagService, entity: str, rel_type: str, source: str) -> list[Row]:
    """All versions of one key K, oldest first."""
    rows = [
        e
        for e in edges(svc)
        if e["source_node_id"] == entity and e["rel_type"] == rel_type and e["source_system"] == source
    ]
    return sorted(rows, key=lambda e: e["updated_at"])


def current(svc: AagService, entity: str, rel_type: str, source: str) -> Row | None:
    rows = [e for e in versions(svc, entity, rel_type, source) if e["is_current"]]
    assert len(rows) <= 1
    return rows[0] if rows else None


def current_edge(svc: AagService, entity: str, rel_type: str, source: str) -> Row:
    """The current version of key K, which must exist."""
    row = current(svc, entity, rel_type, source)
    assert row is not None, (entity, rel_type, source)
    return row


def reasons(svc: AagService, obj: str) -> Counter[str]:
    return Counter(q["reason"] for q in svc.warehouse.quarantine().to_pylist() if q["source_object"] == obj)


# -- Salesforce ------------------------------------------------------------------------


def contact(**kw: object) -> Row:
    row: Row = {
        "Id": CONTACT,
        "AccountId": ACME,
        "FirstName": "Alex",
        "LastName": "Example",
        "Email": "alex@example.com",
        "Phone": "+49 111 000 0000",
        "MailingStreet": "Leopoldstr. 1",
        "MailingCity": "München",
        "MailingPostalCode": "80802",
        "MailingCountry": "Germany",
        "HasOptedOutOfEmail": False,
        "LastModifiedDate": "2024-03-01T10:00:00Z",
        "IsDeleted": False,
    }
    row.update(kw)
    return row


def account(**kw: object) -> Row:
    row: Row = {
        "Id": ACME,
        "Name": "Acme  GmbH",
        "Website": "https://WWW.Acme.example/",
        "Industry": "Manufacturing",
        "BillingCity": "Berlin",
        "BillingCountry": "Germany",
        "LastModifiedDate": "2025-01-01T00:00:00Z",
        "IsDeleted": False,
    }
    row.update(kw)
    return row


def asset(**kw: object) -> Row:
    row: Row = {
        "Id": "02i5g00000Pump1AAA",
        "AccountId": ACME,
        "Name": "Pump P-100",
        "SerialNumber": "SN-0001",
        "Status": "Installed",
        "LastModifiedDate": "2025-06-01T00:00:00Z",
        "IsDeleted": False,
    }
    row.update(kw)
    return row


def test_salesforce_contact_fields_keep_their_change_time_and_is_deleted_removes(svc, ingest):
    ingest("salesforce", "Contact", [contact()])
    ingest(
        "salesforce",
        "Contact",
        [contact(Email="alex.new@example.com", LastModifiedDate="2026-03-01T09:05:00Z")],
    )
    customer = record_entity(svc, "salesforce", "Contact", CONTACT)
    # The re-sync moved only the field that changed.
    assert current_edge(svc, customer, "HAS_PHONE", "salesforce")["updated_at"] == ts("2024-03-01T10:00:00Z")
    email = current_edge(svc, customer, "HAS_EMAIL", "salesforce")
    assert (email["value"], email["updated_at"]) == ("alex.new@example.com", ts("2026-03-01T09:05:00Z"))
    assert len(versions(svc, customer, "HAS_EMAIL", "salesforce")) == 2

    ingest("salesforce", "Contact", [contact(IsDeleted=True, LastModifiedDate="2026-04-01T00:00:00Z")])
    for rel in ("HAS_EMAIL", "HAS_PHONE", "HAS_FIRST_NAME", "HAS_CITY", "WORKS_AT"):
        assert current(svc, customer, rel, "salesforce") is None, rel
        last = versions(svc, customer, rel, "salesforce")[-1]
        assert last["props"]["closed_by"] == "removal"
        assert last["props"]["valid_to"].startswith("2026-04-01T00:00:00")


def test_a_file_holding_a_record_twice_gives_both_versions_in_either_order(svc, ingest):
    # Only records with several rows in a batch can have several events per key; the
    # rules look for such keys among those records alone, so both rows must count.
    older = contact(Email="alex.old@example.com", LastModifiedDate="2026-02-01T00:00:00Z")
    newer = contact(Email="alex.new@example.com", LastModifiedDate="2026-03-01T09:05:00Z")
    other = contact(Id="0035g00000OtherAAA", Email="other@example.com")
    ingest("salesforce", "Contact", [newer, other, older])
    customer = record_entity(svc, "salesforce", "Contact", CONTACT)
    emails = [(v["value"], v["is_current"]) for v in versions(svc, customer, "HAS_EMAIL", "salesforce")]
    assert emails == [("alex.old@example.com", False), ("alex.new@example.com", True)]
    # The phone did not change between the two rows: one version, at the older row's time.
    (phone,) = versions(svc, customer, "HAS_PHONE", "salesforce")
    assert phone["updated_at"] == ts("2026-02-01T00:00:00Z")


def test_a_deleted_record_leaves_its_customer_and_the_profiles_until_restored(svc, ingest):
    ingest("salesforce", "Contact", [contact()])
    zendesk_user = {
        "id": "9001",
        "name": "Alex Example",
        "email": "alex.support@example.com",
        "phone": None,
        "external_id": CONTACT,
        "organization_id": None,
        "created_at": "2024-06-01T08:00:00Z",
        "updated_at": "2024-06-01T08:00:00Z",
    }
    ingest("zendesk", "users", [zendesk_user])
    crm = record_entity(svc, "salesforce", "Contact", CONTACT)
    support = record_entity(svc, "zendesk", "users", "9001")
    # Joined through external_id, which names the CRM contact's record.
    assert svc.find_customer("zendesk", "9001") == svc.find_customer("salesforce", CONTACT) == crm
    assert {r["customer_id"] for r in svc.customer_profiles(1).to_pylist()} == {crm}

    ingest("salesforce", "Contact", [contact(IsDeleted=True, LastModifiedDate="2026-04-01T00:00:00Z")])
    record = versions(svc, crm, SOURCE_RECORD_REL, "salesforce")
    assert [r["is_current"] for r in record] == [False]
    assert record[0]["props"]["valid_to"].startswith("2026-04-01T00:00:00")
    # The deleted contact no longer holds the Zendesk user: it is a customer on its own,
    # and the deleted record is in neither the identity map nor the profiles.
    assert svc.find_customer("zendesk", "9001") == support
    assert {(r["source_system"], r["customer_id"]) for r in svc.identity_map().to_pylist()} == {
        ("zendesk", support)
    }
    profiles = svc.customer_profiles(1).to_pylist()
    assert [(p["customer_id"], p["full_name"], p["phone"]) for p in profiles] == [
        (support, "Alex Example", None)
    ]
    # Its history stays readable by its record id.
    assert svc.find_customer("salesforce", CONTACT) == crm

    # Restored in the CRM (undelete): the record opens a new version and joins again.
    ingest("salesforce", "Contact", [contact(LastModifiedDate="2026-05-01T00:00:00Z")])
    assert [r["is_current"] for r in versions(svc, crm, SOURCE_RECORD_REL, "salesforce")] == [False, True]
    assert svc.find_customer("zendesk", "9001") == svc.find_customer("salesforce", CONTACT)
    (profile,) = svc.customer_profiles(1).to_pylist()
    assert profile["phone"] == "+491110000000"


def test_contact_works_at_its_account_and_a_move_closes_the_old_edge(svc, ingest):
    ingest("salesforce", "Account", [account()])
    # A 15-character AccountId is the same Account as its 18-character form.
    ingest("salesforce", "Contact", [contact(AccountId=ACME[:15])])
    customer = record_entity(svc, "salesforce", "Contact", CONTACT)
    acme = entity_node_id("company", "salesforce", "Account", ACME)
    assert acme == record_entity(svc, "salesforce", "Account", ACME)
    works_at = current_edge(svc, customer, "WORKS_AT", "salesforce")
    assert works_at["target_node_id"] == acme
    assert works_at["target_type"] == "company"
    assert works_at["updated_at"] == ts("2024-03-01T10:00:00Z")

    ingest("salesforce", "Contact", [contact(AccountId=BETA, LastModifiedDate="2026-02-01T00:00:00Z")])
    old, new = versions(svc, customer, "WORKS_AT", "salesforce")
    assert (old["target_node_id"], old["is_current"], old["props"]["closed_by"]) == (acme, False, "change")
    assert old["props"]["valid_to"].startswith("2026-02-01T00:00:00")
    beta = entity_node_id("company", "salesforce", "Account", BETA)
    assert (new["target_node_id"], new["is_current"]) == (beta, True)
    # Beta was never loaded: the reference wrote its entity node the way Account would.
    nodes = {n["node_id"]: n for n in svc.warehouse.graph.nodes().to_pylist()}
    assert nodes[beta]["node_type"] == "company" and nodes[beta]["value"] is None
    assert dict(nodes[beta]["properties"]) == {
        "source_system": "salesforce",
        "source_object": "Account",
        "source_record_id": BETA,
    }
    assert dict(nodes[beta]["properties"]) == dict(nodes[acme]["properties"]) | {"source_record_id": BETA}

    # Loading Beta afterwards lands on that node; no second row for the id.
    ingest("salesforce", "Account", [account(Id=BETA, Name="Beta AG")])
    assert record_entity(svc, "salesforce", "Account", BETA) == beta
    ids = [n["node_id"] for n in svc.warehouse.graph.nodes().to_pylist()]
    assert len(ids) == len(set(ids))

    # An emptied AccountId is a removal (record-level rule 3).
    ingest("salesforce", "Contact", [contact(AccountId=None, LastModifiedDate="2026-03-01T00:00:00Z")])
    assert current(svc, customer, "WORKS_AT", "salesforce") is None


def test_account_attributes_on_a_company_entity(svc, ingest):
    ingest("salesforce", "Account", [account()])
    company = record_entity(svc, "salesforce", "Account", ACME)
    values = {
        e["rel_type"]: (e["target_type"], e["value"])
        for e in edges(svc)
        if e["source_node_id"] == company and e["is_current"] and e["rel_type"] != SOURCE_RECORD_REL
    }
    assert values == {
        "HAS_COMPANY_NAME": ("company_name", "Acme GmbH"),
        "HAS_WEBSITE": ("website", "www.acme.example"),
        "HAS_INDUSTRY": ("industry", "Manufacturing"),
        "HAS_CITY": ("city", "Berlin"),
        "HAS_COUNTRY": ("country", "DE"),
    }
    node = next(n for n in svc.warehouse.graph.nodes().to_pylist() if n["node_id"] == company)
    assert node["node_type"] == "company"


def test_assets_are_owned_by_their_account_each_with_its_own_current_edge(svc, ingest):
    pump, valve = "02i5g00000Pump1AAA", "02i5g00000ValveAAA"
    ingest("salesforce", "Account", [account()])
    ingest(
        "salesforce",
        "Asset",
        [asset(), asset(Id=valve, Name="Valve V-7", SerialNumber="SN-0002", Status="Shipped")],
    )
    acme = record_entity(svc, "salesforce", "Account", ACME)
    pump_node = record_entity(svc, "salesforce", "Asset", pump)
    valve_node = record_entity(svc, "salesforce", "Asset", valve)
    assert pump_node == entity_node_id("asset", "salesforce", "Asset", pump)
    for node in (pump_node, valve_node):
        owned = current_edge(svc, node, "OWNED_BY", "salesforce")
        assert owned["target_node_id"] == acme and owned["updated_at"] == ts("2025-06-01T00:00:00Z")
    # Both assets are current at once: the edges are keyed by the asset, not the company.
    owners = [e for e in edges(svc) if e["rel_type"] == "OWNED_BY" and e["is_current"]]
    assert {e["source_node_id"] for e in owners} == {pump_node, valve_node}
    assert not [e for e in edges(svc) if e["source_node_id"] == acme and e["target_type"] == "asset"]
    pump_values = {
        e["rel_type"]: e["value"]
        for e in edges(svc)
        if e["source_node_id"] == pump_node and e["is_current"] and e["target_type"] != "company"
    }
    assert pump_values["HAS_ASSET_NAME"] == "Pump P-100"
    assert pump_values["HAS_SERIAL_NUMBER"] == "SN-0001"
    assert pump_values["HAS_ASSET_STATUS"] == "Installed"

    ingest("salesforce", "Asset", [asset(AccountId=BETA, LastModifiedDate="2025-09-01T00:00:00Z")])
    old, new = versions(svc, pump_node, "OWNED_BY", "salesforce")
    assert old["target_node_id"] == acme and not old["is_current"] and old["props"]["closed_by"] == "change"
    assert new["target_node_id"] == entity_node_id("company", "salesforce", "Account", BETA)
    assert current_edge(svc, valve_node, "OWNED_BY", "salesforce")["target_node_id"] == acme


def test_salesforce_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    report = ingest(
        "salesforce",
        "Asset",
        [
            asset(),
            asset(Id=None),
            asset(Id="02i5g00000BadTmAAA", LastModifiedDate="2025-13-01T00:00:00Z"),
            asset(Id="02i5g00000BadDlAAA", IsDeleted="perhaps"),
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (4, 1, 3)
    assert reasons(svc, "Asset") == Counter(
        {
            "missing record id (Id)": 1,
            "unparseable record time (LastModifiedDate): 2025-13-01T00:00:00Z": 1,
            "invalid deletion flag (IsDeleted): perhaps": 1,
        }
    )
    report = ingest("salesforce", "Account", [account(), account(Id=" ", Name="No id")])
    assert (report.rows_processed, report.rows_quarantined) == (1, 1)


def test_erasing_a_contact_keeps_the_company_it_works_at(svc, ingest):
    ingest("salesforce", "Account", [account()])
    ingest("salesforce", "Contact", [contact()])
    customer = record_entity(svc, "salesforce", "Contact", CONTACT)
    acme = record_entity(svc, "salesforce", "Account", ACME)
    svc.erase(customer)
    nodes = {n["node_id"] for n in svc.warehouse.graph.nodes().to_pylist()}
    assert acme in nodes and customer not in nodes
    assert current_edge(svc, acme, "HAS_COMPANY_NAME", "salesforce")["value"] == "Acme GmbH"


def test_reference_rows_must_match_the_target_objects_ids(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    for name in ("attribute_name_registry.csv", "source_priority.csv"):
        (folder / name).write_text((default_config_dir() / name).read_text())
    registry = folder / "attribute_name_registry.csv"
    good = registry.read_text()
    registry.write_text(
        good + "zendesk,users,organization_id,reference,customer,salesforce.Account,WORKS_AT,"
        "customer,salesforce_id,1.0,,\n"
    )
    with pytest.raises(ConfigError, match=r"references salesforce\.Account"):
        load_config(folder)
    registry.write_text(
        good + "zendesk,users,organization_id,reference,customer,Account,WORKS_AT,company,id,1.0,,\n"
    )
    with pytest.raises(ConfigError, match=r"system\.Object"):
        load_config(folder)
    # A target that is not configured cannot be checked, and is allowed.
    registry.write_text(
        good + "zendesk,users,organization_id,reference,customer,zendesk.organizations,MEMBER_OF,"
        "organization,id,1.0,,\n"
    )
    assert load_config(folder).object("zendesk", "users").references[0].rel_type == "MEMBER_OF"


# -- SAP ---------------------------------------------------------------------------------


def kna1(**kw: object) -> Row:
    row: Row = {
        "KUNNR": "0000100001",
        "NAME1": "Muster  GmbH",
        "NAME2": "Einkauf",
        "STRAS": "Hauptstr. 5",
        "ORT01": "Berlin",
        "PSTLZ": "10115",
        "LAND1": "DE",
        "TELF1": "030 1234567",
        "ADRNR": "0000500001",
        "ERDAT": "20200115",
        "LAEDA": "20260301",
        "LOEVM": "",
    }
    row.update(kw)
    return row


def adr6(cons: str, email: str | None, default: str = "", date_from: str = "20200101", **kw: object) -> Row:
    row: Row = {
        "ADDRNUMBER": "0000500001",
        "PERSNUMBER": "",
        "CONSNUMBER": cons,
        "SMTP_ADDR": email,
        "FLGDEFAULT": default,
        "DATE_FROM": date_from,
    }
    row.update(kw)
    return row


def test_sap_kna1_day_precision_joined_name_and_erdat_fallback(svc, ingest):
    report = ingest(
        "sap",
        "KNA1",
        [
            kna1(),
            kna1(KUNNR="0000100002", NAME2="", LAEDA="", ERDAT="20190505"),
            kna1(KUNNR="0000100003", NAME2=None, LAEDA="00000000", ERDAT="20180101"),
        ],
        fmt="csv",
    )
    assert (report.rows_processed, report.rows_quarantined) == (3, 0)
    first = record_entity(svc, "sap", "KNA1", "0000100001")
    values = {
        e["rel_type"]: (e["value"], e["updated_at"])
        for e in edges(svc)
        if e["source_node_id"] == first and e["is_current"] and e["rel_type"] != SOURCE_RECORD_REL
    }
    day = ts("2026-03-01T00:00:00Z")
    assert values == {
        "HAS_FULL_NAME": ("Muster GmbH Einkauf", day),
        "HAS_STREET": ("Hauptstr. 5", day),
        "HAS_CITY": ("Berlin", day),
        "HAS_POSTAL_CODE": ("10115", day),
        "HAS_COUNTRY": ("DE", day),
        "HAS_PHONE": ("+49301234567", day),
    }
    # Never changed: the creation day is the record time; NAME2 is optional.
    second = record_entity(svc, "sap", "KNA1", "0000100002")
    name = current_edge(svc, second, "HAS_FULL_NAME", "sap")
    assert (name["value"], name["updated_at"]) == ("Muster GmbH", ts("2019-05-05T00:00:00Z"))
    third = record_entity(svc, "sap", "KNA1", "0000100003")
    assert current_edge(svc, third, "HAS_CITY", "sap")["updated_at"] == ts("2018-01-01T00:00:00Z")

    # Same day, nothing changed: a re-sync writes nothing; a change on a later day moves
    # only that field.
    ingest("sap", "KNA1", [kna1(TELF1="030 7654321", LAEDA="20260305")])
    assert current_edge(svc, first, "HAS_PHONE", "sap")["updated_at"] == ts("2026-03-05T00:00:00Z")
    assert current_edge(svc, first, "HAS_CITY", "sap")["updated_at"] == day


def test_sap_adr6_email_takes_the_kna1_rows_time(svc, ingest):
    report = ingest(
        "sap",
        "ADR6",
        [
            adr6("001", "old@muster.example", date_from="20250101"),
            adr6("002", "Info@Muster.example", default="X", date_from="20200101"),
            adr6("001", "p.person@muster.example", default="X", PERSNUMBER="0000000042"),
            adr6("001", "first@other.example", ADDRNUMBER="0000500002", date_from="20200101"),
            adr6("002", "later@other.example", ADDRNUMBER="0000500002", date_from="20240101"),
            adr6("001", "nobody@x.example", ADDRNUMBER=" "),
        ],
    )
    # Landing ADR6 stores rows for joining and emits nothing.
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (6, 5, 1)
    assert report.field_events == 0
    assert svc.warehouse.graph.relationships().num_rows == 0
    assert reasons(svc, "ADR6") == Counter({"missing record id (ADDRNUMBER)": 1})

    ingest("sap", "KNA1", [kna1(), kna1(KUNNR="0000100002", ADRNR="0000500002", LAEDA="20260302")])
    first = record_entity(svc, "sap", "KNA1", "0000100001")
    email = current_edge(svc, first, "HAS_EMAIL", "sap")
    # The address's default e-mail wins over a later DATE_FROM and over a contact person's.
    assert (email["value"], email["updated_at"]) == ("info@muster.example", ts("2026-03-01T00:00:00Z"))
    assert email["props"]["source_field"] == "ADR6.SMTP_ADDR"
    second = record_entity(svc, "sap", "KNA1", "0000100002")
    assert current_edge(svc, second, "HAS_EMAIL", "sap")["value"] == "later@other.example"

    # A changed ADR6 row is visible with the next KNA1 row of that customer, at its time.
    ingest("sap", "ADR6", [adr6("002", "sales@muster.example", default="X")])
    assert current_edge(svc, first, "HAS_EMAIL", "sap")["value"] == "info@muster.example"
    ingest("sap", "KNA1", [kna1(LAEDA="20260310")])
    old, new = versions(svc, first, "HAS_EMAIL", "sap")
    assert old["value"] == "info@muster.example" and old["props"]["closed_by"] == "change"
    assert (new["value"], new["updated_at"], new["is_current"]) == (
        "sales@muster.example",
        ts("2026-03-10T00:00:00Z"),
        True,
    )


def test_erasing_a_sap_customer_removes_its_adr6_rows_from_bronze(svc, ingest):
    ingest(
        "sap",
        "ADR6",
        [
            adr6("001", "anna@muster.example", default="X"),
            adr6("001", "other@else.example", ADDRNUMBER="0000500002"),
        ],
    )
    ingest("sap", "KNA1", [kna1(), kna1(KUNNR="0000100002", ADRNR="0000500002", NAME1="Else")])
    customer = svc.find_customer("sap", "0000100001")
    svc.erase(customer)
    bronze = svc.warehouse.io.read(svc.warehouse.bronze_uri("sap", "ADR6"), "_record_id, _raw")
    assert bronze.column("_record_id").to_pylist() == ["0000500002"]
    assert "anna@muster.example" not in "".join(bronze.column("_raw").to_pylist())


def test_sap_deletion_flag_removes_the_records_values(svc, ingest):
    ingest("sap", "ADR6", [adr6("001", "info@muster.example")])
    ingest("sap", "KNA1", [kna1()])
    customer = record_entity(svc, "sap", "KNA1", "0000100001")
    assert current(svc, customer, "HAS_EMAIL", "sap") is not None
    ingest("sap", "KNA1", [kna1(LOEVM="X", LAEDA="20260401")])
    for rel in ("HAS_FULL_NAME", "HAS_STREET", "HAS_CITY", "HAS_PHONE", "HAS_EMAIL"):
        assert current(svc, customer, rel, "sap") is None, rel
        assert versions(svc, customer, rel, "sap")[-1]["props"]["closed_by"] == "removal"


def test_sap_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    report = ingest(
        "sap",
        "KNA1",
        [
            kna1(),
            kna1(KUNNR="2", LAEDA="20261345"),
            kna1(KUNNR="3", LAEDA="abc"),
            kna1(KUNNR="4", LAEDA="", ERDAT="2019-05-05"),
            kna1(KUNNR="5", LAEDA="", ERDAT=""),
            kna1(KUNNR="", LAEDA="20260301"),
            kna1(KUNNR="6", LOEVM="Y"),
            kna1(KUNNR="7", TELF1="call me"),
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (8, 2, 6)
    assert report.fields_rejected == 1
    assert reasons(svc, "KNA1") == Counter(
        {
            "invalid SAP date in LAEDA: 20261345": 1,
            "invalid SAP date in LAEDA: abc": 1,
            "invalid SAP date in ERDAT: 2019-05-05": 1,
            "missing SAP date: LAEDA and ERDAT are both blank": 1,
            "missing record id (KUNNR)": 1,
            "invalid deletion flag (LOEVM): Y": 1,
            "invalid phone value in TELF1: call me": 1,
        }
    )
    # The row with the bad phone kept its other fields.
    seventh = record_entity(svc, "sap", "KNA1", "7")
    assert current_edge(svc, seventh, "HAS_CITY", "sap")["value"] == "Berlin"
    assert current(svc, seventh, "HAS_PHONE", "sap") is None


# -- Shopify -----------------------------------------------------------------------------


def test_shopify_consent_carries_its_field_time_and_beats_a_later_crm_resync(tmp_path, monkeypatch):
    # Shopify has no link to Salesforce in the defaults; this warehouse adds one so both
    # sources describe one customer.
    folder = tmp_path / "cfg"
    folder.mkdir()
    for name in ("attribute_name_registry.csv", "source_priority.csv"):
        (folder / name).write_text((default_config_dir() / name).read_text())
    with (folder / "attribute_name_registry.csv").open("a") as handle:
        handle.write(
            "shopify,customers,sf_contact_id,same_as,customer,salesforce.Contact,,,salesforce_id,,,\n"
        )
    monkeypatch.setenv("AAG_CONFIG_DIR", str(folder))
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    ingest = Batches(svc, tmp_path)
    ingest("salesforce", "Contact", [contact()])
    shop: Row = {
        "id": "820982911946154508",
        "sf_contact_id": CONTACT,
        "email": "alex@example.com",
        "first_name": "Alex",
        "accepts_marketing": False,
        "accepts_marketing_updated_at": "2026-03-01T09:00:00Z",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2026-03-01T12:00:00Z",
    }
    ingest("shopify", "customers", [shop])
    # The CRM re-sends the whole contact at 09:05, consent unchanged since 2024.
    ingest("salesforce", "Contact", [contact(FirstName="Alexander", LastModifiedDate="2026-03-01T09:05:00Z")])

    shopify = record_entity(svc, "shopify", "customers", shop["id"])
    consent = current_edge(svc, shopify, "HAS_EMAIL_MARKETING_CONSENT", "shopify")
    assert (consent["value"], consent["updated_at"]) == ("false", ts("2026-03-01T09:00:00Z"))
    assert current_edge(svc, shopify, "HAS_FIRST_NAME", "shopify")["updated_at"] == ts("2026-03-01T12:00:00Z")
    crm_record = record_entity(svc, "salesforce", "Contact", CONTACT)
    crm = current_edge(svc, crm_record, "HAS_EMAIL_MARKETING_CONSENT", "salesforce")
    assert (crm["value"], crm["updated_at"]) == ("true", ts("2024-03-01T10:00:00Z"))

    profile = svc.profile(svc.find_customer("salesforce", CONTACT))
    assert profile["email_marketing_consent"] == "false"
    assert profile["email_marketing_consent_source"] == "shopify"
    assert profile["email_marketing_consent_updated_at"] == ts("2026-03-01T09:00:00Z")


def test_shopify_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    good = {
        "id": "1",
        "email": "a@shop.example",
        "accepts_marketing": True,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    report = ingest(
        "shopify",
        "customers",
        [
            good,
            {**good, "id": None},
            {**good, "id": "2", "updated_at": "soon"},
            {**good, "id": "3", "accepts_marketing_updated_at": "whenever"},
        ],
    )
    assert (report.rows_processed, report.rows_quarantined, report.fields_rejected) == (2, 2, 1)
    assert reasons(svc, "customers") == Counter(
        {
            "missing record id (id)": 1,
            "unparseable record time (updated_at): soon": 1,
            "unparseable or missing field time (accepts_marketing_updated_at): whenever": 1,
        }
    )
    # Without a field time of its own, the consent takes the record time.
    first = record_entity(svc, "shopify", "customers", "1")
    assert current_edge(svc, first, "HAS_EMAIL_MARKETING_CONSENT", "shopify")["updated_at"] == ts(
        "2026-01-01T00:00:00Z"
    )


# -- Segment -----------------------------------------------------------------------------


def identify(message_id: str, timestamp: str | None, traits: object, **kw: object) -> Row:
    row: Row = {
        "message_id": message_id,
        "user_id": "user-42",
        "anonymous_id": "a7f3c2",
        "timestamp": timestamp,
        "received_at": timestamp,
        "traits": traits,
    }
    row.update(kw)
    return row


def segment_values(svc: AagService, entity: str) -> dict[str, tuple[Any, Any, Any]]:
    return {
        e["rel_type"]: (e["value"], e["updated_at"], e["source_event_id"])
        for e in edges(svc)
        if e["source_node_id"] == entity
        and e["source_system"] == "segment"
        and e["is_current"]
        and e["rel_type"] != SOURCE_RECORD_REL
    }


def test_segment_every_trait_is_its_own_event_and_absent_traits_say_nothing(svc, ingest):
    nine = "2026-03-01T09:00:00Z"
    report = ingest(
        "segment",
        "identifies",
        [
            identify(
                "m-1",
                nine,
                {
                    "firstName": "Alex",
                    "lastName": "Example",
                    "name": "Alex  Example",
                    "email": " Alex@Example.com",
                    "phone": "+39 06 1234 5678",
                    "address": {
                        "street": "Via Roma 1",
                        "city": "Roma",
                        "postalCode": "00184",
                        "country": "Italy",
                    },
                    "plan": "premium",
                },
            )
        ],
    )
    # Nine mapped traits and the identity edge; the unmapped trait stays in bronze only.
    assert report.field_events == 10
    user = record_entity(svc, "segment", "identifies", "user-42")
    at = ts(nine)
    assert segment_values(svc, user) == {
        "HAS_FIRST_NAME": ("Alex", at, "segment:identifies:m-1:traits.firstName"),
        "HAS_LAST_NAME": ("Example", at, "segment:identifies:m-1:traits.lastName"),
        "HAS_FULL_NAME": ("Alex Example", at, "segment:identifies:m-1:traits.name"),
        "HAS_EMAIL": ("alex@example.com", at, "segment:identifies:m-1:traits.email"),
        "HAS_PHONE": ("+390612345678", at, "segment:identifies:m-1:traits.phone"),
        "HAS_STREET": ("Via Roma 1", at, "segment:identifies:m-1:traits.address.street"),
        "HAS_CITY": ("Roma", at, "segment:identifies:m-1:traits.address.city"),
        "HAS_POSTAL_CODE": ("00184", at, "segment:identifies:m-1:traits.address.postalCode"),
        "HAS_COUNTRY": ("IT", at, "segment:identifies:m-1:traits.address.country"),
    }

    # A later call with only an email says nothing about the other traits.
    report = ingest(
        "segment", "identifies", [identify("m-2", "2026-03-02T10:00:00Z", {"email": "new@example.com"})]
    )
    assert report.field_events == 2
    after = segment_values(svc, user)
    assert after["HAS_EMAIL"][:2] == ("new@example.com", ts("2026-03-02T10:00:00Z"))
    assert after["HAS_FIRST_NAME"] == ("Alex", at, "segment:identifies:m-1:traits.firstName")
    assert len(versions(svc, user, "HAS_PHONE", "segment")) == 1

    # Present as null or "" removes Segment's value; the flat city trait maps like the nested one.
    ingest(
        "segment",
        "identifies",
        [identify("m-3", "2026-03-03T08:00:00Z", {"phone": None, "lastName": "", "city": "Milano"})],
    )
    after = segment_values(svc, user)
    assert "HAS_PHONE" not in after and "HAS_LAST_NAME" not in after
    assert versions(svc, user, "HAS_PHONE", "segment")[-1]["props"]["closed_by"] == "removal"
    assert after["HAS_CITY"] == ("Milano", ts("2026-03-03T08:00:00Z"), "segment:identifies:m-3:traits.city")
    assert after["HAS_FIRST_NAME"][0] == "Alex" and after["HAS_EMAIL"][0] == "new@example.com"


def test_segment_repeated_message_ids_add_nothing(svc, ingest):
    first = identify("m-1", "2026-03-01T09:00:00Z", {"email": "alex@example.com", "firstName": "Alex"})
    resent = {**first, "received_at": "2026-03-01T09:00:07Z"}
    second = identify("m-2", "2026-03-01T09:30:00Z", {"email": "alex@example.com"})
    report = ingest("segment", "identifies", [first, resent, second, resent])
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (4, 4, 0)
    # m-1 once (2 traits + identity), m-2 once (1 trait + identity).
    assert report.field_events == 5
    graph = (svc.warehouse.graph.nodes().num_rows, svc.warehouse.graph.relationships().to_pylist())
    log = svc.warehouse.graph.edge_events().num_rows

    # The same messages re-delivered in a later batch (not byte-identical: received_at
    # moved) are re-sends of committed calls: dropped before extraction, nothing changes.
    redelivered = [
        {**first, "received_at": "2026-03-02T00:00:00Z"},
        {**second, "received_at": "2026-03-02T00:00:01Z"},
    ]
    report = ingest("segment", "identifies", redelivered)
    assert (report.rows_unchanged, report.rows_duplicate, report.rows_processed) == (0, 2, 2)
    assert report.field_events == 0
    assert (report.edge_versions_written, report.nodes_written, report.edge_rows_rewritten) == (0, 0, 0)
    assert (svc.warehouse.graph.nodes().num_rows, svc.warehouse.graph.relationships().to_pylist()) == graph
    assert svc.warehouse.graph.edge_events().num_rows == log


def test_segment_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    at = "2026-03-01T09:00:00Z"
    rows = [
        identify("m-ok", at, {"email": "ok@example.com"}),
        identify("m-array", at, [{"email": "a@example.com"}]),
        identify("m-string", at, "email=a@example.com"),
        identify("m-number", at, 42),
        identify("m-quoted", at, '"just text"'),
        identify("m-time", "yesterday", {"email": "b@example.com"}),
        identify("m-notime", None, {"email": "c@example.com"}),
        identify("m-anon", at, {"firstName": "Ann"}, user_id=None),
        identify("m-nobody", at, {"firstName": "Nobody"}, user_id="", anonymous_id=None),
        identify("m-badmail", at, {"email": "not-an-email", "firstName": "Bea"}, user_id="user-7"),
        identify("m-notraits", at, None, user_id="user-8"),
    ]
    report = ingest("segment", "identifies", rows)
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (11, 4, 7)
    assert report.fields_rejected == 1
    assert reasons(svc, "identifies") == Counter(
        {
            'traits must be a JSON object, got an array: [{"email":"a@example.com"}]': 1,
            "traits must be a JSON object, got unparseable text: email=a@example.com": 1,
            "traits must be a JSON object, got a number: 42": 1,
            'traits must be a JSON object, got a string: "just text"': 1,
            "unparseable record time (timestamp): yesterday": 1,
            "missing record time (timestamp)": 1,
            "missing record id: neither user_id nor anonymous_id is set": 1,
            "invalid email value in traits.email: not-an-email": 1,
        }
    )
    # Without a user_id the anonymous id names the record.
    anon = record_entity(svc, "segment", "identifies", "anon:a7f3c2")
    assert segment_values(svc, anon)["HAS_FIRST_NAME"][0] == "Ann"
    seven = record_entity(svc, "segment", "identifies", "user-7")
    assert segment_values(svc, seven) == {
        "HAS_FIRST_NAME": ("Bea", ts(at), "segment:identifies:m-badmail:traits.firstName")
    }
    # A call without traits is processed and says nothing.
    eight = record_entity(svc, "segment", "identifies", "user-8")
    assert segment_values(svc, eight) == {}


def test_segment_traits_as_a_json_string_in_csv(svc, ingest):
    rows = [
        identify(
            "m-1",
            "2026-03-01T09:00:00Z",
            json.dumps({"lastName": "Csv", "address": {"postalCode": "sw1a 1aa"}}),
        ),
        identify("m-2", "2026-03-01T09:00:00Z", "{oops", user_id="user-9"),
    ]
    report = ingest("segment", "identifies", rows, fmt="csv")
    assert (report.rows_processed, report.rows_quarantined) == (1, 1)
    assert reasons(svc, "identifies") == Counter(
        {"traits must be a JSON object, got unparseable text: {oops": 1}
    )
    user = record_entity(svc, "segment", "identifies", "user-42")
    values = segment_values(svc, user)
    assert values["HAS_LAST_NAME"][0] == "Csv" and values["HAS_POSTAL_CODE"][0] == "SW1A 1AA"


def test_segment_user_id_links_to_the_salesforce_contact_and_never_quarantines(svc, ingest):
    ingest("salesforce", "Contact", [contact()])
    report = ingest(
        "segment",
        "identifies",
        [
            identify("m-1", "2026-03-01T09:00:00Z", {"phone": "+49 30 9999999"}, user_id=CONTACT[:15]),
            identify("m-2", "2026-03-01T09:00:00Z", {"firstName": "Kim"}, user_id="kim@example.com|42"),
        ],
    )
    assert (report.rows_processed, report.rows_quarantined) == (2, 0)
    assert svc.find_customer("segment", CONTACT[:15]) == svc.find_customer("salesforce", CONTACT)
    profile = svc.profile(svc.find_customer("salesforce", CONTACT))
    assert profile["phone"] == "+49309999999" and profile["phone_source"] == "segment"
    kim = svc.find_customer("segment", "kim@example.com|42")
    assert svc.profile(kim)["first_name"] == "Kim"


# -- Zendesk -----------------------------------------------------------------------------


def test_zendesk_name_is_the_full_name_at_the_record_time(svc, ingest):
    user = {
        "id": "9001",
        "name": "Alex  Example",
        "email": "alex@example.com",
        "phone": "+49 987 654 3210",
        "external_id": None,
        "organization_id": "361",
        "created_at": "2024-06-01T08:00:00Z",
        "updated_at": "2024-06-01T08:00:00Z",
    }
    report = ingest(
        "zendesk", "users", [user, {**user, "id": ""}, {**user, "id": "9002", "updated_at": "n/a"}]
    )
    assert (report.rows_processed, report.rows_quarantined) == (1, 2)
    assert reasons(svc, "users") == Counter(
        {"missing record id (id)": 1, "unparseable record time (updated_at): n/a": 1}
    )
    entity = record_entity(svc, "zendesk", "users", "9001")
    name = current_edge(svc, entity, "HAS_FULL_NAME", "zendesk")
    assert (name["value"], name["updated_at"]) == ("Alex Example", ts("2024-06-01T08:00:00Z"))
    assert name["props"]["source_field"] == "name"

    ingest("zendesk", "users", [{**user, "name": "Alexandra Example", "updated_at": "2026-03-01T09:00:00Z"}])
    name = current_edge(svc, entity, "HAS_FULL_NAME", "zendesk")
    assert (name["value"], name["updated_at"]) == ("Alexandra Example", ts("2026-03-01T09:00:00Z"))
    assert current_edge(svc, entity, "HAS_PHONE", "zendesk")["updated_at"] == ts("2024-06-01T08:00:00Z")
    assert svc.profile(svc.find_customer("zendesk", "9001"), 1)["full_name"] == "Alexandra Example"


# -- normalisers added for these sources ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        ("url", "https://WWW.Acme.example/"),
        ("url", "http://acme.example//"),
        ("url", "acme.example/shop/"),
        ("url", "https://"),
        ("sap_flag", "X"),
        ("sap_flag", " x "),
        ("sap_flag", ""),
        ("sap_flag", None),
    ],
)
def test_sql_normalisers_match_python(duckdb_engine, spec, raw):
    value, invalid = sql_normalise(spec, "NULL" if raw is None else "'" + raw + "'")
    got = duckdb_engine.query(f"SELECT {value} AS v, {invalid} AS bad").to_pylist()[0]
    assert got == {"v": normalise(spec, raw), "bad": False}


def test_landing_shapes_are_checked_and_looked_up(tmp_path):
    """``landing_shapes.csv``: a folder without it gets the packaged shapes; mistakes name the line."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    for name in ("attribute_name_registry.csv", "source_priority.csv"):
        (folder / name).write_text((default_config_dir() / name).read_text())
    config = load_config(folder)
    fivetran = config.landing_shape("salesforce", "contact", "fivetran")
    assert fivetran["last_modified_date"] == "LastModifiedDate"
    assert config.landing_shape("segment", "identifies", "segment_warehouse")["address_city"] == (
        "traits.address.city"
    )
    assert config.landing_shape("salesforce", "Contact", "api") == {}
    # Fivetran's Shopify and Zendesk tables keep the API's names: the shape renames nothing.
    for system, obj in (("shopify", "customers"), ("zendesk", "users")):
        same = config.landing_shape(system, obj, "fivetran")
        assert "id" in same and all(column == field for column, field in same.items()), same
    with pytest.raises(ConfigError, match=r"sap\.KNA1 has no landing shape 'fivetran'; known: api"):
        config.landing_shape("sap", "KNA1", "fivetran")
    # Every shape of an object, api first (the Databricks erase reads bronze in each).
    history = config.landing_shapes_of("salesforce", "ContactHistory")
    assert list(history) == ["api", "fivetran"] and history["api"] == {}
    assert history["fivetran"]["contact_id"] == "ContactId" and history["fivetran"]["new_value"] == "NewValue"
    assert list(config.landing_shapes_of("sap", "KNA1")) == ["api"]
    header = "source_system,source_object,shape,landed_column,source_field,description\n"
    shapes = folder / "landing_shapes.csv"
    shapes.write_text(header + "salesforce,Lead,fivetran,id,Id,\n")
    with pytest.raises(ConfigError, match=r"landing_shapes\.csv line 2: salesforce\.Lead is not in"):
        load_config(folder)
    shapes.write_text(header + "salesforce,Contact,fivetran,id,Id,\nsalesforce,Contact,fivetran,id,Email,\n")
    with pytest.raises(ConfigError, match=r"line 3: landed_column 'id' appears twice in shape 'fivetran'"):
        load_config(folder)
    shapes.write_text(header + "salesforce,Contact,api,id,Id,\n")
    with pytest.raises(ConfigError, match=r"line 2: shape: .*other than 'api'"):
        load_config(folder)
