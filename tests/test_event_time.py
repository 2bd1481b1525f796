"""Event-time bounds (SPEC §11) and Segment clock-skew correction, through real warehouses.

An event time before 1900-01-01, or later than the ingest time plus the source's
tolerance, is bad input: its row (or, for a field's own time, its field) is quarantined
with the reason and never becomes an edge. Segment times are first corrected for the
client's clock skew, in files and at the HTTP intake.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aag.bronze import read_rows
from aag.config import DEFAULT_FUTURE_TOLERANCE, default_config_dir, load_config
from aag.engine.base import Engine
from aag.errors import ConfigError
from aag.graph.bronze_reads import LandedBronze
from aag.graph.delta import now_utc
from aag.service import AagService
from aag.sources import extractor_for
from aag.sources.base import EVENTS_TABLE, SOURCE_RECORD_REL
from servekit import make_key, running_server

LATER = " is more than 24 h after its ingest time"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def warehouse(folder: Path, monkeypatch: pytest.MonkeyPatch | None = None, priorities: str | None = None):
    """A fresh warehouse; ``priorities`` replaces the source_priority.csv of its config."""
    if priorities is not None:
        assert monkeypatch is not None
        config = folder / "cfg"
        config.mkdir()
        for path in default_config_dir().glob("*.csv"):
            (config / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        (config / "source_priority.csv").write_text(priorities, encoding="utf-8")
        monkeypatch.setenv("AAG_CONFIG_DIR", str(config))
    svc = AagService(str(folder / "wh"))
    svc.init()
    return svc


def ingest(svc: AagService, system: str, obj: str, path: Path):
    report = svc.ingest(system, obj, [path])[0]
    assert report.status == "committed"
    assert report.rows_landed == report.rows_processed + report.rows_quarantined
    return report


def quarantined(svc: AagService) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = svc.warehouse.quarantine().to_pylist()
    return rows


def stored_times(svc: AagService, system: str) -> list[datetime]:
    return [
        e["updated_at"]
        for e in svc.warehouse.graph.relationships().to_pylist()
        if e["source_system"] == system
    ]


def contact(cid: str, when: str, email: str) -> dict[str, Any]:
    return {"Id": cid, "LastModifiedDate": when, "Email": email, "LastName": "Example"}


# -- files ---------------------------------------------------------------------------------


def test_far_future_and_pre_1900_rows_are_quarantined_never_stored(tmp_path):
    svc = warehouse(tmp_path)
    soon = iso(now_utc().as_py() + timedelta(hours=23))  # inside the default day of tolerance
    path = jsonl(
        tmp_path / "contacts.jsonl",
        [
            contact("0035g00000Good1", "2026-01-01T00:00:00Z", "good@example.com"),
            contact("0035g00000Soon1", soon, "soon@example.com"),
            contact("0035g00000Futur", "9999-12-31T23:59:59Z", "future@example.com"),
            contact("0035g00000Old01", "1899-12-31T23:59:59Z", "old@example.com"),
        ],
    )
    report = ingest(svc, "salesforce", "Contact", path)
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (4, 2, 2)
    # Bronze keeps every raw row, the bad ones included.
    assert LandedBronze(svc.warehouse).rows("salesforce", "Contact", ("Id",)).num_rows == 4
    reasons = sorted(q["reason"] for q in quarantined(svc))
    assert reasons == [
        "event time out of range (LastModifiedDate): 1899-12-31T23:59:59.000000Z is before 1900-01-01",
        "event time out of range (LastModifiedDate): 9999-12-31T23:59:59.000000Z is more than 24 h "
        "after its ingest time",
    ]
    assert all(q["level"] == "row" and '"Id"' in q["raw"] for q in quarantined(svc))
    values = {n["value"] for n in svc.warehouse.graph.nodes().to_pylist()}
    assert {"good@example.com", "soon@example.com"} <= values
    assert not values & {"future@example.com", "old@example.com"}
    times = stored_times(svc, "salesforce")
    assert times and datetime(1900, 1, 1, tzinfo=UTC) <= min(times)
    assert max(times) <= now_utc().as_py() + DEFAULT_FUTURE_TOLERANCE
    # Nothing from the future is stored, so monitor shows no negative lag for it.
    lags = svc.monitor().freshness.column("event_lag_seconds").to_pylist()
    assert lags and min(lags) >= -DEFAULT_FUTURE_TOLERANCE.total_seconds()
    assert min(lags) > -24 * 3600


def test_field_times_sap_dates_and_history_times_are_bounded_too(tmp_path):
    svc = warehouse(tmp_path)
    shop = {
        "id": "1",
        "email": "shop@example.com",
        "accepts_marketing": True,
        "accepts_marketing_updated_at": "2999-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    report = ingest(svc, "shopify", "customers", jsonl(tmp_path / "shop.jsonl", [shop]))
    # The field's own time rejects that field only (like an unparseable field time).
    assert (report.rows_processed, report.rows_quarantined, report.fields_rejected) == (1, 0, 1)
    kna1 = [
        {"KUNNR": "1", "NAME1": "Ok", "LAND1": "DE", "LAEDA": "20260101"},
        {"KUNNR": "2", "NAME1": "Forever", "LAND1": "DE", "LAEDA": "99991231"},
        {"KUNNR": "3", "NAME1": "Zero", "LAND1": "DE", "LAEDA": "", "ERDAT": "18991230"},
    ]
    report = ingest(svc, "sap", "KNA1", jsonl(tmp_path / "kna1.jsonl", kna1))
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (3, 1, 2)
    history = [
        {
            "Id": "017A1",
            "ContactId": "0035g00000Abcde",
            "Field": "Phone",
            "NewValue": "+4930123",
            "CreatedDate": "2100-01-01T00:00:00Z",
        }
    ]
    report = ingest(svc, "salesforce", "ContactHistory", jsonl(tmp_path / "hist.jsonl", history))
    assert (report.rows_quarantined, report.field_events) == (1, 0)
    found = {(q["source_object"], q["level"], q["source_field"], q["reason"]) for q in quarantined(svc)}
    assert found == {
        (
            "customers",
            "field",
            "accepts_marketing",
            "event time out of range (accepts_marketing_updated_at): 2999-01-01T00:00:00.000000Z "
            "is more than 24 h after its ingest time",
        ),
        (
            "KNA1",
            "row",
            None,
            "event time out of range (LAEDA): 9999-12-31T00:00:00.000000Z" + LATER,
        ),
        (
            "KNA1",
            "row",
            None,
            "event time out of range (LAEDA): 1899-12-30T00:00:00.000000Z is before 1900-01-01",
        ),
        (
            "ContactHistory",
            "row",
            None,
            "event time out of range (CreatedDate): 2100-01-01T00:00:00.000000Z" + LATER,
        ),
    }
    consent = [
        e
        for e in svc.warehouse.graph.relationships().to_pylist()
        if e["rel_type"] == "HAS_EMAIL_MARKETING_CONSENT"
    ]
    assert consent == []
    assert max(stored_times(svc, "sap")) == datetime(2026, 1, 1, tzinfo=UTC)


def test_the_tolerance_is_set_per_source_and_old_priority_files_get_the_default(tmp_path, monkeypatch):
    priorities = (
        "source_system,priority,description,future_tolerance_hours\n"
        "salesforce,1,CRM,0\nsap,2,ERP,\nshopify,3,Shop,48\nzendesk,4,Desk,24\nsegment,5,Tracking,24\n"
    )
    svc = warehouse(tmp_path, monkeypatch, priorities)
    config = svc.warehouse.config
    assert config.future_tolerance("salesforce") == timedelta(0)
    assert config.future_tolerance("sap") == DEFAULT_FUTURE_TOLERANCE  # blank cell
    assert config.future_tolerance("shopify") == timedelta(hours=48)
    in_two_hours = iso(now_utc().as_py() + timedelta(hours=2))
    crm = jsonl(tmp_path / "crm.jsonl", [contact("0035g00000Abcde", in_two_hours, "a@example.com")])
    assert ingest(svc, "salesforce", "Contact", crm).rows_quarantined == 1
    assert "more than 0 h after its ingest time" in quarantined(svc)[0]["reason"]
    in_30_hours = iso(now_utc().as_py() + timedelta(hours=30))
    shop = {"id": "7", "email": "s@example.com", "updated_at": in_30_hours}
    assert ingest(svc, "shopify", "customers", jsonl(tmp_path / "shop.jsonl", [shop])).rows_quarantined == 0
    desk = {"id": "9", "email": "z@example.com", "updated_at": in_30_hours}
    assert ingest(svc, "zendesk", "users", jsonl(tmp_path / "desk.jsonl", [desk])).rows_quarantined == 1

    # A priority file written before the column existed still loads, with the default.
    old = tmp_path / "old"
    old.mkdir()
    (old / "attribute_name_registry.csv").write_text(
        (default_config_dir() / "attribute_name_registry.csv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (old / "source_priority.csv").write_text("source_system,priority,description\nsalesforce,1,CRM\n")
    assert load_config(old).future_tolerance("salesforce") == DEFAULT_FUTURE_TOLERANCE
    (old / "source_priority.csv").write_text(
        "source_system,priority,future_tolerance_hours\nsalesforce,1,a day\n"
    )
    with pytest.raises(ConfigError, match="line 2: future_tolerance_hours must be a number of hours"):
        load_config(old)


def identify(message_id: str, timestamp: str, **kw: str) -> dict[str, Any]:
    return (
        {"message_id": message_id, "user_id": f"user-{message_id}", "timestamp": timestamp}
        | kw
        | {"traits": {"email": f"{message_id}@example.com"}}
    )


def test_segment_times_are_corrected_for_client_clock_skew_before_the_bounds(tmp_path):
    svc = warehouse(tmp_path)
    rows = [
        # The client's clock is an hour fast: sent 10:00:05 by its clock, received 09:00:05.
        identify(
            "fast", "2026-01-01T10:00:00Z", sent_at="2026-01-01T10:00:05Z", received_at="2026-01-01T09:00:05Z"
        ),
        # A clock set to 2099 is corrected back into range ...
        identify(
            "y2099",
            "2099-01-01T10:00:00Z",
            sent_at="2099-01-01T10:00:05Z",
            received_at="2026-01-01T09:00:05Z",
        ),
        # ... but without sent_at nothing says the clock was wrong.
        identify("plain", "2099-01-01T10:00:00Z", received_at="2026-01-01T09:00:05Z"),
        # Segment's warehouse tables store the corrected timestamp next to original_timestamp.
        identify(
            "export",
            "2026-01-01T10:00:00Z",
            original_timestamp="2026-01-01T11:00:00Z",
            sent_at="2026-01-01T11:00:05Z",
            received_at="2026-01-01T10:00:05Z",
        ),
        identify("badsent", "2026-01-01T10:00:00Z", sent_at="soon", received_at="2026-01-01T09:00:05Z"),
        identify("norecv", "2026-01-01T10:00:00Z", sent_at="2026-01-01T10:00:05Z"),
    ]
    report = ingest(svc, "segment", "identifies", jsonl(tmp_path / "identifies.jsonl", rows))
    assert (report.rows_landed, report.rows_processed, report.rows_quarantined) == (6, 3, 3)
    emails = {
        e["source_event_id"]: e["updated_at"]
        for e in svc.warehouse.graph.relationships().to_pylist()
        if e["rel_type"] == "HAS_EMAIL"
    }
    assert emails == {
        "segment:identifies:fast:traits.email": datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        "segment:identifies:y2099:traits.email": datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        "segment:identifies:export:traits.email": datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
    }
    assert sorted(q["reason"] for q in quarantined(svc)) == [
        "event time out of range (timestamp): 2099-01-01T10:00:00.000000Z" + LATER,
        "sent_at is set, so received_at must be a time to correct the clock skew: NULL",
        "unparseable sent_at: soon",
    ]


def test_bounds_and_skew_correction_are_the_same_on_both_engines(engine: Engine, tmp_path):
    """The extraction SQL (transpiled for Spark) applies the bounds and the skew correction."""
    config = load_config()
    now = now_utc()
    rows = [
        identify(
            "fast", "2026-01-01T10:00:00Z", sent_at="2026-01-01T10:00:05Z", received_at="2026-01-01T09:00:05Z"
        ),
        identify("plain", "2099-01-01T10:00:00Z"),
        identify("old", "1800-01-01T00:00:00Z"),
    ]
    extractor = extractor_for(config.object("segment", "identifies"), config)
    try:
        path = jsonl(tmp_path / "identifies.jsonl", rows)
        extracted = extractor.extract(engine, read_rows(path, extractor.fields), "b1", now)
    finally:
        extractor.close()
    assert extracted.rows_quarantined == 2
    assert sorted(r.split(":")[0] for r in extracted.quarantine.column("reason").to_pylist()) == [
        "event time out of range (timestamp)",
        "event time out of range (timestamp)",
    ]
    events = engine.query(f"SELECT rel_type, updated_at FROM {EVENTS_TABLE}").to_pylist()
    assert {e["updated_at"] for e in events} == {datetime(2026, 1, 1, 9, 0, tzinfo=UTC)}
    assert {e["rel_type"] for e in events} == {"HAS_EMAIL", SOURCE_RECORD_REL}
    engine.drop(EVENTS_TABLE)


# -- the HTTP intake -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("intake")
    svc = AagService(str(folder / "wh"))
    svc.init()
    key = make_key(svc, "segment-source", "ingest,read")
    args = ("--intake-interval", "0.2", "--gold-refresh", "-1")
    with (
        running_server(svc.warehouse.uri, *args, log=folder / "serve.log") as url,
        httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": key}) as http,
    ):
        yield svc, http


def _wait(http: httpx.Client, accepted: int) -> None:
    for _ in range(600):
        status = http.get("/v1/status").json()["intake"]
        if status["processed_calls"] >= accepted and status["pending_files"] == 0:
            return
        assert status["last_error"] is None, status
        time.sleep(0.2)
    raise AssertionError("intake did not process the calls")


def test_intake_refuses_out_of_range_times_with_a_400(intake):
    svc, http = intake
    far = {"userId": "u-far", "timestamp": "2099-01-01T00:00:00Z", "traits": {"email": "far@example.com"}}
    response = http.post("/v1/identify", json=far)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "\n" not in error and "event time out of range" in error and "2099-01-01T00:00:00" in error
    old = {"userId": "u-old", "timestamp": "1899-06-01T00:00:00Z", "traits": {}}
    assert http.post("/v1/identify", json=old).status_code == 400
    # One bad call refuses the whole batch: nothing of it lands.
    ok = {"type": "identify", "userId": "u-ok", "traits": {"email": "ok@example.com"}}
    response = http.post("/v1/batch", json={"batch": [ok, far]})
    assert response.status_code == 400 and "event time out of range" in response.json()["error"]
    status = http.get("/v1/status").json()["intake"]
    assert status["accepted_calls"] == 0
    assert "ok@example.com" not in {n["value"] for n in svc.warehouse.graph.nodes().to_pylist()}


def test_intake_corrects_client_clock_skew(intake):
    svc, http = intake
    # The client's clock runs two days ahead: without the correction the call is refused.
    ahead = datetime.now(UTC) + timedelta(days=2)
    call = {
        "userId": "u-skew",
        "messageId": "skew-1",
        "timestamp": iso(ahead - timedelta(seconds=5)),
        "sentAt": iso(ahead),
        "traits": {"email": "skew@example.com"},
    }
    before = datetime.now(UTC)
    response = http.post("/v1/identify", json=call)
    assert response.status_code == 200, response.text
    # A batch's sentAt applies to the calls that have none of their own.
    batch = {
        "sentAt": iso(ahead),
        "batch": [
            {
                "type": "identify",
                "userId": "u-skew2",
                "messageId": "skew-2",
                "timestamp": iso(ahead - timedelta(seconds=5)),
                "traits": {"email": "skew2@example.com"},
            }
        ],
    }
    response = http.post("/v1/batch", json=batch)
    assert response.status_code == 200, response.text
    after = datetime.now(UTC)
    _wait(http, 2)
    stored = {
        e["source_event_id"]: e["updated_at"]
        for e in svc.warehouse.graph.relationships().to_pylist()
        if e["rel_type"] == "HAS_EMAIL"
    }
    for event in ("segment:identifies:skew-1:traits.email", "segment:identifies:skew-2:traits.email"):
        # Received between before and after; the call was made 5 s before it was sent.
        assert before - timedelta(seconds=6) <= stored[event] <= after, (event, stored[event])
