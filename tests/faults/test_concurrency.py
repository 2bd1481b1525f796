"""Concurrent writers and readers on one warehouse.

Writers are serialised by an ``flock`` on the warehouse: concurrent ``aag ingest``
processes each land their batch exactly once (a busy warehouse makes a writer wait,
or fail with a clear "warehouse busy ... retry" after ``AAG_LOCK_TIMEOUT``), and
since the graph is a function of the events, the result equals a sequential run.
Readers never take the lock: Delta gives them a consistent snapshot mid-commit.
"""

from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path

import pytest

from aag.service import AagService
from aag.world import generate

from .tables import aag, differences, snapshot, tally


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[tuple[str, str, Path]]:
    # SAP KNA1 joins the ADR6 rows landed before it, so it is left out of the races.
    world = generate(tmp_path_factory.mktemp("conc") / "in", 60, formats="jsonl").files
    return [f for f in world if f[0] != "sap"][:8]


def test_concurrent_ingests_land_every_batch_once_like_a_sequential_run(files, tmp_path):
    sequential = AagService(str(tmp_path / "seq"))
    sequential.init()
    for system, obj, path in files:
        sequential.ingest(system, obj, [path])
    wh = tmp_path / "conc"
    AagService(str(wh)).init()
    # Every file twice, all at once: same and different sources race for the warehouse.
    procs = [
        aag("ingest", system, obj, str(path), "--warehouse", str(wh), "--json")
        for _ in range(2)
        for system, obj, path in files
    ]
    statuses: dict[str, list[str]] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        report = json.loads(out)[0]
        statuses.setdefault(report["batch_id"], []).append(report["status"])
    assert len(statuses) == len(files)
    assert all(sorted(s) == ["already ingested", "committed"] for s in statuses.values())
    assert differences(snapshot(tmp_path / "seq", any_order=True), snapshot(wh, any_order=True)) == []
    tally("concurrent aag ingest processes (each batch landed once)", len(procs))


def test_a_busy_warehouse_fails_clearly_and_a_retry_succeeds(files, tmp_path):
    wh = tmp_path / "busy"
    AagService(str(wh)).init()
    system, obj, path = files[0]
    with (wh / ".aag.lock").open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        blocked = aag("ingest", system, obj, str(path), "--warehouse", str(wh), env={"AAG_LOCK_TIMEOUT": "1"})
        _, err = blocked.communicate(timeout=120)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    assert blocked.returncode != 0
    assert err.strip().startswith("error: warehouse busy") and err.strip().endswith("retry")
    assert len(err.strip().splitlines()) == 1
    retry = aag("ingest", system, obj, str(path), "--warehouse", str(wh), "--json")
    out, err = retry.communicate(timeout=300)
    assert retry.returncode == 0, err and json.loads(out)[0]["status"] == "committed"


def test_readers_see_a_consistent_snapshot_while_a_writer_commits(files, tmp_path):
    wh = tmp_path / "read"
    svc = AagService(str(wh))
    svc.init()
    system, obj, path = files[0]
    svc.ingest(system, obj, [path])
    record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    customer = svc.find_customer(system, str(record.get("Id") or record.get("id")))
    before = svc.profile(customer)
    writer = aag("ingest", *[str(x) for x in files[1]], "--warehouse", str(wh))
    seen = []
    errors: list[BaseException] = []

    def read() -> None:
        reader = AagService(str(wh))
        while writer.poll() is None:
            try:
                seen.append(reader.profile(customer))
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return

    thread = threading.Thread(target=read)
    thread.start()
    writer.communicate(timeout=300)
    thread.join()
    assert writer.returncode == 0 and not errors
    # Every read is the profile before or after a commit: never a torn mix.
    after = svc.profile(customer)
    assert seen and all(p in (before, after) for p in seen)
