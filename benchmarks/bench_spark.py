"""Embedded engine vs local Spark on the same ~1M field events, in one run.

The input is ``gen_salesforce.py``'s Contact export (100,000 contacts x 10 field
events = 1,000,000 events) plus its 1% change batch. Each configuration runs in a
fresh subprocess on a fresh warehouse, one after the other:

* ``local``: the embedded engine (DuckDB) committing to local Delta tables (delta-rs);
* ``spark``: ``AagService(engine="spark")``: the same SQL transpiled and run by
  PySpark in ``local[2]`` mode, committing to the same kind of local Delta tables;
* ``spark-tables``: the Spark engine with the graph in Spark catalog tables
  (:class:`aag.databricks.store.SparkTableGraphStore`; Parquet here, since local Spark has
  no Delta jars, so the 1% batch uses the rebuild fallback instead of a MERGE).

It reports seconds and field events/s per configuration and the Spark/embedded
ratio, and writes them to ``benchmarks/RESULTS.md`` (own marked section).

Usage::

    .venv/bin/python benchmarks/bench_spark.py                 # 100,000 contacts
    .venv/bin/python benchmarks/bench_spark.py --contacts 10000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import markers, write_section  # noqa: E402

CONFIGS = ("local", "spark", "spark-tables")
MARK_START, MARK_END = markers("bench_spark")


def worker(config: str, initial: Path, changed: Path, out: Path) -> None:
    """Ingest the initial export and the 1% batch; write timings as JSON."""
    from aag.pipeline import ingest_file
    from aag.service import AagService

    folder = Path(tempfile.mkdtemp(prefix=f"aag-bench-spark-{config}-"))
    engine_name = "local" if config == "local" else "spark"
    svc = AagService(str(folder / "wh"), engine=engine_name)
    svc.init()
    started = time.perf_counter()
    engine = svc.engine  # start-up (Spark: JVM and session) is measured on its own
    startup = time.perf_counter() - started
    graph = None
    if config == "spark-tables":
        from aag.databricks.store import SparkTableGraphStore

        engine.execute("DROP SCHEMA IF EXISTS aag_bench CASCADE")
        graph = SparkTableGraphStore(engine, "aag_bench")
        graph.create()
    results: dict[str, Any] = {"config": config, "startup_s": startup}
    for label, path in (("initial", initial), ("changed", changed)):
        t = time.perf_counter()
        report = ingest_file(svc.warehouse, engine, "salesforce", "Contact", path, graph=graph)
        seconds = time.perf_counter() - t
        results[label] = {
            "seconds": seconds,
            "field_events": report.field_events,
            "events_per_s": report.field_events / seconds if seconds else 0.0,
            "edge_versions": report.edge_versions_written,
            "nodes": report.nodes_written,
            "paths": report.rule_paths,
        }
        print(f"{config} {label}: {report.field_events} events in {seconds:.1f}s", flush=True)
    store = graph or svc.warehouse.graph
    results["relationships_rows"] = store.relationships().num_rows
    out.write_text(json.dumps(results), encoding="utf-8")


def _machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb
    import pyspark

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    java = subprocess.run(
        ["java", "-version"], capture_output=True, text=True, check=False
    ).stderr.splitlines()
    return (
        f"{os.cpu_count()} vCPU ({cpu}), {mem:.1f} GiB RAM, {platform.platform()}; Python "
        f"{platform.python_version()}, duckdb {duckdb.__version__}, pyspark {pyspark.__version__}, "
        f"{java[0] if java else 'java ?'}; Spark master {os.environ.get('AAG_SPARK_MASTER', 'local[2]')}"
    )


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), "log", "-1", "--format=%h (%s)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"


def render(contacts: int, runs: dict[str, dict[str, Any]], load: str) -> str:
    """The RESULTS.md section."""
    local = runs.get("local", {})
    first = next(iter(runs.values()))
    per_contact = first["initial"]["field_events"] / contacts
    lines = [
        MARK_START,
        f"## Embedded vs Spark local — {contacts:,} contacts ({datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ})",
        "",
        f"Machine: {_machine()}.",
        f"Code: commit {_commit()}. Command: `.venv/bin/python benchmarks/bench_spark.py "
        f"--contacts {contacts}`. Load average at start: {load}.",
        "",
        "Each configuration ran in a fresh process on a fresh warehouse, one after the other, on the same",
        f"files (Salesforce Contact export from `gen_salesforce.py`: {per_contact:g} field events per "
        "contact,",
        "the mapped fields plus the record's identity edge; then its 1% change batch). Seconds are",
        "wall-clock per `ingest_file` call (read, extract, rules, identity, commit, ledger); engine",
        "start-up is listed separately. The machine is shared: other processes kept it busy (load",
        "average above), so absolute rates vary between runs; the ratio is the steadier figure.",
        "",
        "| configuration | start-up s | initial: events | initial: s | initial: events/s | "
        "1% batch: events | 1% batch: s | 1% batch: events/s | events/s vs embedded (initial) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "local": "embedded (DuckDB → Delta via delta-rs)",
        "spark": "Spark local[2] → Delta via delta-rs",
        "spark-tables": "Spark local[2] → Spark catalog tables (Parquet)",
    }
    for config in CONFIGS:
        r = runs.get(config)
        if not r:
            continue
        ini, chg = r["initial"], r["changed"]
        ratio = ini["events_per_s"] / local["initial"]["events_per_s"] if local else float("nan")
        lines.append(
            f"| {names[config]} | {r['startup_s']:.1f} | {ini['field_events']:,} | {ini['seconds']:.1f} | "
            f"{ini['events_per_s']:,.0f} | {chg['field_events']:,} | {chg['seconds']:.1f} | "
            f"{chg['events_per_s']:,.0f} | {ratio:.2f}x |"
        )
    if local and "spark" in runs:
        ratio = local["initial"]["events_per_s"] / runs["spark"]["initial"]["events_per_s"]
        lines += ["", f"**Ratio (initial load, events/s): embedded / Spark local = {ratio:.1f}.**"]
    lines += ["", MARK_END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Generate (or reuse) the input, run every configuration, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--timeout", type=float, default=5400.0)
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--initial", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--changed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.initial, args.changed, args.out)
        return
    import gen_salesforce

    folder = args.data_dir / f"sf_contacts_{args.contacts}"
    if not (folder / ".complete").exists():
        gen_salesforce.generate(args.contacts, folder)
        (folder / ".complete").write_text("ok")
    initial, changed = folder / "contacts_initial.jsonl", folder / "contacts_changed_1pct.jsonl"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    runs = {}
    for config in args.configs:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = Path(handle.name)
        cmd = [sys.executable, __file__, "--worker", config, "--initial", str(initial)]
        cmd += ["--changed", str(changed), "--out", str(out)]
        done = subprocess.run(cmd, timeout=args.timeout, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{config} failed")
        runs[config] = json.loads(out.read_text(encoding="utf-8"))
        out.unlink()
        r = runs[config]
        print(
            f"{config}: initial {r['initial']['events_per_s']:,.0f} events/s "
            f"({r['initial']['seconds']:.1f}s), 1% batch {r['changed']['seconds']:.1f}s",
            flush=True,
        )
    section = render(args.contacts, runs, load)
    print(section)
    if not args.no_write:
        write_section(args.results, "bench_spark", section)


if __name__ == "__main__":
    main()
