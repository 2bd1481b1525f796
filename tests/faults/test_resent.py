"""A Segment call re-sent with its ``messageId`` changes nothing, even with other content.

Segment delivers at least once and clients retry, so a ``messageId`` seen before names a
call already applied: the first one stored wins, through files (in one batch and across
batches) and through the HTTP intake of a real server.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from aag.ids import value_node_id
from aag.service import AagService
from servekit import make_key, running_server

from .tables import tally


def _call(message_id: str, email: str, day: int) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "user_id": "resent-user",
        "anonymous_id": None,
        "timestamp": f"2026-05-{day:02d}T09:00:00Z",
        "received_at": f"2026-05-{day:02d}T09:00:00Z",
        "traits": {"email": email},
    }


def _emails_of(svc: AagService, message_id: str) -> set[str]:
    """Target value nodes of the edges whose events came from this message."""
    prefix = f"segment:identifies:{message_id}:"
    return {
        r["target_node_id"]
        for r in svc.warehouse.graph.relationships().to_pylist()
        if (r["source_event_id"] or "").startswith(prefix)
    }


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_resent_message_id_in_a_later_file_changes_nothing(tmp_path: Path) -> None:
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    first = _write(tmp_path / "a.jsonl", [_call("dup-1", "first@example.com", 1)])
    assert svc.ingest("segment", "identifies", [first])[0].rows_duplicate == 0
    # The same message id again, later and with another e-mail, plus a new call; and a copy
    # of the new call inside the same file.
    later = _write(
        tmp_path / "b.jsonl",
        [
            _call("dup-1", "second@example.com", 3),
            _call("new-1", "new@example.com", 2),
            _call("new-1", "third@example.com", 4),
        ],
    )
    report = svc.ingest("segment", "identifies", [later])[0]
    assert report.rows_landed == 3 and report.rows_duplicate == 2, report
    assert report.rows_landed == report.rows_processed + report.rows_quarantined
    assert _emails_of(svc, "dup-1") == {value_node_id("email", "first@example.com")}
    assert _emails_of(svc, "new-1") == {value_node_id("email", "new@example.com")}
    tally("re-sent Segment message ids with new content (first call kept)", 2)


def test_a_message_id_resent_to_the_intake_with_new_traits_changes_nothing(tmp_path: Path) -> None:
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    key = make_key(svc, "resent", "read,ingest")
    call = {"type": "identify", "userId": "resent-user", "messageId": "http-dup-1"}
    args = ("--intake-interval", "0.2", "--gold-refresh", "-1")
    with (
        running_server(svc.warehouse.uri, *args, log=tmp_path / "serve.log") as url,
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client,
    ):
        statuses: list[dict[str, Any]] = []
        for email, day in (("first@example.com", 1), ("second@example.com", 3)):
            body = {**call, "timestamp": f"2026-05-{day:02d}T09:00:00Z", "traits": {"email": email}}
            assert client.post("/v1/identify", json=body).status_code == 200
            deadline = time.monotonic() + 120
            while True:  # each call in its own micro-batch: the re-send meets a committed batch
                intake = client.get("/v1/status").json()["intake"]
                if intake["pending_files"] == 0 and intake["batches"] == len(statuses) + 1:
                    break
                assert time.monotonic() < deadline, intake
                time.sleep(0.2)
            statuses.append(intake)
    assert statuses[-1]["last_batch"]["rows_duplicate"] == 1, statuses[-1]
    assert _emails_of(svc, "http-dup-1") == {value_node_id("email", "first@example.com")}
    tally("re-sent Segment message ids with new content (first call kept)")
