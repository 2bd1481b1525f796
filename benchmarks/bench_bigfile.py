"""One multi-GB bronze file through ``aag ingest``: peak memory, time and throughput.

Generates a Salesforce ``Contact`` JSON Lines file of about ``--size-gb`` GB (the contacts
of ``gen_salesforce.py``, each row padded with unmapped columns of a typical CRM export, a
``Description`` and a few custom fields, so that the file reaches its size with realistic
rows), then runs ``aag init`` and ``aag ingest`` on it under ``/usr/bin/time -v`` in a
fresh warehouse. The ingest reads and processes the file in chunks
(``--chunk-rows``, default the CLI's). Records peak RSS (``Maximum resident set size``
of the ``aag ingest`` process), wall seconds, rows, field events and events/s, the
machine and its load average, and writes them to ``benchmarks/RESULTS.md`` between the
``<!-- bench_bigfile -->`` markers. The file and the warehouse are deleted afterwards
(``--keep`` keeps them).

Usage::

    python benchmarks/bench_bigfile.py --size-gb 5 --dir /work/bigfile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_salesforce
from results import markers, write_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = markers("bench_bigfile")


def _padding(i: int, pad: int) -> str:
    """Unmapped columns of contact ``i``: about ``pad`` bytes of deterministic text."""
    words = ("renewal", "onsite", "visit", "quote", "follow-up", "support", "upsell", "demo", "call")
    text = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(max(1, (pad - 120) // 8)))
    return (
        f',"Description":"{text[: max(0, pad - 120)]}","LeadSource":"Web","Department":"Sales",'
        f'"Title":"Manager {i % 97}","Custom_Score__c":{i % 1000},"Region__c":"EMEA-{i % 13}"'
    )


def generate(path: Path, size_bytes: int, pad: int) -> int:
    """Write contacts until the file holds ``size_bytes``; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    rows = 0
    buf: list[str] = []
    with path.open("w", encoding="utf-8") as handle:
        while written < size_bytes:
            line = gen_salesforce._line(gen_salesforce.contact_fields(rows))
            if pad:
                line = line[:-2] + _padding(rows, pad) + "}\n"
            buf.append(line)
            written += len(line.encode("utf-8"))
            rows += 1
            if len(buf) >= 50_000:
                handle.write("".join(buf))
                buf.clear()
        handle.write("".join(buf))
    return rows


def _time_v(stderr: str, label: str) -> str:
    match = re.search(rf"^\s*{re.escape(label)}: (.+)$", stderr, re.MULTILINE)
    if not match:
        raise RuntimeError(f"/usr/bin/time -v printed no {label!r}:\n{stderr[-2000:]}")
    return match.group(1).strip()


def _wall_seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "src"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() + (" (src/ modified)" if dirty.stdout.strip() else " (src/ clean)")


def _machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({model}), {mem:.1f} GiB RAM, Linux {platform.release()}"


class Figures(TypedDict):
    """What one run measured (the RESULTS.md section is written from it)."""

    date: str
    commit: str
    machine: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    file_bytes: int
    rows: int
    pad: int
    chunk_rows: int | str
    peak_rss_kb: int
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    #: The ingest's JSON batch report.
    report: dict[str, Any]
    warehouse_bytes: int
    command: str


