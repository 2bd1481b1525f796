"""Five-source benchmark: ingest throughput and resolution accuracy on the generated world.

Generates :mod:`aag.world` (Salesforce Contact, SAP KNA1 + ADR6, Shopify customers,
Zendesk users, Segment identifies; an initial export plus six incremental rounds),
ingests every file in order into a fresh warehouse in a fresh subprocess, and
reports

* field events/s over the whole run and per source object (generation excluded),
* the identity work (customers, records, SAME_AS links),
* accuracy: AAG's field-level profiles vs a "latest record wins" view of the same
  files on the same customer clusters, against the generator's known truth,
* peak RSS of the ingest process.

The figures go into ``benchmarks/RESULTS.md`` (the section for the same size is
replaced).

Usage::

    .venv/bin/python benchmarks/bench_world.py                  # 20,000 people (~1.5M events)
    .venv/bin/python benchmarks/bench_world.py --people 1000 --no-write
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import write_section  # noqa: E402


def worker(people: int, data: Path, out: Path) -> None:
    """Generate, ingest and score in this process; write raw figures as JSON."""
    from aag.demo import run_world
    from aag.pipeline import BatchReport
    from aag.service import AagService

    warehouse = Path(tempfile.mkdtemp(prefix="aag-bench-world-")) / "wh"
    svc = AagService(str(warehouse))
    svc.init()
    per_object: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    per_phase: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    timings: list[float] = []
    reports: list[BatchReport] = []
    original_ingest = svc.ingest

    def timed_ingest(
        source_system: str, source_object: str, files: Sequence[Path], *args: Any, **kw: Any
    ) -> list[BatchReport]:
        started = time.perf_counter()
        result = original_ingest(source_system, source_object, files, *args, **kw)
        seconds = time.perf_counter() - started
        timings.append(seconds)
        key = f"{source_system}.{source_object}"
        phase = "initial" if Path(files[0]).parent.name == "round1" else "incremental"
        per_phase[phase][0] += sum(r.field_events for r in result)
        per_phase[phase][1] += seconds
        per_phase[phase][2] += 1
        for report in result:
            per_object[key][0] += report.field_events
            per_object[key][1] += seconds
            per_object[key][2] += report.rows_landed
            reports.append(report)
        return result

    svc.ingest = timed_ingest  # type: ignore[method-assign]
    started = time.perf_counter()
    score, world = run_world(svc, data, people)
    total = time.perf_counter() - started
    ingest_seconds = sum(timings)
    ident = svc.identity_map()
    customers = len(set(ident.column("customer_id").to_pylist()))
    figures = {
        "people": people,
        "files": len(world.files),
        "rows": sum(r.rows_landed for r in reports),
        "rows_quarantined": sum(r.rows_quarantined for r in reports),
        "malformed_rows": world.malformed_rows,
        "deleted_records": world.deleted_records,
        "files_by_format": score.files_by_format,
        "field_events": sum(r.field_events for r in reports),
        "edge_versions": sum(r.edge_versions_written for r in reports),
        "ingest_seconds": ingest_seconds,
        "total_seconds": total,
        "per_object": {k: {"events": v[0], "seconds": v[1], "rows": v[2]} for k, v in per_object.items()},
        "per_phase": {k: {"events": v[0], "seconds": v[1], "files": v[2]} for k, v in per_phase.items()},
        "records": ident.num_rows,
        "customers": customers,
        "people_in_one_customer": score.people_in_one_customer,
        "cells": score.cells,
        "field_level": score.field_level,
        "record_level": score.record_level,
        "per_attribute": score.per_attribute,
        "per_group": score.per_group,
        "wrong_merges": len(world.wrong_merges),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }
    out.write_text(json.dumps(figures))


def markdown(f: dict[str, Any], commit: str) -> str:
    """The RESULTS.md section."""
    key = f"people={f['people']}"
    lines = [
        f"<!-- bench_world {key} -->",
        f"## Five-source world, {f['people']:,} people ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, 2 cores. Code: commit {commit}. `benchmarks/bench_world.py`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| files ingested (initial export + 6 incremental rounds) | {f['files']} |",
        "| files by format | "
        + ", ".join(f"{n} {fmt}" for fmt, n in sorted(f["files_by_format"].items()))
        + " |",
        f"| rows landed / quarantined | {f['rows']:,} / {f['rows_quarantined']:,} "
        f"({f['malformed_rows']} malformed rows generated) |",
        f"| records deleted in their source (IsDeleted, LOEVM) | {f['deleted_records']:,} |",
        f"| field events | {f['field_events']:,} |",
        f"| edge versions written | {f['edge_versions']:,} |",
        f"| ingest seconds (all files) | {f['ingest_seconds']:.1f} |",
        f"| **field events/s** | **{f['field_events'] / f['ingest_seconds']:,.0f}** |",
        *(
            f"| {name} ({o['files']:.0f} files): field events/s | {o['events'] / o['seconds']:,.0f} "
            f"({o['events']:,.0f} events in {o['seconds']:.1f} s) |"
            for name, o in f["per_phase"].items()
        ),
        f"| source records → customers | {f['records']:,} → {f['customers']:,} |",
        f"| people resolved to exactly one customer | {f['people_in_one_customer']:,} of {f['people']:,} |",
        f"| **accuracy, AAG field-level** | **{f['field_level']:.2%}** of {f['cells']:,} cells |",
        f"| accuracy, latest record wins | {f['record_level']:.2%} |",
        f"| peak RSS | {f['peak_rss_gb']:.2f} GB |",
        "",
        "| source object | rows | field events | seconds | events/s |",
        "|---|---|---|---|---|",
    ]
    for name, o in sorted(f["per_object"].items()):
        rate = o["events"] / o["seconds"] if o["seconds"] else 0
        lines.append(f"| {name} | {o['rows']:,.0f} | {o['events']:,.0f} | {o['seconds']:.1f} | {rate:,.0f} |")
    lines += ["", "| attribute | cells | AAG field-level | latest record wins |", "|---|---|---|---|"]
    for attr, (n, ok_field, ok_record) in f["per_attribute"].items():
        if n:
            lines.append(f"| {attr} | {n:,} | {ok_field / n:.2%} | {ok_record / n:.2%} |")
    for group, (people, n, ok_field, ok_record) in f.get("per_group", {}).items():
        if n:
            lines.append(
                f"| people who {group} ({people:,}) | {n:,} | {ok_field / n:.2%} | {ok_record / n:.2%} |"
            )
    if "wrong_merges" in f:
        lines.append(
            f"\nWrong merges (shared family mailboxes) split by `aag identity unlink`: {f['wrong_merges']}."
        )
    lines.append(f"<!-- /bench_world {key} -->")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark in a fresh subprocess and report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.people, args.data, args.out)
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="aag-world-") as tmp:
        out = Path(tmp) / "figures.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "--people",
                str(args.people),
                "--data",
                f"{tmp}/in",
                "--out",
                str(out),
            ],
            check=True,
        )
        figures = json.loads(out.read_text())
    section = markdown(figures, commit)
    print(section)
    if not args.no_write:
        write_section(args.results, "bench_world", section, f"people={args.people}")


if __name__ == "__main__":
    main()
