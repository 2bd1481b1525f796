"""Confidence decides between values changed at the same time (SPEC §4, second rule).

The example of docs/configuration.md: Zendesk's phone at confidence 0.8 (agents type what
they hear on a call), everything else at 1.0. When Zendesk and Segment change a
customer's phone at the same second, Segment's value wins although Zendesk is the more
trusted source (priority 4 before 5): confidence ranks before priority.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aag import gold
from aag.config import default_config_dir
from aag.engine.base import Engine
from aag.service import AagService

AT = "2026-03-01T09:00:00Z"
ZENDESK_PHONE = "zendesk,users,phone,attribute,customer,phone,HAS_PHONE,phone,phone,1.0,,"


def config_with_zendesk_phone_at(folder: Path, confidence: str) -> Path:
    """The default config, with Zendesk's phone row at ``confidence``."""
    folder.mkdir()
    for path in default_config_dir().glob("*.csv"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    registry = folder / "attribute_name_registry.csv"
    text = registry.read_text(encoding="utf-8")
    assert text.count(ZENDESK_PHONE) == 1
    registry.write_text(text.replace(ZENDESK_PHONE, ZENDESK_PHONE.replace(",1.0,", f",{confidence},")))
    return folder


def same_second_phones(svc: AagService, folder: Path) -> str:
    """Zendesk and Segment give one customer (same e-mail) different phones at the same time."""
    desk = folder / "users.jsonl"
    desk.write_text(
        json.dumps(
            {
                "id": "9",
                "name": "Pat Doe",
                "email": "pat@example.com",
                "phone": "+49 30 1111111",
                "updated_at": AT,
            }
        )
        + "\n"
    )
    calls = folder / "identifies.jsonl"
    calls.write_text(
        json.dumps(
            {
                "message_id": "m-1",
                "user_id": "u-pat",
                "timestamp": AT,
                "traits": {"email": "pat@example.com", "phone": "+49 30 2222222"},
            }
        )
        + "\n"
    )
    for system, obj, path in (("zendesk", "users", desk), ("segment", "identifies", calls)):
        report = svc.ingest(system, obj, [path])[0]
        assert report.status == "committed" and report.rows_quarantined == 0
    customer = svc.find_customer("zendesk", "9")
    assert svc.find_customer("segment", "u-pat") == customer
    return customer


def test_equal_times_are_decided_by_confidence(engine: Engine, tmp_path, monkeypatch):
    monkeypatch.setenv("AAG_CONFIG_DIR", str(config_with_zendesk_phone_at(tmp_path / "cfg", "0.8")))
    svc = AagService(str(tmp_path / "wh"), engine=engine)
    svc.init()
    customer = same_second_phones(svc, tmp_path)

    profile = svc.profile(customer, 2)
    assert (profile["phone"], profile["phone_source"]) == ("+49302222222", "segment")
    why = svc.explain(customer, "phone").as_dict()
    assert (why["winner"]["source_system"], why["winner"]["confidence"]) == ("segment", 1.0)
    [loser] = why["losers"]
    assert (loser["source_system"], loser["confidence"], loser["kind"]) == (
        "zendesk",
        0.8,
        "lower_confidence",
    )
    assert loser["why_lost"] == "same time, lower confidence (0.8 < 1.0)"
    assert loser["updated_at"] == why["winner"]["updated_at"]


def test_without_the_lower_confidence_priority_decides(tmp_path, monkeypatch):
    """The control: at equal confidence the more trusted Zendesk wins the same tie."""
    monkeypatch.setenv("AAG_CONFIG_DIR", str(config_with_zendesk_phone_at(tmp_path / "cfg", "1.0")))
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    customer = same_second_phones(svc, tmp_path)
    assert svc.profile(customer, 2)["phone_source"] == "zendesk"
    [loser] = svc.explain(customer, "phone").as_dict()["losers"]
    assert loser["kind"] == "less_trusted"


@pytest.mark.slow
def test_the_dbt_gold_build_ranks_by_confidence_too(tmp_path, monkeypatch):
    """``resolve_winner`` (dbt) reads the edge confidence like the Python resolution."""
    monkeypatch.setenv("AAG_CONFIG_DIR", str(config_with_zendesk_phone_at(tmp_path / "cfg", "0.8")))
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    customer = same_second_phones(svc, tmp_path)
    svc.build()
    rows = pq.read_table(gold.gold_file(svc.warehouse, "customer_profile_v2")).to_pylist()
    [row] = [r for r in rows if r["customer_id"] == customer]
    assert (row["phone"], row["phone_source"]) == ("+49302222222", "segment")
