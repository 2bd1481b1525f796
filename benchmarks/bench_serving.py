"""Serving benchmark: profile lookup latency and sustained requests/s of ``aag serve``.

For each size (customers), in a temporary warehouse:

1. silver generated directly in the five-source shape (``bench_gold.generate``, not timed),
2. ``aag build`` in a subprocess (gold exports; timed only for information),
3. ``aag serve --port 0`` started as a subprocess (time until it answers, and its RSS with
   the gold snapshot in memory),
4. **latency**: one keep-alive HTTP client sends profile requests one after another for
   random customer ids (``GET /v1/customers/{id}?version=2``) and by source record
   (``GET /v1/sources/shopify/records/{id}``); client-side wall time per request on
   loopback, p50/p90/p99/max,
5. **throughput**: ``wrk`` (Debian package) with 2 threads and 16 connections for 20 s on
   random customer ids, requests/s and its latency percentiles under that load.

Client, load generator and server share the 2 cores, so the throughput is a floor.

Usage::

    .venv/bin/python benchmarks/bench_serving.py --customers 100000 1000000
    .venv/bin/python benchmarks/bench_serving.py --customers 10000 --no-write
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_gold import generate  # noqa: E402
from bench_ingest import code_version, machine_info  # noqa: E402
from results import write_section  # noqa: E402

WRK_SCRIPT = """
local ids = {}
for line in io.lines(os.getenv("AAG_BENCH_IDS")) do ids[#ids + 1] = line end
local key = os.getenv("AAG_BENCH_KEY")
local counter = 0
request = function()
  counter = counter + 1
  local id = ids[(counter * 7919) % #ids + 1]
  return wrk.format("GET", "/v1/customers/" .. id .. "?version=2", {["X-API-Key"] = key})
end
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def _serve(warehouse: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    env = {**os.environ, "AAG_WAREHOUSE": str(warehouse), "PYTHONPATH": str(REPO / "src")}
    started = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aag", "serve", "--port", "0", "--gold-refresh", "-1"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    while True:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
        if found:
            return proc, found.group(1), time.perf_counter() - started
        if proc.poll() is not None:
            raise SystemExit(f"aag serve failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def _wrk(url: str, key: str, ids_file: Path, seconds: int) -> dict[str, Any]:
    script = ids_file.parent / "profile.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "AAG_BENCH_IDS": str(ids_file), "AAG_BENCH_KEY": key}
    done = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    text = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", text, re.M))
    return {"requests_per_s": rate, "non_2xx": int(non2xx.group(1)) if non2xx else 0, "latency": lat}


def run_size(customers: int, tmp: Path, requests: int, wrk_seconds: int) -> dict[str, Any]:
    """Generate, build, serve and measure one size."""
    from aag.serving.keys import KEYS_FILE, add_key

    warehouse = tmp / f"wh-{customers}"
    t0 = time.perf_counter()
    counts = generate(warehouse, customers)
    generated = time.perf_counter() - t0
    env = {**os.environ, "AAG_WAREHOUSE": str(warehouse), "PYTHONPATH": str(REPO / "src")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aag", "build"], env=env, check=True, capture_output=True)
    built = time.perf_counter() - t0
    key = add_key(warehouse / "config" / KEYS_FILE, "bench", frozenset({"read"}))
    ids = pq.read_table(warehouse / "gold" / "customer_profile_v2.parquet", columns=["customer_id"])
    customer_ids = ids.column(0).to_pylist()
    identity = pq.read_table(warehouse / "gold" / "customer_identity.parquet").to_pylist()
    # Generated record ids are `<system>-<n>`; Shopify ids are free-form (Salesforce ids are checked).
    records = [r["source_record_id"] for r in identity if r["source_system"] == "shopify"]
    ids_file = tmp / f"ids-{customers}.txt"
    ids_file.write_text("\n".join(random.Random(7).sample(customer_ids, min(100_000, len(customer_ids)))))
    proc, url, ready = _serve(warehouse, tmp / f"serve-{customers}.log")
    try:
        rng = random.Random(42)
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            assert client.get(f"/v1/customers/{customer_ids[0]}").json()["served_from"] == "gold"
            for cid in rng.sample(customer_ids, 200):  # warm-up: connection, caches
                client.get(f"/v1/customers/{cid}?version=2")
            by_id = []
            for cid in (rng.choice(customer_ids) for _ in range(requests)):
                start = time.perf_counter()
                response = client.get(f"/v1/customers/{cid}?version=2")
                by_id.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
            by_record = []
            for rid in (rng.choice(records) for _ in range(requests // 2)):
                start = time.perf_counter()
                response = client.get(f"/v1/sources/shopify/records/{rid}?version=2")
                by_record.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
        rss = psutil.Process(proc.pid).memory_info().rss
        load = _wrk(url, key, ids_file, wrk_seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    shutil.rmtree(warehouse, ignore_errors=True)
    return {
        "customers": customers,
        "counts": counts,
        "generate_s": generated,
        "build_s": built,
        "ready_s": ready,
        "server_rss_gb": rss / 1024**3,
        "by_id": _percentiles(by_id),
        "by_record": _percentiles(by_record),
        "wrk": load,
        "load_average": os.getloadavg(),
    }


def markdown(runs: list[dict[str, Any]], key: str) -> str:
    """The RESULTS.md section."""
    info = machine_info()
    sizes = [f"{r['customers']:,}" for r in runs]
    lines = [
        f"<!-- bench_serving {key} -->",
        f"## Serving — profile lookups at {', '.join(sizes)} customers ({info['date']})",
        "",
        f"Machine: {info['nproc']} vCPU ({info['cpu']}), {info['ram']} RAM, {info['os']}; "
        f"Python {info['python']}. Code: {code_version()}.",
        f"Command: `.venv/bin/python benchmarks/bench_serving.py --customers "
        f"{' '.join(str(r['customers']) for r in runs)}`.",
        "",
        "Silver generated in the five-source shape (`bench_gold.generate`), gold built with "
        "`aag build`, then `aag serve` (one uvicorn process) on loopback. Latency: one keep-alive "
        "client, requests one after another, client-side wall time. Throughput: `wrk -t2 -c16 -d20s` "
        "on random customer ids; wrk, client and server share the 2 cores. Target: p99 ≤ 20 ms.",
        "",
        "| figure | " + " | ".join(f"{s} customers" for s in sizes) + " |",
        "|---|" + "---|" * len(runs),
    ]

    def row(label: str, fmt: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(r) for r in runs) + " |")

    row("silver relationships rows", lambda r: f"{r['counts'].get('relationships', 0):,}")
    row("`aag build` seconds (for information)", lambda r: f"{r['build_s']:.1f}")
    row("server ready (gold in memory), seconds", lambda r: f"{r['ready_s']:.1f}")
    row("server RSS with the snapshot", lambda r: f"{r['server_rss_gb']:.2f} GB")
    row("profile by customer id: requests", lambda r: f"{r['by_id']['n']:,}")
    row("**profile by customer id p50 / p90 / p99**", lambda r: _lat(r["by_id"]))
    row("profile by customer id max", lambda r: f"{r['by_id']['max_ms']:.1f} ms")
    row("profile by Shopify record id p50 / p90 / p99", lambda r: _lat(r["by_record"]))
    row("**sustained requests/s (wrk, 16 connections)**", lambda r: f"{r['wrk']['requests_per_s']:,.0f}")
    row(
        "wrk latency p50 / p90 / p99 under that load",
        lambda r: " / ".join(r["wrk"]["latency"].get(q, "?") for q in ("50", "90", "99")),
    )
    row("non-2xx responses under load", lambda r: str(r["wrk"]["non_2xx"]))
    row("1-min load average after the run", lambda r: f"{r['load_average'][0]:.1f}")
    met = all(r["by_id"]["p99_ms"] <= 20 for r in runs)
    lines += [
        "",
        f"Target p99 ≤ 20 ms for profile lookups: **{'met' if met else 'NOT met'}**.",
        f"<!-- /bench_serving {key} -->",
        "",
    ]
    return "\n".join(lines)


def _lat(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.2f} / {p['p90_ms']:.2f} / {p['p99_ms']:.2f} ms"


def main() -> None:
    """Measure each size and write the section."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--wrk-seconds", type=int, default=20)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for the throughput figure: apt-get install wrk")
    runs = []
    with tempfile.TemporaryDirectory(prefix="aag-serve-") as tmp:
        for n in args.customers:
            runs.append(run_size(n, Path(tmp), args.requests, args.wrk_seconds))
            r = runs[-1]
            print(
                f"{n:,} customers: p50 {r['by_id']['p50_ms']:.2f} ms, p99 {r['by_id']['p99_ms']:.2f} ms, "
                f"{r['wrk']['requests_per_s']:,.0f} req/s",
                flush=True,
            )
    key = "customers=" + ",".join(str(n) for n in args.customers)
    section = markdown(runs, key)
    print(section)
    if not args.no_write:
        write_section(args.results, "bench_serving", section, key)


if __name__ == "__main__":
    main()