def run(args: argparse.Namespace) -> Figures:
    """Generate, ingest under /usr/bin/time -v, measure; returns the figures."""
    folder: Path = args.dir
    data = folder / "contacts_big.jsonl"
    wh = folder / "wh"
    if wh.exists():
        shutil.rmtree(wh)
    started = time.perf_counter()
    rows = generate(data, int(args.size_gb * 1e9), args.pad)
    gen_seconds = time.perf_counter() - started
    size = data.stat().st_size
    print(f"generated {rows:,} rows, {size / 1e9:.2f} GB in {gen_seconds:.0f}s", flush=True)
    env = {**os.environ}
    aag = [sys.executable, "-m", "aag.cli"]
    subprocess.run([*aag, "init", "--warehouse", str(wh)], check=True, env=env, capture_output=True)
    command = [*aag, "ingest", "salesforce", "Contact", str(data), "--warehouse", str(wh), "--json"]
    if args.chunk_rows:
        command += ["--chunk-rows", str(args.chunk_rows)]
    load_before = os.getloadavg()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=False
    )
    load_after = os.getloadavg()
    if proc.returncode != 0:
        raise RuntimeError(f"aag ingest failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)[0]
    figures: Figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": load_after,
        "file_bytes": size,
        "rows": rows,
        "pad": args.pad,
        "chunk_rows": args.chunk_rows or "default (500,000)",
        "peak_rss_kb": int(_time_v(proc.stderr, "Maximum resident set size (kbytes)")),
        "wall_seconds": _wall_seconds(_time_v(proc.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")),
        "user_seconds": float(_time_v(proc.stderr, "User time (seconds)")),
        "system_seconds": float(_time_v(proc.stderr, "System time (seconds)")),
        "report": report,
        "warehouse_bytes": _du(wh),
        "command": " ".join(["/usr/bin/time", "-v", "aag", *command[3:]]),
    }
    if not args.keep:
        data.unlink()
        shutil.rmtree(wh)
    return figures


def section(f: Figures) -> str:
    """The RESULTS.md section for one run."""
    report = f["report"]
    assert isinstance(report, dict)
    events = int(report["field_events"])
    wall = float(f["wall_seconds"])
    rss_gib = int(f["peak_rss_kb"]) / 1024 / 1024
    rss_gb = int(f["peak_rss_kb"]) * 1024 / 1e9
    lb, la = f["load_before"], f["load_after"]
    gb = int(f["file_bytes"]) / 1e9
    counts = " / ".join(f"{report[k]:,}" for k in ("rows_landed", "rows_processed", "rows_quarantined"))
    return f"""{START}
## One big file in bounded memory ({f["date"]})

`aag ingest` of one {gb:.2f} GB JSON Lines file (Salesforce Contact, {int(f["rows"]):,} rows) into a
fresh warehouse, read and processed in chunks (rows per chunk: {f["chunk_rows"]}; at most 256 MiB), under
`/usr/bin/time -v`. Reproduce: `python benchmarks/bench_bigfile.py` (see its docstring).

Machine: {f["machine"]}, shared with other jobs. Load average (1/5/15 min) before the run
{lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f}, after {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f}.
Code: commit {f["commit"]}.
Rows: `gen_salesforce.py` contacts plus ~{f["pad"]} bytes of unmapped columns per row
(Description and custom fields, landed in bronze, not extracted).

| measure | value |
|---|---|
| file size | {int(f["file_bytes"]):,} bytes ({int(f["file_bytes"]) / 1e9:.2f} GB) |
| rows landed / processed / quarantined | {counts} |
| field events | {events:,} |
| **peak RSS** (`aag ingest` process, `Maximum resident set size`) | **{rss_gib:.2f} GiB** ({rss_gb:.2f} GB) |
| wall time | {wall:,.0f} s |
| user + system CPU | {float(f["user_seconds"]):,.0f} s + {float(f["system_seconds"]):,.0f} s |
| field events/s (wall) | {events / wall:,.0f} |
| file MB/s (wall) | {int(f["file_bytes"]) / 1e6 / wall:,.1f} |
| edge versions written | {report["edge_versions_written"]:,} |
| warehouse size after the run | {int(f["warehouse_bytes"]) / 1e9:.2f} GB |

Command: `{f["command"]}`
{END}
"""


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=5.0, help="file size to generate (GB)")
    parser.add_argument(
        "--dir", type=Path, default=Path("/tmp/aag-bigfile"), help="where file and warehouse go"
    )
    parser.add_argument("--pad", type=int, default=600, help="bytes of unmapped columns per row")
    parser.add_argument("--chunk-rows", type=int, default=0, help="rows per chunk (default: the CLI's)")
    parser.add_argument("--keep", action="store_true", help="keep the file and the warehouse")
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    figures = run(args)
    text = section(figures)
    print(text)
    if not args.no_results:
        write_section(RESULTS, "bench_bigfile", text)


if __name__ == "__main__":
    main()
