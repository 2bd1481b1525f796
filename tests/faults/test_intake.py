"""The Segment intake under faults: a CLI writer at the same time, kills, hostile bodies.

The intake acknowledges a call once it is on disk and processes it later, so the
promises to prove are: an acknowledged call is applied exactly once (through CLI
ingests racing for the writer lock, through a server killed at any point of a
micro-batch and restarted), and a refused body leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag.service import AagService
from aag.world import generate
from servekit import running_server

from .tables import Rows, aag, differences, snapshot, tally

ARGS = ("--intake-interval", "0.2", "--gold-refresh", "-1")
SILVER = ("silver/nodes", "silver/relationships")


def calls(n: int, prefix: str = "c") -> list[dict[str, Any]]:
    """``n`` identify calls: some users called twice, some sharing an e-mail."""
    out = []
    for i in range(n):
        user = f"intake-user-{i % (n // 2 or 1)}"
        out.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{prefix}-{i}",
                "timestamp": f"2026-05-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                "traits": {
                    "email": f"shared{i % 3}@intake.example" if i % 5 == 0 else f"{user}@intake.example",
                    "firstName": f"First{i}",
                    "city": None if i % 7 == 0 else f"City{i % 4}",
                },
            }
        )
    return out


def silver(warehouse: Path) -> dict[str, Rows]:
    return {k: v for k, v in snapshot(warehouse, any_order=True).items() if k in SILVER}


def reference(tmp: Path, sent: list[dict[str, Any]], files: Sequence[tuple[str, str, Path]] = ()) -> Path:
    """The same data through plain ``aag ingest``, one file each, no server."""
    wh = tmp / "reference"
    svc = AagService(str(wh))
    svc.init()
    for system, obj, path in files:
        svc.ingest(system, obj, [path])
    rows = [
        {
            "message_id": c["messageId"],
            "user_id": c["userId"],
            "anonymous_id": None,
            "timestamp": c["timestamp"],
            "received_at": c["timestamp"],
            "traits": c["traits"],
        }
        for c in sent
    ]
    path = tmp / "reference-identifies.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    svc.ingest("segment", "identifies", [path])
    return wh


def post_all(url: str, key: str, sent: list[dict[str, Any]], size: int = 5) -> int:
    """Post the calls in batches; returns how many were acknowledged."""
    acked = 0
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        for start in range(0, len(sent), size):
            response = client.post("/v1/batch", json={"batch": sent[start : start + size]})
            assert response.status_code == 200, response.text
            acked += response.json()["accepted"]
    return acked


def drained(url: str, key: str, accepted: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        while True:
            intake = client.get("/v1/status").json()["intake"]
            if intake["pending_files"] == 0 and intake["accepted_calls"] >= accepted and intake["batches"]:
                return dict(intake)
            assert time.monotonic() < deadline, intake
            time.sleep(0.2)


def new_warehouse(path: Path) -> tuple[AagService, str]:
    from servekit import make_key

    svc = AagService(str(path))
    svc.init()
    return svc, make_key(svc, "fault", "read,ingest")


def test_intake_during_a_cli_ingest_applies_every_call_once(tmp_path: Path) -> None:
    world = [f for f in generate(tmp_path / "in", 60, formats="jsonl").files if f[0] != "sap"][:6]
    sent = calls(40)
    svc, key = new_warehouse(tmp_path / "wh")
    with running_server(svc.warehouse.uri, *ARGS, log=tmp_path / "serve.log") as url:
        cli = aag(
            "ingest", *[str(x) for x in world[0][:2]], str(world[0][2]), "--warehouse", svc.warehouse.uri
        )
        writers = [cli] + [
            aag("ingest", system, obj, str(path), "--warehouse", svc.warehouse.uri)
            for system, obj, path in world[1:]
        ]
        # Every call is acknowledged while the CLI writers hold the warehouse.
        acked = post_all(url, key, sent) + post_all(url, key, sent[:10])
        for proc in writers:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
        drained(url, key, acked)
    assert acked == 50
    expected = silver(reference(tmp_path, sent, world))
    assert differences(expected, silver(tmp_path / "wh")) == []
    tally("concurrent aag ingest processes (each batch landed once)", len(writers))
    tally("intake calls acknowledged during CLI ingests, applied once", acked)


@pytest.mark.parametrize("point", ["bronze-landed", "nodes-committed", "edges-committed", "ledger-written"])
def test_a_server_killed_in_a_micro_batch_converges_after_restart(tmp_path: Path, point: str) -> None:
    sent = calls(20, prefix=point)
    svc, key = new_warehouse(tmp_path / "wh")
    log = tmp_path / "serve.log"
    env_before = os.environ.get("AAG_CRASH_AT")
    os.environ["AAG_CRASH_AT"] = point
    try:
        with running_server(svc.warehouse.uri, *ARGS, log=log) as url:
            acked = 0
            with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
                try:
                    for start in range(0, len(sent), 5):
                        response = client.post("/v1/batch", json={"batch": sent[start : start + 5]})
                        assert response.status_code == 200
                        acked += response.json()["accepted"]
                except httpx.TransportError:
                    pass  # the server killed itself at the crash point
                deadline = time.monotonic() + 120
                while True:
                    try:
                        client.get("/health")
                    except httpx.TransportError:
                        break
                    assert time.monotonic() < deadline, "the crash point was never reached"
                    time.sleep(0.1)
    finally:
        if env_before is None:
            os.environ.pop("AAG_CRASH_AT", None)
        else:
            os.environ["AAG_CRASH_AT"] = env_before
    assert acked >= 5
    with running_server(svc.warehouse.uri, *ARGS, log=log) as url:
        acked += post_all(url, key, sent[acked:])
        drained(url, key, 0)
    assert acked == len(sent)
    expected = silver(reference(tmp_path, sent))
    assert differences(expected, silver(tmp_path / "wh")) == []
    tally("intake server kills (crash points, after acknowledging) re-run to the clean tables")


def test_a_server_killed_right_after_acknowledging_loses_nothing(tmp_path: Path) -> None:
    sent = calls(20, prefix="ack")
    svc, key = new_warehouse(tmp_path / "wh")
    log = tmp_path / "serve.log"
    # A long interval: the worker only runs when a request wakes it, so kill it first.
    slow = ("--intake-interval", "3600", "--gold-refresh", "-1")
    procs: list[Any] = []
    with running_server(svc.warehouse.uri, *slow, log=log, procs=procs) as url:
        acked = post_all(url, key, sent, size=20)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)
    with running_server(svc.warehouse.uri, *ARGS, log=log) as url:
        drained(url, key, 0)
    assert acked == len(sent)
    assert differences(silver(reference(tmp_path, sent)), silver(tmp_path / "wh")) == []
    tally("intake server kills (crash points, after acknowledging) re-run to the clean tables")


def test_after_a_kill_leftovers_are_removed_counters_add_up_and_erased_calls_are_counted(
    tmp_path: Path,
) -> None:
    from servekit import make_key

    sent = calls(20, prefix="restart")
    svc, key = new_warehouse(tmp_path / "wh")
    dpo = make_key(svc, "dpo", "read,erase")
    log = tmp_path / "serve.log"
    slow = ("--intake-interval", "3600", "--gold-refresh", "-1")
    procs: list[Any] = []
    with running_server(svc.warehouse.uri, *slow, log=log, procs=procs) as url:
        acked = post_all(url, key, sent, size=20)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)
    # What a kill -9 in the middle of writing leaves: a half-written batch and request.
    root = svc.warehouse.intake_root
    (root / "batches").mkdir(parents=True, exist_ok=True)
    leftovers = [root / "batches" / ".intake-1-dead.jsonl.tmp", root / "pending" / ".2-dead.jsonl.tmp"]
    for path in leftovers:
        path.write_text('{"message_id": "half', encoding="utf-8")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    with running_server(svc.warehouse.uri, *ARGS, log=log) as url:
        intake = drained(url, key, 0)
        assert not [p for p in leftovers if p.exists()]
        # (The killed worker may have left a batch .tmp of its own.)
        assert intake["leftovers_removed"] >= 2
        # Counted per process: the calls the killed one acknowledged are carried over.
        counts = (intake["accepted_calls"], intake["carried_over_calls"], intake["processed_calls"])
        assert counts == (0, 20, 20)
        # A call re-sent for an erased person is counted as suppressed, not silently dropped.
        with httpx.Client(base_url=url, timeout=60) as client:
            customer = svc.find_customer("segment", "intake-user-1")
            erased = client.delete(f"/v1/customers/{customer}", headers={"X-API-Key": dpo})
            assert erased.status_code == 200, erased.text
            again = {**sent[1], "messageId": "restart-again"}
            assert client.post("/v1/identify", json=again, headers={"X-API-Key": key}).status_code == 200
        intake = drained(url, key, 1)
        assert intake["suppressed_calls"] == 1
        assert intake["accepted_calls"] + intake["carried_over_calls"] == intake["processed_calls"] == 21
    assert acked == len(sent)


@pytest.mark.parametrize("state", ["list only", "list and batch", "ingested, not retired"])
def test_a_batch_cut_before_a_kill_is_applied_and_counted_once(tmp_path: Path, state: str) -> None:
    """The three moments of a cut a kill can stop at, each restarted by a new worker."""
    from aag.serving.intake import Intake, parse_calls
    from aag.serving.service import ServingService

    sent = calls(20, prefix="cut")
    svc, _ = new_warehouse(tmp_path / "wh")
    serving = ServingService(svc.warehouse.uri, gold_refresh=None)
    killed = serving.intake
    killed.accept(parse_calls(json.dumps({"batch": sent}).encode(), batch=True))
    batch = killed._cut_batch(killed._pending_files())
    if state == "list only":
        batch.unlink()
    elif state == "ingested, not retired":
        serving.writer.ingest("segment", "identifies", [batch])
    restarted = Intake(killed.root, killed.ingest)
    assert restarted.process_once() == 1
    status = restarted.status
    assert (status.processed_calls, status.carried_over_calls) == (20, 20)
    assert status.leftovers_removed == (1 if state == "list only" else 0)
    assert not list(killed.pending.glob("*")) and not list(killed.batch_dir.glob("*"))
    assert restarted.process_once() == 0
    assert differences(silver(reference(tmp_path, sent)), silver(tmp_path / "wh")) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
identify_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["identify", "track", "", "IDENTIFY"]) | st.text(max_size=8),
        "userId": st.none() | st.text(max_size=30) | st.integers(),
        "anonymousId": st.none() | st.text(max_size=30),
        "messageId": st.none() | st.text(max_size=30) | st.integers(),
        "timestamp": st.none()
        | st.sampled_from(
            ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-03-01T09:00:00+14:00", "nope"]
        )
        | st.datetimes().map(lambda d: d.isoformat()),
        "traits": json_values,
        "context": json_values,
    },
)
bodies = (
    identify_like.map(lambda d: ("identify", json.dumps(d).encode()))
    | st.lists(identify_like, max_size=5).map(lambda b: ("batch", json.dumps({"batch": b}).encode()))
    | st.binary(max_size=200).map(lambda b: ("identify", b))
    | json_values.map(lambda v: ("batch", json.dumps(v).encode()))
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    svc, key = new_warehouse(tmp / "wh")
    with (
        running_server(svc.warehouse.uri, *ARGS, log=tmp / "serve.log") as url,
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client,
    ):
        yield client, svc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_fuzzed_intake_bodies_are_accepted_whole_or_refused_whole(
    fuzz_server: Any, body: tuple[str, bytes]
) -> None:
    client, _ = fuzz_server
    endpoint, payload = body
    before = client.get("/v1/status").json()["intake"]["accepted_calls"]
    response = client.post(f"/v1/{endpoint}", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), (payload[:200], response.status_code, response.text)
    after = client.get("/v1/status").json()["intake"]["accepted_calls"]
    if response.status_code == 200:
        assert after == before + response.json()["accepted"]
    else:
        assert after == before and response.json()["error"]
    tally("fuzzed intake request bodies (accepted or refused whole)")


def test_fuzzed_calls_that_were_accepted_are_all_processed(fuzz_server: Any) -> None:
    """Runs after the fuzz: every accepted call went through the pipeline without an error."""
    client, _svc = fuzz_server
    accepted = client.get("/v1/status").json()["intake"]["accepted_calls"]
    deadline = time.monotonic() + 300
    while True:
        intake = client.get("/v1/status").json()["intake"]
        if intake["pending_files"] == 0 and (accepted == 0 or intake["batches"]):
            break
        assert time.monotonic() < deadline, intake
        time.sleep(0.2)
    assert intake["last_error"] is None
    # Every accepted call reached a committed batch: landed, or skipped as a replay.
    assert intake["processed_calls"] == accepted
