"""`aag monitor`: freshness, conflicts, completeness, quarantine — and the same SQL on Spark."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aag.service import AagService
from aag.service.monitoring import databricks_sql

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def svc(tmp_path_factory) -> AagService:
    folder = tmp_path_factory.mktemp("monitor")
    service = AagService(str(folder / "wh"))
    service.init()
    sf: list[dict[str, str | None]] = [
        {
            "Id": "0035g00000MonitAAA",
            "Email": "ana@x.example",
            "Phone": "+49 30 1111111",
            "LastModifiedDate": "2026-01-01T00:00:00Z",
        },
        {"Id": "0035g00000MonitBAA", "Email": "bo@x.example", "LastModifiedDate": "2026-01-02T00:00:00Z"},
        {"Id": None, "Email": "lost@x.example", "LastModifiedDate": "2026-01-02T00:00:00Z"},
    ]
    shop = [
        {"id": 1, "email": "ana@x.example", "phone": "+49 30 2222222", "updated_at": "2026-02-01T00:00:00Z"},
        {"id": 2, "email": "cy@x.example", "phone": "call me", "updated_at": "2026-02-03T00:00:00Z"},
    ]
    service.ingest("salesforce", "Contact", [_write(folder / "sf.jsonl", sf)])
    service.ingest("shopify", "customers", [_write(folder / "shop.jsonl", shop)])
    return service


def test_monitor_reports_freshness_conflicts_completeness_and_quarantine(svc):
    report = svc.monitor()
    fresh = {r["source_system"]: r for r in report.freshness.to_pylist()}
    assert set(fresh) == {"salesforce", "shopify"}
    assert fresh["shopify"]["latest_event_at"].isoformat() == "2026-02-03T00:00:00+00:00"
    assert fresh["salesforce"]["rows_landed"] == 3 and fresh["salesforce"]["batches"] == 1
    assert fresh["shopify"]["event_lag_seconds"] > 0 and fresh["shopify"]["landing_lag_seconds"] >= 0
    # Ana is one customer in both systems with two different phones: one open conflict.
    assert report.conflicts.to_pylist() == [
        {"attribute": "phone", "source_a": "salesforce", "source_b": "shopify", "customers": 1}
    ]
    share = {(r["attribute"], r["source_system"]): r for r in report.completeness.to_pylist()}
    # Three customers: Ana (SF + shop), Bo (SF), Cy (shop; phone quarantined).
    assert share[("email", "any")]["customers"] == 3 and share[("email", "any")]["share"] == 1.0
    assert share[("phone", "any")]["customers"] == 1
    assert share[("email", "shopify")]["of_customers"] == 3
    quarantine = {(r["source_system"], r["level"]): r["entries"] for r in report.quarantine.to_pylist()}
    assert quarantine == {("salesforce", "row"): 1, ("shopify", "field"): 1}


def test_cli_monitor_json(svc):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "aag.cli", "monitor", "--warehouse", svc.warehouse.uri, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"checked_at", "freshness", "conflicts", "completeness", "quarantine"} <= set(data)
    assert data["conflicts"][0]["attribute"] == "phone"


def test_cli_monitor_tables_are_readable_at_80_columns(svc):
    """Piped, as in a cron mail: every header whole, every line within 80 columns."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "aag.cli", "monitor", "--warehouse", svc.warehouse.uri],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    assert "…" not in done.stdout, done.stdout
    headers = [line for line in lines if line.startswith("┃")]
    assert [h.replace("┃", " ").split() for h in headers[:1]] == [
        ["source", "last", "event", "last", "landing", "batches", "rows", "landed"]
    ], done.stdout
    # Each source on one row: its times and their lags in full.
    row = next(i for i, line in enumerate(lines) if line.startswith("│ salesforce "))
    assert "2026-01-02 00:00" in lines[row] and " ago " in lines[row + 1], done.stdout


def test_databricks_files_are_the_generated_sql():
    for name, sql in databricks_sql().items():
        text = (ROOT / "databricks" / "monitoring" / f"{name}.sql").read_text(encoding="utf-8")
        assert text.endswith(sql), (
            f"databricks/monitoring/{name}.sql is stale: run python -m aag.service.monitoring"
        )


@pytest.mark.spark
def test_databricks_sql_runs_on_spark_with_the_same_results(svc, spark_engine, tmp_path):
    spark = spark_engine.spark
    wh = svc.warehouse
    tables = {
        "graph.relationships": wh.graph.relationships(),
        "graph.nodes": wh.graph.nodes(),
        "graph.batches": wh.batches(),
        "bronze.quarantine": wh.quarantine(),
        "config.attribute_name_registry": pa.Table.from_pylist([r.model_dump() for r in wh.config.registry]),
    }
    for name, table in tables.items():
        schema, _ = name.split(".")
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
        spark.sql(f"DROP TABLE IF EXISTS {name}")
        frame = spark.createDataFrame(
            table.drop_columns([c for c in table.column_names if c == "properties"])
        )
        # External tables under tmp_path: nothing is left in the working directory.
        frame.write.option("path", str(tmp_path / name)).saveAsTable(name)
    report = svc.monitor()
    for check, sql in databricks_sql().items():
        rows = spark.sql(sql.rstrip().rstrip(";"), args={"catalog": "spark_catalog"}).toArrow().to_pylist()
        expected = getattr(report, check).to_pylist()
        strip = {"event_lag_seconds", "landing_lag_seconds"}
        assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
            {k: v for k, v in r.items() if k not in strip} for r in expected
        ], check


def test_dbt_analyses_are_the_generated_sql():
    from aag.service.monitoring import dbt_analyses

    for name, text in dbt_analyses().items():
        path = ROOT / "dbt" / "analyses" / f"monitoring_{name}.sql"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m aag.service.monitoring"
        )


def test_dbt_analyses_give_the_monitor_report(svc, tmp_path):
    """``dbt show`` of each monitoring analysis on the local target: aag monitor's rows."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AAG_WAREHOUSE": svc.warehouse.uri,
        "AAG_GOLD_DATABASE": str(tmp_path / "monitor.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    common = ["--project-dir", str(ROOT / "dbt"), "--profiles-dir", str(ROOT / "dbt"), "--target", "local"]
    common += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]

    def run(*args: str) -> str:
        done = subprocess.run([*dbt, *args, *common], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    run("seed", "-q")
    report = svc.monitor()

    def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # dbt prints JSON: compare on JSON values, times as instants.
        same_rows: list[dict[str, Any]] = json.loads(json.dumps(rows, default=lambda v: v.isoformat()))
        return same_rows

    for name in ("freshness", "conflicts", "completeness", "quarantine"):
        shown = json.loads(
            run("show", "--select", f"monitoring_{name}", "--output", "json", "--limit", "-1", "-q")
        )
        expected = same(getattr(report, name).to_pylist())
        got = shown["show"]
        if name == "freshness":
            # The lags depend on when each ran; the rest must agree.
            lags = {"event_lag_seconds", "landing_lag_seconds"}
            got = [{k: v for k, v in r.items() if k not in lags} for r in got]
            expected = [{k: v for k, v in r.items() if k not in lags} for r in expected]
        assert got == expected, name
        assert got, f"{name}: the fixture should give rows"
