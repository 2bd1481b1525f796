"""Crash anywhere: SIGKILL between the writes of a batch, re-run, same tables as a clean run.

A batch writes several Delta tables (bronze, quarantine, nodes, the event log,
relationships, the ledger), each in its own atomic commit. The harness kills
``aag ingest`` at every crash point of :mod:`aag.faults` (and at random moments,
which also lands inside delta-rs writes), runs the same command again, and compares
every table of the warehouse with the warehouse of a run that never crashed.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from aag import gold
from aag.faults import BUILD_POINTS, POINTS
from aag.service import AagService
from aag.world import generate

from .tables import aag, copy_warehouse, differences, snapshot, tally

#: Batches the crashes hit (indices into the world's files): an initial SAP KNA1 file
#: (joins landed ADR6 rows), an incremental Salesforce file and an incremental Zendesk file.
CRASHED = (2, 6, 10)
FILES = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """The clean run: a warehouse snapshot before and after every crashed batch."""
    root = tmp_path_factory.mktemp("crash")
    files = generate(root / "in", 40, formats="jsonl").files[:FILES]
    # Every file also carries a row without a record id: quarantine is written too.
    for _, _, path in files:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"unexpected": "row without an id"}) + "\n")
    wh = root / "clean"
    svc = AagService(str(wh))
    svc.init()
    before, after, seconds = {}, {}, {}
    for i, (system, obj, path) in enumerate(files):
        if i not in CRASHED:
            svc.ingest(system, obj, [path])
            continue
        before[i] = copy_warehouse(wh, root / f"before-{i}")
        # The crashed batches run as the very command the tests kill, timed, so that a
        # random kill moment can be picked inside a run of that command.
        started = time.monotonic()
        clean = aag("ingest", system, obj, str(path), "--warehouse", str(wh))
        _, err = clean.communicate(timeout=300)
        assert clean.returncode == 0, err
        seconds[i] = time.monotonic() - started
        after[i] = snapshot(wh)
    return {"root": root, "files": files, "before": before, "after": after, "seconds": seconds}


@pytest.mark.parametrize("batch", CRASHED)
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_crash_point_then_rerun_converges(world, batch, point):
    system, obj, path = world["files"][batch]
    wh = copy_warehouse(world["before"][batch], world["root"] / f"run-{batch}-{point}")
    crashed = aag("ingest", system, obj, str(path), "--warehouse", str(wh), env={"AAG_CRASH_AT": point})
    crashed.communicate(timeout=300)
    assert crashed.returncode == -signal.SIGKILL, f"{point} was never reached"
    rerun = aag("ingest", system, obj, str(path), "--warehouse", str(wh), "--json")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    # Killed after the ledger row, the batch was complete: the re-run finds it ingested.
    expected = "already ingested" if point == "ledger-written" else "committed"
    assert json.loads(out)[0]["status"] == expected
    assert differences(world["after"][batch], snapshot(wh)) == []
    tally("ingest kill points (crash points) re-run to the clean tables")


@pytest.mark.parametrize("seed", range(4))
def test_kill_at_a_random_moment_then_rerun_converges(world, seed):
    rng = random.Random(seed)
    batch = rng.choice(CRASHED)
    system, obj, path = world["files"][batch]
    fraction = rng.uniform(0.15, 0.7)
    # A moment inside the run time measured by the fixture (start-up included). Run times
    # vary with the load of the machine (other test workers): when the ingest ends before
    # the kill lands (also between a poll and the signal), the same attempt is made again,
    # on a fresh copy, with half the delay.
    for attempt in range(6):
        wh = copy_warehouse(world["before"][batch], world["root"] / f"random-{seed}-{attempt}")
        proc = aag("ingest", system, obj, str(path), "--warehouse", str(wh))
        time.sleep(fraction * world["seconds"][batch] / 2**attempt)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == -signal.SIGKILL:
            break
        assert proc.returncode == 0, err
    assert proc.returncode == -signal.SIGKILL, "every ingest ended before its kill: nothing was tested"
    rerun = aag("ingest", system, obj, str(path), "--warehouse", str(wh), "--json")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert differences(world["after"][batch], snapshot(wh)) == []
    tally("ingest kills at random moments re-run to the clean tables")


# -- the same kills on a deletion-vector table -------------------------------------------

#: Where a batch that replaces edge versions with deletion vectors can die: its vector,
#: data and change files written but not yet in the log, and right after its commit.
DV_POINTS = ("dv-files-written", "edges-committed")
DV_ON = {"AAG_DELETION_VECTORS": "1"}


def _vector_commits(warehouse: Path) -> int:
    """Log entries of the relationships table that add a file with a deletion vector."""
    log = warehouse / "silver" / "relationships" / "_delta_log"
    return sum(
        1
        for path in log.glob("*.json")
        if any(
            (json.loads(line).get("add") or {}).get("deletionVector")
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        )
    )


@pytest.fixture(scope="module")
def dv_world(world: dict[str, Any]) -> Path:
    """The clean run's warehouse before batch 6, then batches 6 to 9 with deletion vectors on.

    The incremental batches replace edge versions, so the last crashed batch (10) meets a
    relationships table whose files already carry vectors.
    """
    wh = copy_warehouse(world["before"][6], world["root"] / "dv-before-10")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AAG_DELETION_VECTORS", "1")
        svc = AagService(str(wh))
        assert svc.warehouse.graph.deletion_vectors
        for i in range(6, 10):
            system, obj, path = world["files"][i]
            svc.ingest(system, obj, [path])
            if i == 6:
                # Merge-on-read commits give the copy-on-write run's tables.
                assert differences(world["after"][6], snapshot(wh)) == []
    assert _vector_commits(wh) > 0, "no batch replaced edge versions: nothing was tested"
    return wh


@pytest.mark.parametrize("point", DV_POINTS)
def test_kill_in_a_deletion_vector_commit_then_rerun_converges(
    world: dict[str, Any], dv_world: Path, point: str
) -> None:
    system, obj, path = world["files"][10]
    wh = copy_warehouse(dv_world, world["root"] / f"dv-run-{point}")
    commits = _vector_commits(wh)
    crashed = aag(
        "ingest", system, obj, str(path), "--warehouse", str(wh), env={**DV_ON, "AAG_CRASH_AT": point}
    )
    crashed.communicate(timeout=300)
    assert crashed.returncode == -signal.SIGKILL, f"{point} was never reached"
    # Killed before its log entry, the batch left no commit (only orphan files).
    assert _vector_commits(wh) == commits + (point == "edges-committed")
    rerun = aag("ingest", system, obj, str(path), "--warehouse", str(wh), "--json", env=DV_ON)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert json.loads(out)[0]["status"] == "committed"
    assert _vector_commits(wh) > commits
    assert differences(world["after"][10], snapshot(wh)) == []
    tally("deletion-vector ingest kill points re-run to the clean tables")


# -- aag build ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_then_changed(tmp_path_factory) -> dict[str, Any]:
    """A warehouse built once, then changed by more batches; and its clean incremental build."""
    root = tmp_path_factory.mktemp("crash-build")
    files = generate(root / "in", 40, formats="jsonl").files
    wh = root / "base"
    svc = AagService(str(wh))
    svc.init()
    for system, obj, path in files[:FILES]:
        svc.ingest(system, obj, [path])
    svc.build()
    for system, obj, path in files[FILES:]:
        svc.ingest(system, obj, [path])
    clean = copy_warehouse_with_links(wh, root / "clean")
    report = AagService(str(clean)).build()
    assert report.mode == "incremental"
    built = AagService(str(clean)).warehouse
    exports = {m: pq.read_table(gold.gold_file(built, m)) for m in gold.GOLD_MODELS}
    return {"root": root, "base": wh, "exports": exports}


def copy_warehouse_with_links(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.mark.parametrize("point", BUILD_POINTS)
def test_kill_inside_aag_build_then_rerun_gives_the_clean_build(built_then_changed, point):
    run = built_then_changed
    wh = copy_warehouse_with_links(run["base"], run["root"] / f"build-{point}")
    before = gold.manifest(AagService(str(wh)).warehouse)
    crashed = aag("build", "--warehouse", str(wh), env={"AAG_CRASH_AT": point})
    crashed.communicate(timeout=600)
    assert crashed.returncode == -signal.SIGKILL, f"{point} was never reached"
    # Nothing was published: the previous manifest and exports are still the ones in place.
    svc = AagService(str(wh))
    assert gold.manifest(svc.warehouse) == before
    assert all(gold.gold_file(svc.warehouse, m).exists() for m in gold.GOLD_MODELS)
    rerun = aag("build", "--warehouse", str(wh), "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert json.loads(out)["mode"] == "incremental"
    for model in gold.GOLD_MODELS:
        assert pq.read_table(gold.gold_file(svc.warehouse, model)).equals(run["exports"][model]), model
    tally("aag build kill points re-run to the clean build")
