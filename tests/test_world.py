"""The generated five-source world ingested for real: formats, removals, malformed rows.

:mod:`aag.world` is the demo's, the benchmarks' and several tests' data source, so what
it claims to contain is checked here against what the warehouse made of it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from aag.demo import run_world
from aag.service import AagService
from aag.world import FORMATS, MALFORMED, OBJECT

PEOPLE = 200


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    svc = AagService(str(root / "wh"))
    svc.init()
    score, world = run_world(svc, root / "in", PEOPLE)
    return svc, score, world


def test_each_system_exports_in_its_own_format(ingested):
    _, score, world = ingested
    seen = {(system, path.suffix.lstrip(".")) for system, _, path in world.files}
    assert seen == set(FORMATS.items())
    assert score.files_by_format == dict(Counter(path.suffix.lstrip(".") for _, _, path in world.files))


def test_every_malformed_row_is_quarantined_with_its_reason_and_nothing_else(ingested):
    svc, score, world = ingested
    quarantine = svc.warehouse.quarantine().to_pylist()
    assert score.rows_quarantined == world.malformed_rows == len(quarantine) == 7 * len(MALFORMED)
    reasons = Counter((q["source_system"], q["reason"].split(":")[0].split(" (")[0]) for q in quarantine)
    # Every kind of bad row, from every source, rotating through the rounds.
    assert {kind for _, kind in reasons} == {
        "missing record id",
        "unparseable record time",
        "invalid SAP date in LAEDA",
        "traits must be a JSON object, got an array",
        "event time out of range",
    }
    assert {system for system, _ in reasons} == set(OBJECT)
    assert all(q["level"] == "row" for q in quarantine)
    # The rest of each batch was processed: every person is in one customer.
    assert score.people_in_one_customer == PEOPLE


def test_records_deleted_in_their_source_leave_identity_and_profiles(ingested):
    svc, _, world = ingested
    deleted = {
        (rec.system, rec.record_id)
        for person in world.people
        for rec in person.records.values()
        if not rec.live
    }
    assert {system for system, _ in deleted} == {"salesforce", "sap"}
    mapped = {(r["source_system"], r["source_record_id"]) for r in svc.identity_map().to_pylist()}
    live = {(rec.system, rec.record_id) for person in world.people for rec in person.live_records()}
    assert not deleted & mapped
    assert live <= mapped
    profiles = svc.customer_profiles(1).to_pylist()
    # Each person is one profile; a deleted record leaves no empty one behind.
    assert len(profiles) == PEOPLE
    assert all(any(v is not None for k, v in p.items() if k != "customer_id") for p in profiles)


def test_field_level_resolution_beats_latest_record_wins(ingested):
    _, score, _ = ingested
    assert score.field_level >= 0.98
    assert score.field_level - score.record_level >= 0.05
    # Logins re-send the app's cached phone at a fresh time; only field-level times see it.
    cells, field_ok, record_ok = score.per_attribute["phone"]
    assert field_ok == cells > record_ok
