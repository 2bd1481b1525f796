"""Field histories of record-level sources: Salesforce ContactHistory, SAP change documents.

Hand-written rows through :class:`AagService` on a temporary warehouse (real Delta).
A history row is a tier-1 event of the record it names, on that record's entity and
under the same edge key as the record feed, so SPEC §3 gives one version per run whose
time is the history's exact change time, whichever feed lands first.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aag.config import default_config_dir, load_config
from aag.errors import ConfigError
from aag.ids import entity_node_id
from aag.normalize import sf_id18
from aag.service import AagService
from aag.sources import extractor_for
from aag.sources.base import SOURCE_RECORD_REL
from test_sources import CONTACT, Batches, contact, current, current_edge, edges, kna1, reasons, ts, versions

CUSTOMER = entity_node_id("customer", "salesforce", "Contact", CONTACT)
KUNNR = "0000100001"
SAP_CUSTOMER = entity_node_id("customer", "sap", "KNA1", KUNNR)


def _service(folder: Path) -> tuple[AagService, Batches]:
    svc = AagService(str(folder / "wh"))
    svc.init()
    files = folder / "in"
    files.mkdir(parents=True)
    return svc, Batches(svc, files)


@pytest.fixture
def world(tmp_path) -> tuple[AagService, Batches]:
    return _service(tmp_path)


@pytest.fixture
def svc(world: tuple[AagService, Batches]) -> AagService:
    return world[0]


@pytest.fixture
def ingest(world: tuple[AagService, Batches]) -> Batches:
    return world[1]


def relationships(svc: AagService) -> list[tuple[Any, ...]]:
    """The whole relationships table, comparable across warehouses."""
    rows = svc.warehouse.graph.relationships().to_pylist()
    return sorted(
        (tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in row.items()) for row in rows), key=repr
    )


# -- Salesforce ContactHistory -----------------------------------------------------------


def history(
    row_id: str, field: str, new: object, at: str | None, contact_id: str | None = CONTACT, old: object = None
) -> dict[str, Any]:
    return {
        "Id": row_id,
        "ContactId": contact_id,
        "Field": field,
        "OldValue": old,
        "NewValue": new,
        "CreatedDate": at,
    }


def test_contact_history_rows_are_field_events_of_the_contacts_entity(svc, ingest):
    report = ingest(
        "salesforce",
        "ContactHistory",
        [
            # A 15-character ContactId is the same Contact.
            history("017A1", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z", contact_id=CONTACT[:15]),
            history("017A2", "Email", " Alex@Example.COM ", "2025-07-01T08:00:00Z"),
            history("017A3", "HasOptedOutOfEmail", "true", "2025-08-01T00:00:00Z"),
            history("017A4", "MailingCountry", "Germany", "2025-09-01T00:00:00Z"),
            history("017A5", "created", None, "2024-01-01T00:00:00Z"),
            history("017A6", "Account", "Acme GmbH", "2025-01-01T00:00:00Z"),
            history("017A7", "Description", "VIP", "2025-01-01T00:00:00Z"),
        ],
    )
    # Rows about fields AAG does not map are processed and yield nothing.
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (7, 7, 0)
    assert report.field_events == 4
    values = {
        e["rel_type"]: (e["value"], e["updated_at"], e["source_event_id"], e["props"]["source_field"])
        for e in edges(svc)
        if e["is_current"]
    }
    # Normalised exactly like the Contact's own fields, on the Contact's entity.
    assert values == {
        "HAS_PHONE": (
            "+49301234567",
            ts("2025-06-01T10:00:00Z"),
            "salesforce:ContactHistory:017A1:Phone",
            "Phone",
        ),
        "HAS_EMAIL": (
            "alex@example.com",
            ts("2025-07-01T08:00:00Z"),
            "salesforce:ContactHistory:017A2:Email",
            "Email",
        ),
        "HAS_EMAIL_MARKETING_CONSENT": (
            "false",
            ts("2025-08-01T00:00:00Z"),
            "salesforce:ContactHistory:017A3:HasOptedOutOfEmail",
            "HasOptedOutOfEmail",
        ),
        "HAS_COUNTRY": (
            "DE",
            ts("2025-09-01T00:00:00Z"),
            "salesforce:ContactHistory:017A4:MailingCountry",
            "MailingCountry",
        ),
    }
    assert {e["source_node_id"] for e in edges(svc)} == {CUSTOMER}
    assert {e["source_system"] for e in edges(svc)} == {"salesforce"}
    # No source-record edge of its own: the record is the Contact.
    assert not [e for e in edges(svc) if e["rel_type"] == SOURCE_RECORD_REL]
    nodes = {n["node_id"]: n for n in svc.warehouse.graph.nodes().to_pylist()}
    assert nodes[CUSTOMER]["node_type"] == "customer"
    assert dict(nodes[CUSTOMER]["properties"]) == {
        "source_system": "salesforce",
        "source_object": "Contact",
        "source_record_id": CONTACT,
    }
    assert not [n for n in nodes.values() if n["node_type"] == "source_record"]

    # An emptied field is a removal at the history's time.
    ingest("salesforce", "ContactHistory", [history("017A8", "Phone", "", "2025-10-01T00:00:00Z")])
    assert current(svc, CUSTOMER, "HAS_PHONE", "salesforce") is None
    (closed,) = versions(svc, CUSTOMER, "HAS_PHONE", "salesforce")
    assert closed["props"]["closed_by"] == "removal"
    assert closed["props"]["closed_by_event"] == "salesforce:ContactHistory:017A8:Phone"

    # The Contact's own rows land on the same entity.
    ingest("salesforce", "Contact", [contact(LastModifiedDate="2026-03-01T09:05:00Z")])
    ids = [n["node_id"] for n in svc.warehouse.graph.nodes().to_pylist()]
    assert len(ids) == len(set(ids))
    assert svc.find_customer("salesforce", CONTACT) == CUSTOMER


CONTACT_FEED = [contact(Phone="+49 30 1234567", LastModifiedDate="2026-03-01T09:05:00Z")]
HISTORY = [
    history("017B1", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z", old="+49 30 7654321"),
    history("017B2", "Email", "alex@example.com", "2026-03-01T09:05:00Z"),
]


def _history_world(folder: Path, order: str) -> AagService:
    svc, ingest = _service(folder)
    feeds = {
        "contact": lambda: ingest("salesforce", "Contact", CONTACT_FEED),
        "history": lambda: ingest("salesforce", "ContactHistory", HISTORY),
    }
    for name in order.split("+"):
        feeds[name]()
    return svc


@pytest.mark.parametrize("order", ["history+contact", "contact+history"])
def test_history_and_contact_feed_make_one_version_at_the_true_change_time(tmp_path, order):
    svc = _history_world(tmp_path / "a", order)
    phone = versions(svc, CUSTOMER, "HAS_PHONE", "salesforce")
    # One version, started by the history's exact time; the feed's 09:05 event is absorbed.
    assert [(v["value"], v["updated_at"], v["is_current"]) for v in phone] == [
        ("+49301234567", ts("2025-06-01T10:00:00Z"), True)
    ]
    assert phone[0]["source_event_id"] == "salesforce:ContactHistory:017B1:Phone"
    logged = [e for e in svc.warehouse.graph.edge_events().to_pylist() if e["rel_type"] == "HAS_PHONE"]
    assert [e["source_event_id"][:19] for e in logged] == ["salesforce:Contact:"]
    # Same value at the same time from both feeds: still one version.
    assert len(versions(svc, CUSTOMER, "HAS_EMAIL", "salesforce")) == 1
    # Fields without history keep the record time.
    assert current_edge(svc, CUSTOMER, "HAS_CITY", "salesforce")["updated_at"] == ts("2026-03-01T09:05:00Z")

    # Both orders give the very same table.
    other = _history_world(
        tmp_path / "b", "contact+history" if order == "history+contact" else "history+contact"
    )
    assert relationships(svc) == relationships(other)


def test_resync_and_replay_after_both_feeds_change_nothing(tmp_path):
    svc, ingest = _service(tmp_path)
    ingest("salesforce", "ContactHistory", HISTORY)
    ingest("salesforce", "Contact", CONTACT_FEED)
    before = (relationships(svc), svc.warehouse.graph.nodes().num_rows)

    # A full re-sync of the unchanged Contact later on.
    report = ingest(
        "salesforce", "Contact", [{**CONTACT_FEED[0], "LastModifiedDate": "2026-04-01T00:00:00Z"}]
    )
    assert (report.edge_versions_written, report.edge_rows_rewritten) == (0, 0)
    # The same history file again, and the same rows in another file and format.
    path = next((tmp_path / "in").glob("*ContactHistory.jsonl"))
    assert svc.ingest("salesforce", "ContactHistory", [path])[0].status == "already ingested"
    report = ingest("salesforce", "ContactHistory", HISTORY, fmt="csv")
    assert report.rows_unchanged == 0 and report.field_events == 2
    assert (report.edge_versions_written, report.nodes_written, report.edge_rows_rewritten) == (0, 0, 0)
    assert (relationships(svc), svc.warehouse.graph.nodes().num_rows) == before


def test_a_late_history_row_splits_the_run_of_a_record_feed(svc, ingest):
    # The feed saw A in 2024 and again in 2026: one run from 2024.
    ingest("salesforce", "Contact", [contact(Phone="+49 30 1111111")])
    ingest(
        "salesforce", "Contact", [contact(Phone="+49 30 1111111", LastModifiedDate="2026-03-01T09:05:00Z")]
    )
    assert len(versions(svc, CUSTOMER, "HAS_PHONE", "salesforce")) == 1
    # The history says the phone was B for a while in between, then A again.
    report = ingest(
        "salesforce",
        "ContactHistory",
        [
            history("017C1", "Phone", "+49 30 2222222", "2025-01-15T08:00:00Z"),
            history("017C2", "Phone", "+49 30 1111111", "2025-02-01T12:00:00Z"),
        ],
    )
    # With AAG_DEFER=1 the feed's 2026 row was deferred: this batch folds it back (its
    # events fall after the history's), and its fields other than the phone only confirm.
    assert report.rule_paths.get("full") == 1
    assert report.rule_paths.get("confirm", 0) == (10 if report.rows_folded else 0)
    got = [
        (v["value"], v["updated_at"], v["is_current"], v["props"].get("closed_by"))
        for v in versions(svc, CUSTOMER, "HAS_PHONE", "salesforce")
    ]
    assert got == [
        ("+49301111111", ts("2024-03-01T10:00:00Z"), False, "change"),
        ("+49302222222", ts("2025-01-15T08:00:00Z"), False, "change"),
        ("+49301111111", ts("2025-02-01T12:00:00Z"), True, None),
    ]


def test_contact_history_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    report = ingest(
        "salesforce",
        "ContactHistory",
        [
            history("017D1", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z"),
            history("017D2", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z", contact_id=None),
            history("017D3", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z", contact_id=" "),
            history("017D4", "Phone", "+49 30 1234567", "01/06/2025"),
            history("017D5", "Phone", "+49 30 1234567", None),
            history("017D6", "Phone", "call me", "2025-06-02T10:00:00Z"),
            history("017D7", "created", None, None, contact_id=None),
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (7, 2, 5)
    assert report.fields_rejected == 1
    assert reasons(svc, "ContactHistory") == Counter(
        {
            "missing record id (ContactId)": 3,
            "unparseable record time (CreatedDate): 01/06/2025": 1,
            "missing record time (CreatedDate)": 1,
            "invalid phone value in Phone: call me": 1,
        }
    )
    phone = current_edge(svc, CUSTOMER, "HAS_PHONE", "salesforce")
    assert (phone["value"], phone["updated_at"]) == ("+49301234567", ts("2025-06-01T10:00:00Z"))


def test_erasing_a_contact_erases_its_history_rows(svc, ingest):
    ingest("salesforce", "Contact", [contact()])
    other = sf_id18("0035g00000Other")
    ingest(
        "salesforce",
        "ContactHistory",
        [
            history("017E1", "Phone", "+49 30 1234567", "2025-06-01T10:00:00Z"),
            history("017E2", "Phone", "+49 30 7654321", "2025-06-01T10:00:00Z", contact_id=other),
        ],
    )
    result = svc.erase(svc.find_customer("salesforce", CONTACT))
    assert result["bronze_rows_removed"] == 2  # the Contact row and its history row
    left = svc.warehouse.io.read(svc.warehouse.bronze_uri("salesforce", "ContactHistory"), "_record_id")
    assert left.column("_record_id").to_pylist() == [other]


def test_a_history_must_use_its_records_id_normaliser(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    for name in ("attribute_name_registry.csv", "source_priority.csv"):
        (folder / name).write_text((default_config_dir() / name).read_text())
    registry = folder / "attribute_name_registry.csv"
    registry.write_text(
        registry.read_text().replace(
            "salesforce,ContactHistory,ContactId,record_id,customer,,,,salesforce_id",
            "salesforce,ContactHistory,ContactId,record_id,customer,,,,id",
        )
    )
    config = load_config(folder)
    with pytest.raises(ConfigError, match="ContactHistory: its record id uses the 'id' normaliser"):
        extractor_for(config.object("salesforce", "ContactHistory"), config)


# -- SAP change documents ------------------------------------------------------------------


def header(nr: str, udate: str, utime: str, kunnr: str = KUNNR, cls: str = "DEBI", **kw) -> dict[str, Any]:
    row = {
        "OBJECTCLAS": cls,
        "OBJECTID": kunnr,
        "CHANGENR": nr,
        "USERNAME": "JDOE",
        "UDATE": udate,
        "UTIME": utime,
        "TCODE": "XD02",
    }
    row.update(kw)
    return row


def item(
    nr: str, fname: str, new, old=None, kunnr: str = KUNNR, cls: str = "DEBI", table: str = "KNA1"
) -> dict[str, Any]:
    return {
        "OBJECTCLAS": cls,
        "OBJECTID": kunnr,
        "CHANGENR": nr,
        "TABNAME": table,
        "TABKEY": "100" + kunnr,
        "FNAME": fname,
        "CHNGIND": "U",
        "VALUE_NEW": new,
        "VALUE_OLD": old,
    }


def sap_values(svc: AagService) -> dict[str, tuple[Any, ...]]:
    return {
        e["rel_type"]: (e["value"], e["updated_at"], e["source_event_id"])
        for e in edges(svc)
        if e["source_node_id"] == SAP_CUSTOMER and e["is_current"] and e["rel_type"] != SOURCE_RECORD_REL
    }


def test_change_documents_give_kna1_fields_their_exact_time(svc, ingest):
    report = ingest(
        "sap",
        "CDHDR",
        [
            header("0000004711", "20260301", "142305"),
            header("0000004712", "20260302", "080000"),
            header("0000000001", "20260301", "090000", cls="MATERIAL", kunnr="MAT-1"),
        ],
    )
    # Headers only land, for CDPOS to join.
    assert (report.rows_landed, report.rows_processed, report.field_events) == (3, 3, 0)
    report = ingest(
        "sap",
        "CDPOS",
        [
            item("0000004711", "TELF1", "+49 30 7654321"),
            item("0000004711", "ORT01", "Potsdam"),
            item("0000004711", "PSTLZ", "14467 "),
            item("0000004711", "NAME1", "Muster AG"),
            item("0000004711", "NAME2", "Vertrieb"),
            item("0000004711", "SORTL", "MUSTER"),  # a KNA1 field AAG does not map
            item("0000004711", "KDGRP", "01", table="KNVV"),  # another table of the document
            item("0000000001", "MATKL", "X", cls="MATERIAL", kunnr="MAT-1", table="MARA"),
            item("0000004712", "NAME1", "Muster SE"),  # NAME1 alone: the full name is unknown
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (9, 9, 0)
    at = ts("2026-03-01T14:23:05Z")
    doc = "sap:CDPOS:DEBI:0000100001:0000004711:"
    assert sap_values(svc) == {
        "HAS_PHONE": ("+49307654321", at, doc + "TELF1"),
        "HAS_CITY": ("Potsdam", at, doc + "ORT01"),
        "HAS_POSTAL_CODE": ("14467", at, doc + "PSTLZ"),
        "HAS_FULL_NAME": ("Muster AG Vertrieb", at, doc + "NAME1"),
    }
    assert {e["source_node_id"] for e in edges(svc)} == {SAP_CUSTOMER}
    assert not [e for e in edges(svc) if e["rel_type"] == SOURCE_RECORD_REL]

    # Setting the deletion flag removes every field at the document's time.
    ingest("sap", "CDHDR", [header("0000004713", "20260305", "101500")])
    ingest("sap", "CDPOS", [item("0000004713", "LOEVM", "X", old="")])
    assert sap_values(svc) == {}
    for rel in ("HAS_PHONE", "HAS_CITY", "HAS_FULL_NAME"):
        (closed,) = versions(svc, SAP_CUSTOMER, rel, "sap")
        assert closed["props"]["closed_by"] == "removal"
        assert closed["props"]["valid_to"] == "2026-03-05T10:15:00.000000Z"
        assert (
            closed["props"]["closed_by_event"]
            == f"sap:CDPOS:DEBI:0000100001:0000004713:LOEVM:{rel_source(rel)}"
        )


def rel_source(rel_type: str) -> str:
    return {"HAS_PHONE": "TELF1", "HAS_CITY": "ORT01", "HAS_FULL_NAME": "NAME1"}[rel_type]


#: The customer as KNA1 had it before 2026-03-01.
KNA1_BEFORE = kna1(NAME2="", TELF1="+49 30 1111111", LAEDA="20250101")
#: The KNA1 row after 2026-03-01: TELF1 changed at 14:23:05 (with a change document),
#: STRAS changed that day too (no change document loaded for it).
KNA1_AFTER = kna1(NAME2="", TELF1="+49 30 2222222", STRAS="Ringstr. 9", LAEDA="20260301")
DOCUMENTS = (
    [header("0000004711", "20260301", "142305")],
    [item("0000004711", "TELF1", "+49 30 2222222", old="+49 30 1111111")],
)


def _sap_world(folder: Path, order: tuple[str, ...]) -> AagService:
    svc, ingest = _service(folder)
    ingest("sap", "KNA1", [KNA1_BEFORE])
    steps = {
        "kna1": lambda: ingest("sap", "KNA1", [KNA1_AFTER]),
        "cdhdr": lambda: ingest("sap", "CDHDR", DOCUMENTS[0]),
        "cdpos": lambda: ingest("sap", "CDPOS", DOCUMENTS[1]),
    }
    for step in order:
        steps[step]()
    return svc


SAP_ORDERS = [("kna1", "cdhdr", "cdpos"), ("cdhdr", "kna1", "cdpos"), ("cdhdr", "cdpos", "kna1")]


@pytest.mark.parametrize("order", SAP_ORDERS, ids="+".join)
def test_a_same_day_kna1_record_does_not_start_the_run_a_change_document_times(tmp_path, order):
    svc = _sap_world(tmp_path / "a", order)
    phone = [
        (v["value"], v["updated_at"], v["is_current"], v["source_event_id"][:10])
        for v in versions(svc, SAP_CUSTOMER, "HAS_PHONE", "sap")
    ]
    # The old number until 14:23:05, not until midnight; the KNA1 day event adds nothing.
    assert phone == [
        ("+49301111111", ts("2025-01-01T00:00:00Z"), False, "sap:KNA1:0"),
        ("+49302222222", ts("2026-03-01T14:23:05Z"), True, "sap:CDPOS:"),
    ]
    old = versions(svc, SAP_CUSTOMER, "HAS_PHONE", "sap")[0]
    assert old["props"]["valid_to"] == "2026-03-01T14:23:05.000000Z"
    # A field changed that day without a change document keeps KNA1's day precision.
    assert current_edge(svc, SAP_CUSTOMER, "HAS_STREET", "sap")["updated_at"] == ts("2026-03-01T00:00:00Z")
    # The shadowed KNA1 event is kept in the log, so any later batch still sees it.
    logged = [
        e["source_event_id"][:9]
        for e in svc.warehouse.graph.edge_events().to_pylist()
        if e["rel_type"] == "HAS_PHONE"
    ]
    assert logged == ["sap:KNA1:"]

    # Every order gives the very same table.
    for i, other in enumerate(o for o in SAP_ORDERS if o != order):
        assert relationships(_sap_world(tmp_path / f"o{i}", other)) == relationships(svc), other

    # A later KNA1 row (another field changed on 2026-03-09) moves nothing else.
    report = Batches(svc, tmp_path / "a" / "in")(
        "sap", "KNA1", [{**KNA1_AFTER, "ORT01": "Potsdam", "LAEDA": "20260309"}]
    )
    assert report.edge_versions_written == 1
    assert current_edge(svc, SAP_CUSTOMER, "HAS_PHONE", "sap")["updated_at"] == ts("2026-03-01T14:23:05Z")


def test_a_kna1_snapshot_taken_before_that_days_change_keeps_the_old_value_until_then(svc, ingest):
    # LAEDA is 2026-03-01 because of an earlier change that day; the snapshot still
    # shows the old phone, which the change document replaces at 14:23:05.
    ingest("sap", "KNA1", [KNA1_BEFORE])
    ingest("sap", "KNA1", [{**KNA1_BEFORE, "STRAS": "Ringstr. 9", "LAEDA": "20260301"}])
    ingest("sap", "CDHDR", DOCUMENTS[0])
    ingest("sap", "CDPOS", DOCUMENTS[1])
    got = [
        (v["value"], v["updated_at"], v["is_current"])
        for v in versions(svc, SAP_CUSTOMER, "HAS_PHONE", "sap")
    ]
    assert got == [
        ("+49301111111", ts("2025-01-01T00:00:00Z"), False),
        ("+49302222222", ts("2026-03-01T14:23:05Z"), True),
    ]


def test_change_document_bad_rows_are_quarantined_and_the_rest_processed(svc, ingest):
    report = ingest(
        "sap",
        "CDHDR",
        [
            header("0000000010", "20260301", "142305"),
            header("0000000011", "20260301", "250000"),
            header("0000000012", "20261301", "120000"),
            header("0000000013", "20260301", ""),
            header("", "20260301", "120000"),
            header("0000000014", "20260301", "120000", kunnr=" "),
            header("0000000015", "2026", "1200", cls="ADRESSE", kunnr="ADDR"),  # not a customer
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (7, 2, 5)
    assert reasons(svc, "CDHDR") == Counter(
        {
            "invalid change time: UDATE 20260301, UTIME 250000": 1,
            "invalid change time: UDATE 20261301, UTIME 120000": 1,
            "missing change time: UDATE and UTIME are both needed": 1,
            "missing change number (CHANGENR)": 1,
            "missing record id (OBJECTID)": 1,
        }
    )
    report = ingest(
        "sap",
        "CDPOS",
        [
            item("0000000010", "ORT01", "Potsdam"),
            item("0000000010", "TELF1", "call me"),
            item("0000000010", "TELF1", "030 7654321"),  # national: an item has no LAND1 to read it in
            item("0000000011", "ORT01", "Köln"),
            item("0000000099", "ORT01", "Bonn"),
            item("", "ORT01", "Bonn"),
            item("0000000010", "ORT01", "Bonn", kunnr=""),
            item("0000000010", "LOEVM", "maybe"),
            item("0000000099", "X", "1", cls="ADRESSE", kunnr="ADDR", table="ADRC"),
        ],
    )
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (9, 4, 5)
    assert report.fields_rejected == 2
    assert reasons(svc, "CDPOS") == Counter(
        {
            "invalid change time in the CDHDR header: UDATE 20260301, UTIME 250000": 1,
            "no landed CDHDR header for change document DEBI 0000100001 0000000099"
            " (ingest CDHDR before CDPOS)": 1,
            "missing change number (CHANGENR)": 1,
            "missing record id (OBJECTID)": 1,
            "invalid deletion flag (LOEVM): maybe": 1,
            "invalid phone value in TELF1: call me": 1,
            "invalid phone value in TELF1: 030 7654321": 1,
        }
    )
    assert sap_values(svc) == {
        "HAS_CITY": ("Potsdam", ts("2026-03-01T14:23:05Z"), "sap:CDPOS:DEBI:0000100001:0000000010:ORT01")
    }

    # Once its header has landed, the item sent again (in a new file) is processed.
    ingest("sap", "CDHDR", [header("0000000099", "20260302", "070000")])
    report = ingest(
        "sap", "CDPOS", [item("0000000099", "ORT01", "Bonn"), item("0000000010", "ORT01", "Potsdam")]
    )
    assert (report.rows_unchanged, report.rows_quarantined) == (1, 0)
    assert sap_values(svc)["HAS_CITY"][:2] == ("Bonn", ts("2026-03-02T07:00:00Z"))


def test_items_ingested_before_any_header_are_quarantined_not_lost(svc, ingest):
    report = ingest("sap", "CDPOS", DOCUMENTS[1])
    assert (report.rows_processed, report.rows_quarantined, report.field_events) == (0, 1, 0)
    assert list(reasons(svc, "CDPOS")) == [
        "no landed CDHDR header for change document DEBI 0000100001 0000004711 (ingest CDHDR before CDPOS)"
    ]
    ingest("sap", "CDHDR", DOCUMENTS[0])
    report = ingest("sap", "CDPOS", DOCUMENTS[1], fmt="csv")
    assert (report.rows_processed, report.rows_quarantined) == (1, 0)
    assert sap_values(svc)["HAS_PHONE"][:2] == ("+49302222222", ts("2026-03-01T14:23:05Z"))


def test_erasing_a_sap_customer_erases_its_change_documents(svc, ingest):
    ingest("sap", "KNA1", [KNA1_BEFORE, kna1(KUNNR="0000100002")])
    ingest(
        "sap",
        "CDHDR",
        [header("1", "20260301", "142305"), header("2", "20260301", "142305", kunnr="0000100002")],
    )
    ingest("sap", "CDPOS", [item("1", "ORT01", "Potsdam"), item("2", "ORT01", "Köln", kunnr="0000100002")])
    result = svc.erase(svc.find_customer("sap", KUNNR))
    assert result["bronze_rows_removed"] == 3
    for obj in ("KNA1", "CDHDR", "CDPOS"):
        left = svc.warehouse.io.read(svc.warehouse.bronze_uri("sap", obj), "_record_id")
        assert left.column("_record_id").to_pylist() == ["0000100002"], obj
