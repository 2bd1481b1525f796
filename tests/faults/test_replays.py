"""Replays: the same rows in another format, split differently, or in another order add nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag.service import AagService
from aag.world import generate

from .tables import as_csv, differences, snapshot, tally


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _as_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    cols = sorted({k for r in rows for k in r})
    table = pa.table(
        {c: pa.array([None if r.get(c) is None else str(r[c]) for r in rows], pa.string()) for c in cols}
    )
    pq.write_table(table, path)
    return path


def _graph(wh: Path) -> dict[str, Any]:
    return {k: v for k, v in snapshot(wh, any_order=True).items() if k.startswith("silver/")}


def test_the_same_rows_as_csv_parquet_or_split_differently_add_nothing(tmp_path):
    files = [
        f
        for f in generate(tmp_path / "in", 50, formats="jsonl", malformed=False).files
        if f[0] in ("salesforce", "shopify", "zendesk")
    ][:6]
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    for system, obj, path in files:
        svc.ingest(system, obj, [path])
    before = _graph(tmp_path / "wh")
    for n, (system, obj, path) in enumerate(files):
        rows = _rows(path)
        half = len(rows) // 2
        replays = [
            as_csv(rows, tmp_path / f"r{n}.csv"),
            _as_parquet(rows[::-1], tmp_path / f"r{n}.parquet"),
            as_csv(rows[:half], tmp_path / f"r{n}-a.csv"),
            _as_parquet(rows[half:], tmp_path / f"r{n}-b.parquet"),
        ]
        for report in svc.ingest(system, obj, replays):
            assert report.status == "committed" and report.edge_versions_written == 0, report
            assert report.rows_quarantined == 0
    assert differences(before, _graph(tmp_path / "wh")) == []


@pytest.fixture(scope="module")
def world8(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("order")
    files = [f for f in generate(root / "in", 40, formats="jsonl").files if f[0] != "sap"][:8]
    svc = AagService(str(root / "ref"))
    svc.init()
    for system, obj, path in files:
        svc.ingest(system, obj, [path])
    profiles = sorted(map(str, svc.customer_profiles(2).to_pylist()))
    return {"files": files, "graph": _graph(root / "ref"), "profiles": profiles}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(8)))
def test_any_order_of_batches_converges(world8, tmp_path_factory, order):
    shuffled = tmp_path_factory.mktemp("shuffled")
    other = AagService(str(shuffled / "wh"))
    other.init()
    for i in order:
        system, obj, path = world8["files"][i]
        other.ingest(system, obj, [path])
    assert differences(world8["graph"], _graph(shuffled / "wh")) == []
    assert world8["profiles"] == sorted(map(str, other.customer_profiles(2).to_pylist()))
    tally("batch orders (permutations of 8 files) converging to the same graph and profiles")
