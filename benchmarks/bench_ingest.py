"""Core ingest benchmark: initial load, 1% changed batch, no-change full re-syncs.

For each size N (contacts; ~10 field events per contact: 9 mapped attributes +
1 identity event) this

1. generates the Salesforce Contact files (``gen_salesforce.py``) unless cached;
2. runs the *floor* in a fresh subprocess: one plain DuckDB pass over the same
   initial JSONL (read_json → unpivot the 10 event columns → sha256 of the
   value → Parquet), i.e. the least work any ingest has to do;
3. runs the product in another fresh subprocess (so peak RSS is per size):
   a new warehouse, ``AagService.init()``, then ``svc.ingest`` of the initial
   file, the 1% batch and three no-change full re-syncs, one batch each: the
   initial rows again, byte-identical (same record times) in reverse order; then
   every contact's current values with *later* record times (``LastModifiedDate``),
   as a CRM re-sends them, once as CSV and once as JSON Lines (later again, so
   that neither repeats the other's events); last a second 1% batch of other
   contacts, the hourly sync's next run: by then the first one's commit has left
   deletion vectors on the edge files it touched (nearly all of them);
4. runs the same batches through the command line (``--via``; default both):
   ``aag init`` and one ``aag ingest salesforce Contact FILE --json`` process per
   batch on a fresh warehouse, timing each process from start to exit and taking its
   peak RSS from ``/usr/bin/time`` (else ``os.wait4``); the versions each batch wrote
   must equal the in-process run's. The floor is also timed as a process of its own,
   to stand next to the CLI.

Two data shapes (``--shape``; default both): ``unique``, today's generator, and
``shared``, where last names come from 5,000 values, cities from 500 and streets from
300 (see ``gen_salesforce.py``); each has its own cached files.

Besides the ``BatchReport`` figures it times the pipeline's phases by wrapping
functions of ``aag`` at run time (nothing in ``src`` is changed) and records
each batch's peak RSS (VmHWM, reset between batches via /proc/self/clear_refs).

Results are printed as markdown and written into ``benchmarks/RESULTS.md``
(the section for the same sizes, shape and via is replaced, others are kept).

Usage::

    .venv/bin/python benchmarks/bench_ingest.py                    # 100k and 1M
    .venv/bin/python benchmarks/bench_ingest.py --sizes 20000 --no-write
    .venv/bin/python benchmarks/bench_ingest.py --sizes 100000 --shape shared --via cli

A/B against another revision (``--ab REV``): each size's ingest worker runs for
REV's ``src/aag`` and for the working tree's, alternately (``--rounds`` pairs), on
the same data, and a comparison table is printed (RESULTS.md is not touched)::

    .venv/bin/python benchmarks/bench_ingest.py --sizes 100000 --ab main --rounds 2
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_salesforce  # noqa: E402
from results import write_section  # noqa: E402

EVENT_COLUMNS = (
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "MailingStreet",
    "MailingCity",
    "MailingPostalCode",
    "MailingCountry",
    "HasOptedOutOfEmail",
)

TARGET_EVENTS_PER_S = 500_000
TARGET_CHANGED_RATIO = 0.10
TARGET_RESYNC_RATIO = 0.25
TARGET_RSS_BYTES = 3 * 1024**3
TARGET_RSS_AT_EVENTS = 10_000_000

#: The batches every ingest worker runs, in order (see the module docstring).
BATCHES = ("initial", "changed", "resync", "resync_later_csv", "resync_later_jsonl", "changed_again")
#: The re-syncs with later record times: the ones the re-sync target is about.
LATER = ("resync_later_csv", "resync_later_jsonl")
#: How much later than the 1% batch the two later re-syncs are stamped.
LATER_DAYS = {"resync_later_csv": 30, "resync_later_jsonl": 60}
#: How much later than the 1% batch the second 1% batch is stamped (after the re-syncs).
AGAIN_DAYS = 90


# -- memory -----------------------------------------------------------------------------
def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    """Peak RSS in bytes since the last reset (VmHWM), else the process's ru_maxrss."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    """Current RSS in bytes (VmRSS)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- phase timing ------------------------------------------------------------------------
#: Seconds per call path ("top / child / grandchild"); a wrapped call made inside another
#: wrapped call is recorded under it, so every phase's children add up to at most its time.
PHASES: dict[str, float] = defaultdict(float)
#: Peak RSS (bytes) seen while each top-level phase ran (sampled every 20 ms; phases that
#: the product runs in parallel threads share the samples of their overlap).
PHASE_PEAK: dict[str, int] = defaultdict(int)
#: Child labels seen under each path, in first-seen order.
CHILDREN: dict[str, list[str]] = defaultdict(list)
#: Hooks that do not exist in the measured version of ``aag`` (skipped, reported).
MISSING_HOOKS: list[str] = []
#: Call stack per thread: the product may run phases in parallel threads.
_LOCAL = threading.local()
#: Top-level phases running right now (any thread), for the RSS sampler.
_ACTIVE: dict[str, int] = defaultdict(int)
_ACTIVE_LOCK = threading.Lock()


def _stack() -> list[str]:
    stack: list[str] | None = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    return stack


def _sampler(stop: threading.Event) -> None:
    """Attribute the current RSS to every running top-level phase, every 20 ms."""
    while not stop.wait(0.02):
        rss = _current_rss()
        with _ACTIVE_LOCK:
            for label, running in _ACTIVE.items():
                if running and rss > PHASE_PEAK[label]:
                    PHASE_PEAK[label] = rss


#: Top-level phases in pipeline order (others seen at run time are shown after them).
PHASE_ORDER = [
    "ledger check",
    "file sha256",
    "read rows (DuckDB JSON)",
    "extract (SQL normalise → events, nodes)",
    "plan (store reads, edge rules, new nodes)",
    "land bronze (Delta replace_where)",
    "write quarantine",
    "commit graph",
    "ledger append",
]


def _timed(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    stack = _stack()
    path = " / ".join([*stack, label])
    parent = " / ".join(stack)
    top = not stack
    with _ACTIVE_LOCK:
        if label not in CHILDREN[parent]:
            CHILDREN[parent].append(label)
        if top:
            _ACTIVE[label] += 1
            PHASE_PEAK[label] = max(PHASE_PEAK[label], _current_rss())
    stack.append(label)
    started = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        took = time.perf_counter() - started
        stack.pop()
        with _ACTIVE_LOCK:
            PHASES[path] += took
            if top:
                _ACTIVE[label] -= 1
        if top:
            _progress(f"{label}: {took:.1f}s, RSS peak (sampled) {PHASE_PEAK[label] / 1024**3:.2f} GB")


def _wrap(owner: Any, name: str, label: str) -> None:
    fn: Callable[..., Any] | None = getattr(owner, name, None)
    if fn is None:
        MISSING_HOOKS.append(f"{getattr(owner, '__name__', owner)}.{name}")
        return

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        return _timed(label, fn, *args, **kwargs)

    setattr(owner, name, timed)


PROGRESS: list[Path] = []


def _progress(message: str) -> None:
    """One line to stderr and to the progress file (read back if the worker dies)."""
    line = f"    {time.strftime('%H:%M:%S')} {message}"
    print(line, file=sys.stderr, flush=True)
    if PROGRESS:
        with PROGRESS[0].open("a") as handle:
            handle.write(line + "\n")


def _instrument() -> None:
    """Time the pipeline's phases by wrapping ``aag`` functions (``src`` is not edited).

    Hooks cover several versions of the pipeline; the ones a version lacks are skipped.
    """
    import aag.pipeline as pipeline
    import aag.sources.base as sources_base
    from aag.engine.duckdb import DuckDBEngine

    # The graph store's modules: the aag.graph package, or flat modules in older versions.
    try:
        from aag.graph import delta, store, warehouse
    except ImportError:
        import aag.delta as delta  # type: ignore[import-untyped, no-redef]
        import aag.store as store  # type: ignore[import-untyped, no-redef]
        import aag.warehouse as warehouse  # type: ignore[import-untyped, no-redef]
    DeltaIO = delta.DeltaIO
    DeltaGraphStore = store.DeltaGraphStore
    Warehouse = warehouse.Warehouse

    # Where a batch looks these up: the pipeline's modules once it became a package.
    batch = getattr(pipeline, "batch", pipeline)
    planning = getattr(pipeline, "planning", pipeline)
    # Since the one batch orchestrator, a batch plans through pipeline.run.
    run = getattr(pipeline, "run", batch)

    # top level
    _wrap(Warehouse, "committed_batches", "ledger check")
    _wrap(batch, "file_sha256", "file sha256")
    _wrap(pipeline, "read_rows", "read rows (DuckDB JSON)")
    _wrap(sources_base.Extractor, "extract", "extract (SQL normalise → events, nodes)")
    _wrap(run, "plan_change", "plan (store reads, edge rules, new nodes)")
    _wrap(Warehouse, "land", "land bronze (Delta replace_where)")
    _wrap(Warehouse, "write_quarantine", "write quarantine")
    _wrap(DeltaGraphStore, "commit", "commit graph")
    _wrap(Warehouse, "record_batch", "ledger append")
    _wrap(Warehouse, "record_batches", "ledger append")
    # inside those
    _wrap(sources_base, "normalise_phones", "phone parsing (phonenumbers)")
    _wrap(DeltaGraphStore, "edges_for", "read existing edges (full scan + semi-join)")
    _wrap(DeltaGraphStore, "log_for", "read edge_events log (full scan + semi-join)")
    _wrap(DeltaGraphStore, "missing_nodes", "missing nodes (anti-join vs nodes)")
    _wrap(pipeline, "_dedupe_nodes", "dedupe candidate nodes")
    _wrap(planning, "apply_edge_rules", "edge rules")
    _wrap(store, "unflatten_edges", "unflatten edges")
    _wrap(DeltaIO, "replace_keys", "MERGE relationships")
    _wrap(delta, "delete_matching", "delete matching rows")
    _wrap(DuckDBEngine, "query", "queries fetched to Arrow")
    _wrap(DuckDBEngine, "register", "register")

    # DeltaIO.append serves both the graph commit and the ledger; label it by table.
    original_append = DeltaIO.append

    def append(self: Any, uri: str, *args: Any, **kwargs: Any) -> Any:
        table = uri.rstrip("/").rsplit("/", 1)[-1]
        return _timed(f"append {table}", original_append, self, uri, *args, **kwargs)

    DeltaIO.append = append  # type: ignore[method-assign]

    # Every table the engine materialises (extraction rows, store reads, each rule step).
    original_materialize = DuckDBEngine.materialize

    def materialize(self: Any, name: str, sql: str) -> None:
        _timed(f"sql {name}", original_materialize, self, name, sql)

    DuckDBEngine.materialize = materialize  # type: ignore[method-assign]


# -- workers (run in their own process) -------------------------------------------------
def worker_floor(initial: Path, out_json: Path) -> None:
    """The floor: one DuckDB pass read_json → unpivot → sha256 → Parquet."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="aag_floor_") as tmp:
        con = duckdb.connect()
        casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in EVENT_COLUMNS)
        cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        out = Path(tmp) / "events.parquet"
        lit = str(initial).replace("'", "''")
        # Id is both the record id column and the unpivoted identity event.
        sql = f"""
        COPY (
            SELECT _rid AS record_id, field, value, sha256(value) AS value_hash,
                   _modified AS updated_at
            FROM (
                UNPIVOT (SELECT CAST("Id" AS VARCHAR) AS _rid,
                                CAST(LastModifiedDate AS VARCHAR) AS _modified, {casts}
                         FROM read_json('{lit}', format='newline_delimited'))
                ON {cols} INTO NAME field VALUE value
            )
        ) TO '{out}' (FORMAT parquet)
        """
        _reset_peak()
        started = time.perf_counter()
        con.execute(sql)
        seconds = time.perf_counter() - started
        events = con.sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]
        out_json.write_text(
            json.dumps(
                {
                    "seconds": seconds,
                    "events": events,
                    "peak_rss": _peak_rss(),
                    "parquet_bytes": out.stat().st_size,
                }
            )
        )


def worker_ingest(paths: dict[str, Path], out_json: Path, keep: Path | None) -> None:
    """Fresh warehouse; ingest initial, 1% changed, no-change re-sync; one batch each."""
    import aag
    from aag.service import AagService

    _instrument()
    PROGRESS.append(out_json.with_suffix(".progress"))
    stop = threading.Event()
    threading.Thread(target=_sampler, args=(stop,), daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="aag_bench_wh_"))
    os.chdir(tmp)  # DuckDB spills in-memory databases to ./.tmp: keep that out of the repo
    try:
        started = time.perf_counter()
        svc = AagService(warehouse=str(tmp / "wh"))
        svc.init()
        init_wall = time.perf_counter() - started
        _ = svc.engine  # create the engine before timing
        results: dict[str, Any] = {
            "batches": {},
            "init_wall": init_wall,
            "baseline_rss": _current_rss(),
            "aag_file": aag.__file__,
            "missing_hooks": MISSING_HOOKS,
        }
        for name in BATCHES:
            _progress(f"[{name}] start")
            PHASES.clear()
            PHASE_PEAK.clear()
            CHILDREN.clear()
            _reset_peak()
            started = time.perf_counter()
            (report,) = svc.ingest("salesforce", "Contact", [paths[name]])
            wall = time.perf_counter() - started
            results["batches"][name] = {
                "report": report.as_dict(),
                "wall": wall,
                "peak_rss": _peak_rss(),  # VmHWM since the reset at the start of the batch
                "phases": dict(PHASES),
                "phase_peak": dict(PHASE_PEAK),
                "children": {k: list(v) for k, v in CHILDREN.items()},
            }
            _progress(f"[{name}] done")
            print(
                f"  [{name}] {report.status} {report.seconds:.1f}s "
                f"events={report.field_events} versions={report.edge_versions_written} "
                f"rewritten={report.edge_rows_rewritten} nodes={report.nodes_written} "
                f"paths={getattr(report, 'rule_paths', None)}",
                flush=True,
            )
        results["warehouse_bytes"] = sum(p.stat().st_size for p in (tmp / "wh").rglob("*") if p.is_file())
        results["peak_rss"] = max(b["peak_rss"] for b in results["batches"].values())
        out_json.write_text(json.dumps(results, default=str))
    finally:
        stop.set()
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.move(str(tmp), keep)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# -- the CLI run (one process per command, as a user runs it) ----------------------------
def aag_command() -> list[str]:
    """The ``aag`` console script next to this interpreter, else ``python -m aag``."""
    script = Path(sys.executable).parent / "aag"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aag"]


TIME = Path("/usr/bin/time")


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd``; its wall seconds from process start to exit and its own peak RSS.

    The peak RSS comes from ``/usr/bin/time -f %M`` if present (``time`` is small, so its
    child starts from nothing). Else from ``os.wait4``, which is an upper bound: exec keeps
    the memory high-water mark of the process it replaces, i.e. this process's peak for a
    vfork'ed child and its RSS at fork for a forked one (the ``preexec_fn`` forces fork).
    ``RUSAGE_CHILDREN`` would be the maximum over every child so far.
    stdout and stderr go to files, so nothing blocks.
    """
    with tempfile.TemporaryDirectory(prefix="aag_bench_run_") as tmp:
        rss_file = Path(tmp) / "rss"
        wrapped = [str(TIME), "-f", "%M", "-o", str(rss_file), *cmd] if TIME.exists() else cmd
        with (Path(tmp) / "out").open("w+b") as out, (Path(tmp) / "err").open("w+b") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                wrapped,
                stdout=out,
                stderr=err,
                env={**os.environ, **env},
                cwd=cwd,
                preexec_fn=None if TIME.exists() else lambda: None,
            )
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        peak_kb = usage.ru_maxrss
        if TIME.exists():
            # Last line: "%M"; a line before it says so if the command exited non-zero.
            lines = rss_file.read_text().split() if rss_file.exists() else []
            peak_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        return {
            "wall": wall,
            "peak_rss": peak_kb * 1024,
            "returncode": proc.returncode,
            "stdout": stdout,
            "stderr": stderr,
        }


def run_cli(paths: dict[str, Path], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """A fresh warehouse; ``aag init`` then one ``aag ingest … --json`` per batch.

    Also times the interpreter's start-up alone (``python -c pass``) and with ``aag``'s
    command-line modules imported (``python -c "import aag.cli"``), median of 3 each: what
    every command pays before it works.
    """
    aag = aag_command()
    results: dict[str, Any] = {"command": " ".join(aag), "batches": {}, "failed": None}
    tmp = Path(tempfile.mkdtemp(prefix="aag_bench_cli_"))
    wh = str(tmp / "wh")
    try:
        for label, code in (("bare", "pass"), ("import", "import aag.cli")):
            runs = sorted(
                (run_timed([sys.executable, "-c", code], env, tmp, timeout) for _ in range(3)),
                key=lambda r: float(r["wall"]),
            )
            results[f"{label}_wall"] = runs[1]["wall"]
            results[f"{label}_peak_rss"] = runs[1]["peak_rss"]
        init = run_timed([*aag, "init", "--warehouse", wh], env, tmp, timeout)
        results["init"] = {"wall": init["wall"], "peak_rss": init["peak_rss"]}
        if init["returncode"] != 0:
            results["failed"] = f"aag init: exit {init['returncode']}: {init['stderr'][-500:]}"
            return results
        for name in BATCHES:
            cmd = [*aag, "ingest", "salesforce", "Contact", str(paths[name]), "--warehouse", wh, "--json"]
            ran = run_timed(cmd, env, tmp, timeout)
            if ran["returncode"] != 0:
                results["failed"] = f"aag ingest [{name}]: exit {ran['returncode']}: {ran['stderr'][-500:]}"
                return results
            (report,) = json.loads(ran["stdout"])
            results["batches"][name] = {"wall": ran["wall"], "peak_rss": ran["peak_rss"], "report": report}
            print(
                f"  [{name}] cli {ran['wall']:.1f}s (report {report['seconds']:.1f}s) "
                f"peak RSS {_gb(ran['peak_rss'])} versions={report['edge_versions_written']}",
                flush=True,
            )
        results["warehouse_bytes"] = sum(p.stat().st_size for p in (tmp / "wh").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# -- orchestration ----------------------------------------------------------------------
def _run_worker(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str | None:
    """Run a worker; returns None on success, else what happened."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s"
    if proc.returncode == 0:
        return None
    took = time.perf_counter() - started
    if proc.returncode == -9:
        return f"killed by SIGKILL after {took:.0f}s (kernel OOM killer; see dmesg)"
    return f"exit status {proc.returncode} after {took:.0f}s"


def write_later_resyncs(n: int, folder: Path, shape: str = "unique") -> dict[str, Path]:
    """Write the re-syncs with later record times: every contact's current values.

    A contact the 1% batch changed is re-sent with its changed values (anything else
    would be a change back), every record with a ``LastModifiedDate`` some days after
    the 1% batch's; CSV and JSON Lines, each with its own later day.
    """
    import csv

    changed = set(gen_salesforce.changed_indices(n))
    paths = {
        "resync_later_csv": folder / "contacts_resync_later.csv",
        "resync_later_jsonl": folder / "contacts_resync_later.jsonl",
    }
    current = gen_salesforce._changed_fields, gen_salesforce.contact_fields
    rows = [current[0](i, shape) if i in changed else current[1](i, shape) for i in range(n)]
    for name, path in paths.items():
        base = gen_salesforce._CHANGE_EPOCH + LATER_DAYS[name] * 86400
        for i, row in enumerate(rows):
            row["LastModifiedDate"] = gen_salesforce._iso(base + (i * 13) % 86400)
        if path.suffix == ".csv":
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()})
        else:
            gen_salesforce._write(path, (gen_salesforce._line(row) for row in rows))
    return paths


def _data_for(n: int, data_dir: Path, shape: str = "unique") -> dict[str, Path]:
    # The shared shape has its own folder: the unique shape's cache stays valid.
    folder = data_dir / (f"sf_contacts_{n}" if shape == "unique" else f"sf_contacts_{shape}_{n}")
    marker = folder / ".complete"
    started = time.perf_counter()
    if marker.exists():
        paths = {
            "initial": folder / "contacts_initial.jsonl",
            "changed": folder / "contacts_changed_1pct.jsonl",
            "resync": folder / "contacts_resync_nochange.jsonl",
        }
    else:
        paths = gen_salesforce.generate(n, folder, shape)
        marker.write_text("ok")
        print(
            f"generated {n} {shape} contacts in {time.perf_counter() - started:.1f}s → {folder}", flush=True
        )
    # Written by a later version of this benchmark: a cache of an earlier one lacks them.
    later = folder / ".later_complete"
    if not later.exists():
        paths.update(write_later_resyncs(n, folder, shape))
        later.write_text("ok")
        print(f"wrote the later-time re-syncs of {n} contacts → {folder}", flush=True)
    else:
        paths["resync_later_csv"] = folder / "contacts_resync_later.csv"
        paths["resync_later_jsonl"] = folder / "contacts_resync_later.jsonl"
    paths["changed_again"] = folder / "contacts_changed_again_1pct.jsonl"
    again = folder / ".again_complete"
    if not again.exists():
        gen_salesforce.write_changed_again(n, paths["changed_again"], AGAIN_DAYS, shape)
        again.write_text("ok")
    return paths


REPO = HERE.parent


def code_version(commit: str | None = None) -> str:
    """Commit of the repo and whether src/ has uncommitted changes (what is measured)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    head = git("log", "-1", "--format=%h (%s)", *([commit] if commit else []))
    if not head:
        return "not a git checkout"
    if commit:
        return f"commit {head} (`--commit {commit}`: src/aag exported from git)"
    dirty = git("status", "--porcelain", "--", "src")
    state = f"plus uncommitted changes in src/ ({len(dirty.splitlines())} files)" if dirty else "src/ clean"
    return f"commit {head} — {state}; snapshot of src/aag taken at start of run"


def machine_info() -> dict[str, str]:
    """nproc, RAM, CPU model, Python and library versions."""
    import deltalake
    import duckdb
    import pyarrow

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": str(os.cpu_count()),
        "ram": ram,
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "deltalake": deltalake.__version__,
        "pyarrow": pyarrow.__version__,
        "os": platform.platform(),
    }


def _gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**NOT met**")


def summarise(n: int, floor: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one size."""
    b = run["batches"]
    ini, chg, res, again = (b[k]["report"] for k in ("initial", "changed", "resync", "changed_again"))
    ini_eps = ini["field_events"] / ini["seconds"] if ini["seconds"] else float("inf")
    floor_eps = floor["events"] / floor["seconds"]
    rss_ok = (
        run["peak_rss"] <= TARGET_RSS_BYTES if ini["field_events"] >= 0.9 * TARGET_RSS_AT_EVENTS else None
    )
    return {
        "n": n,
        "initial_events": ini["field_events"],
        "initial_s": ini["seconds"],
        "initial_eps": ini_eps,
        "floor_s": floor["seconds"],
        "floor_eps": floor_eps,
        "vs_floor": ini_eps / floor_eps,
        "changed_s": chg["seconds"],
        "changed_ratio": chg["seconds"] / ini["seconds"],
        "again_s": again["seconds"],
        "again_ratio": again["seconds"] / ini["seconds"],
        "again_versions": again["edge_versions_written"],
        "ok_again": again["seconds"] / ini["seconds"] <= TARGET_CHANGED_RATIO,
        "changed_events": chg["field_events"],
        "changed_versions": chg["edge_versions_written"],
        "changed_rewritten": chg["edge_rows_rewritten"],
        "changed_nodes": chg["nodes_written"],
        "resync_s": res["seconds"],
        "resync_ratio": res["seconds"] / ini["seconds"],
        "resync_versions": res["edge_versions_written"],
        "resync_rewritten": res["edge_rows_rewritten"],
        "resync_nodes": res["nodes_written"],
        "resync_status": res["status"],
        "initial_versions": ini["edge_versions_written"],
        "initial_nodes": ini["nodes_written"],
        "quarantined": ini["rows_quarantined"],
        "fields_rejected": ini["fields_rejected"],
        "peak_rss": run["peak_rss"],
        "peak_rss_by_batch": {k: v["peak_rss"] for k, v in b.items()},
        "floor_peak_rss": floor["peak_rss"],
        "baseline_rss": run["baseline_rss"],
        "warehouse_bytes": run["warehouse_bytes"],
        "ok_eps": ini_eps >= TARGET_EVENTS_PER_S,
        "ok_changed": chg["seconds"] / ini["seconds"] <= TARGET_CHANGED_RATIO,
        "later": {
            k: {
                "s": b[k]["report"]["seconds"],
                "ratio": b[k]["report"]["seconds"] / ini["seconds"],
                "versions": b[k]["report"]["edge_versions_written"],
                "rewritten": b[k]["report"]["edge_rows_rewritten"],
                "ok": b[k]["report"]["seconds"] / ini["seconds"] <= TARGET_RESYNC_RATIO
                and b[k]["report"]["edge_versions_written"] == 0,
            }
            for k in LATER
        },
        "ok_rss": rss_ok,
        "phases": {k: v["phases"] for k, v in b.items()},
        "phase_peak": {k: v["phase_peak"] for k, v in b.items()},
        "children": {k: v.get("children", {}) for k, v in b.items()},
        "rule_paths": {k: v["report"].get("rule_paths") for k, v in b.items()},
        "missing_hooks": run.get("missing_hooks", []),
        "aag_file": run.get("aag_file"),
        "walls": {k: v["wall"] for k, v in b.items()},
        "seconds": {k: v["report"]["seconds"] for k, v in b.items()},
    }


def render(
    machine: dict[str, str],
    rows: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    key: str,
    sizes_run: list[int],
    cases: list[dict[str, Any]] | None = None,
    shape: str = "unique",
    via: str = "process",
) -> str:
    """Markdown section for RESULTS.md and stdout."""
    limit = machine.get("duckdb_memory_limit")
    title = ", ".join(str(n) for n in sizes_run)
    title += f", shape {shape}, via {via}"
    if limit:
        title += f", AAG_DUCKDB_MEMORY_LIMIT={limit}"
    out = [f"<!-- bench_ingest sizes={key} -->", f"## Core ingest — sizes {title} ({machine['date']})", ""]
    out.append(
        f"Machine: {machine['nproc']} vCPU ({machine['cpu']}), {machine['ram']} RAM, "
        f"{machine['os']}; Python {machine['python']}, duckdb {machine['duckdb']}, "
        f"deltalake {machine['deltalake']}, pyarrow {machine['pyarrow']}. "
        "Local engine (DuckDB), local warehouse in a temp dir; each size in a fresh process."
    )
    out.append("")
    out.append(f"Code: {machine.get('code', 'unknown')}.")
    out.append("")
    out.append(
        "Command: `.venv/bin/python benchmarks/bench_ingest.py --sizes "
        + " ".join(str(n) for n in sizes_run)
        + (f" --duckdb-memory-limit {limit}" if limit else "")
        + (f" --commit {machine['commit']}" if machine.get("commit") else "")
        + f" --shape {shape} --via {via}`"
    )
    out.append("")
    out.append(
        "Data shapes: *unique* is today's generator (last names from 31 values, cities from 20, "
        "streets from 1,970 = 10 names × 197 numbers; e-mail and phone per contact); *shared* "
        "draws last names from 5,000 values, cities from 500 and streets from 300, the rest as "
        "in *unique*."
    )
    out.append("")
    for case in cases or []:
        out.extend(render_via(case))
    for f in failures:
        out.append(
            f"**N={f['n']:,} ({f.get('shape', 'unique')}): the ingest worker did not finish: "
            f"{f['failed']}.** "
            f"Floor for this size: {f['floor']['events']:,} events in "
            f"{f['floor']['seconds']:.1f}s. Last progress lines:"
        )
        out.append("")
        out.extend(f"    {t}" for t in f["progress_tail"])
        out.append("")
    if not rows:
        out.append(f"<!-- /bench_ingest sizes={key} -->")
        return "\n".join(out) + "\n"
    head = ["metric", *[f"N={r['n']:,} contacts, {r.get('shape', 'unique')}" for r in rows], "target"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))

    def line(label: str, fmt: Callable[[dict[str, Any]], str], target: str = "") -> None:
        out.append("| " + " | ".join([label, *[fmt(r) for r in rows], target]) + " |")

    line("initial: field events", lambda r: f"{r['initial_events']:,}")
    line("initial: seconds", lambda r: f"{r['initial_s']:.1f}")
    line("initial: field events/s", lambda r: f"{r['initial_eps']:,.0f} ({_met(r['ok_eps'])})", "≥ 500,000/s")
    line("floor (DuckDB read_json→unpivot→sha256→Parquet): s", lambda r: f"{r['floor_s']:.1f}")
    line("floor: field events/s", lambda r: f"{r['floor_eps']:,.0f}")
    line("initial events/s ÷ floor events/s", lambda r: f"{r['vs_floor']:.1%}")
    line(
        "initial: edge versions / nodes written",
        lambda r: f"{r['initial_versions']:,} / {r['initial_nodes']:,}",
    )
    line(
        "initial: rows quarantined / fields rejected",
        lambda r: f"{r['quarantined']:,} / {r['fields_rejected']:,}",
    )

    def one_pct(label: str, key: str) -> None:
        # The 1% batches' rows, against the ≤ 10% target.
        line(f"{label}: seconds", lambda r: f"{r[f'{key}_s']:.1f}")
        line(
            f"{label}: ÷ initial seconds",
            lambda r: f"{r[f'{key}_ratio']:.1%} ({_met(r[f'ok_{key}'])})",
            "≤ 10%",
        )
        line(f"{label}: edge versions written", lambda r: f"{r[f'{key}_versions']:,}")

    line("1% batch: field events", lambda r: f"{r['changed_events']:,}")
    one_pct("1% batch", "changed")
    line("1% batch: edge rows rewritten (MERGE copy)", lambda r: f"{r['changed_rewritten']:,}")
    line("1% batch: nodes written", lambda r: f"{r['changed_nodes']:,}")
    line("1% batch: edge-rule paths (keys)", lambda r: _paths(r["rule_paths"]["changed"]))
    one_pct("second 1% batch (table with deletion vectors)", "again")
    line("re-sync (no change, same record times): seconds", lambda r: f"{r['resync_s']:.1f}")
    line("re-sync: ÷ initial seconds", lambda r: f"{r['resync_ratio']:.1%}")
    line("re-sync: edge versions written", lambda r: f"{r['resync_versions']:,}", "0")
    line(
        "re-sync: edge rows rewritten / nodes written",
        lambda r: f"{r['resync_rewritten']:,} / {r['resync_nodes']:,}",
    )
    line("re-sync: edge-rule paths (keys)", lambda r: _paths(r["rule_paths"]["resync"]))
    for later, label in (("resync_later_csv", "CSV"), ("resync_later_jsonl", "JSON Lines")):
        # Typed functions, not lambdas with a ``key=later`` default: mypy cannot infer those.
        # (The loop must not rebind ``key``: the section marker below uses it.)
        def seconds(r: dict[str, Any], key: str = later) -> str:
            return f"{r['later'][key]['s']:.1f}"

        def ratio(r: dict[str, Any], key: str = later) -> str:
            return f"{r['later'][key]['ratio']:.1%} ({_met(r['later'][key]['ok'])})"

        def versions(r: dict[str, Any], key: str = later) -> str:
            return f"{r['later'][key]['versions']:,} / {r['later'][key]['rewritten']:,}"

        def paths(r: dict[str, Any], key: str = later) -> str:
            return _paths(r["rule_paths"][key])

        line(f"re-sync, later record times, {label}: seconds", seconds)
        line(f"re-sync, later record times, {label}: ÷ initial seconds", ratio, "≤ 25% and 0 versions")
        line(f"re-sync, later record times, {label}: edge versions / rows rewritten", versions, "0")
        line(f"re-sync, later record times, {label}: edge-rule paths (keys)", paths)
    line(
        "peak RSS (max over batches)",
        lambda r: f"{_gb(r['peak_rss'])} ({_met(r['ok_rss'])})",
        "≤ 3 GB at 10M events",
    )
    line(
        "peak RSS initial / 1% / re-sync / later CSV / later JSONL",
        lambda r: " / ".join(_gb(r["peak_rss_by_batch"][k]) for k in BATCHES),
    )
    line("RSS before first batch (after imports + init)", lambda r: _gb(r["baseline_rss"]))
    line("floor peak RSS", lambda r: _gb(r["floor_peak_rss"]))
    line("warehouse size on disk after all batches", lambda r: _gb(r["warehouse_bytes"]))
    out.append("")
    out.append(
        "Phase seconds (from wrapping `aag` functions at run time; ↳ rows are part of "
        "the row above them at one less indent; `sql <t>` = the engine materialising "
        "table t; rows under 0.05 s everywhere are omitted; top-level phases the product "
        "runs in parallel threads overlap, so they can add up to more than the batch). "
        "Columns: initial / 1% / re-sync / later CSV / later JSONL."
    )
    out.append("")
    head2 = ["phase", *[f"N={r['n']:,} {r.get('shape', 'unique')}" for r in rows]]
    out.append("| " + " | ".join(head2) + " |")
    out.append("|" + "---|" * len(head2))
    keys = BATCHES

    def cell(r: dict[str, Any], path: str) -> str:
        return " / ".join(f"{r['phases'][k].get(path, 0.0):.1f}" for k in keys)

    def children(path: str) -> list[str]:
        seen: list[str] = []
        for r in rows:
            for k in keys:
                for child in r["children"][k].get(path, []):
                    if child not in seen:
                        seen.append(child)
        return seen

    def emit(path: str, label: str, depth: int) -> None:
        if not any(r["phases"][k].get(path, 0.0) >= 0.05 for r in rows for k in keys):
            return
        shown = label if depth == 0 else "&nbsp;&nbsp;" * (depth - 1) + "↳ " + label
        out.append("| " + " | ".join([shown, *[cell(r, path) for r in rows]]) + " |")
        for child in children(path):
            emit(f"{path} / {child}", child, depth + 1)

    tops = [t for t in PHASE_ORDER] + [t for t in children("") if t not in PHASE_ORDER]
    for top in tops:
        emit(top, top, 0)
    cells = [" / ".join(f"{r['seconds'][k]:.1f}" for k in keys) for r in rows]
    out.append("| " + " | ".join(["**BatchReport.seconds**", *cells]) + " |")
    out.append("")
    out.append(
        "Peak RSS (GB) while each top-level phase ran (RSS sampled every 20 ms; the "
        "batch peaks above are exact, from VmHWM). Columns: initial / 1% / re-sync / later CSV / "
        "later JSONL."
    )
    out.append("")
    out.append("| " + " | ".join(head2) + " |")
    out.append("|" + "---|" * len(head2))
    for label in tops:
        if not any(r["phase_peak"][k].get(label) for r in rows for k in keys):
            continue
        cells = [" / ".join(f"{r['phase_peak'][k].get(label, 0) / 1024**3:.2f}" for k in keys) for r in rows]
        out.append("| " + " | ".join([label, *cells]) + " |")
    out.append("")
    missing = sorted({m for r in rows for m in r["missing_hooks"]})
    if missing:
        out.append(
            f"Harness hooks absent from this version of `aag` (renamed or removed; "
            f"not timed): {', '.join(missing)}."
        )
        out.append("")
    out.append(f"<!-- /bench_ingest sizes={key} -->")
    return "\n".join(out) + "\n"


def render_via(case: dict[str, Any]) -> list[str]:
    """In-process and CLI figures of one shape and size side by side, batch by batch."""
    run, cli = case.get("run"), case.get("cli")
    out = [
        f"### In-process vs CLI — N={case['n']:,} contacts, {case['shape']} values",
        "",
        "In-process: `AagService.ingest` in one worker process, wall seconds around the call "
        "(phase hooks and a 20 ms RSS sampler are active) and the batch's peak RSS (VmHWM). "
        f"CLI: `{(cli or {}).get('command', 'aag')} init` and one `… ingest salesforce Contact "
        "FILE --warehouse W --json` process per batch on a fresh warehouse, wall seconds from "
        "process start to exit and the process's peak RSS (`/usr/bin/time -f %M`). "
        "`report s` is the CLI's own `BatchReport.seconds`.",
        "",
        "| step | in-process s | ÷ initial | peak RSS | CLI s | ÷ initial | peak RSS | CLI ÷ in-process "
        "| CLI report s | edge versions in-process / CLI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pb(name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = (run or {}).get("batches", {}).get(name)
        return found

    def cb(name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = (cli or {}).get("batches", {}).get(name)
        return found

    p_ini, c_ini = pb("initial"), cb("initial")

    def cells(b: dict[str, Any] | None, ini: dict[str, Any] | None) -> list[str]:
        if b is None:
            return ["—", "—", "—"]
        share = f"{b['wall'] / ini['wall']:.1%}" if ini else "—"
        return [f"{b['wall']:.2f}", share, _gb(b["peak_rss"])]

    def ratio(p: float | None, c: float | None) -> str:
        if not p or c is None:
            return "—"
        r = c / p
        return f"**{r:.2f}**" if abs(r - 1) > 0.10 else f"{r:.2f}"

    init_p: dict[str, Any] | None = (
        {"wall": run["init_wall"], "peak_rss": 0} if run and "init_wall" in run else None
    )
    init_c: dict[str, Any] | None = (cli or {}).get("init")
    out.append(
        "| `init` (fresh warehouse) | "
        + (f"{init_p['wall']:.2f} | | |" if init_p else "— | | |")
        + (f" {init_c['wall']:.2f} | | {_gb(init_c['peak_rss'])} |" if init_c else " — | | |")
        + f" {ratio(init_p['wall'] if init_p else None, init_c['wall'] if init_c else None)} | | |"
    )
    totals = [0.0, 0.0]
    for name in BATCHES:
        p, c = pb(name), cb(name)
        totals[0] += p["wall"] if p else 0.0
        totals[1] += c["wall"] if c else 0.0
        versions = []
        for b in (p, c):
            versions.append(f"{b['report']['edge_versions_written']:,}" if b else "—")
        check = ""
        if p and c and p["report"]["edge_versions_written"] != c["report"]["edge_versions_written"]:
            check = " **differ**"
        expect_zero = name in ("resync", *LATER)
        if expect_zero and any(b and b["report"]["edge_versions_written"] for b in (p, c)):
            check += " **not 0**"
        out.append(
            "| "
            + " | ".join(
                [
                    name,
                    *cells(p, p_ini),
                    *cells(c, c_ini),
                    ratio(p["wall"] if p else None, c["wall"] if c else None),
                    f"{c['report']['seconds']:.2f}" if c else "—",
                    " / ".join(versions) + check,
                ]
            )
            + " |"
        )
    shown = [f"{t:.2f}" if ran else "—" for t, ran in zip(totals, (p_ini, c_ini), strict=True)]
    out.append(
        f"| all batches | {shown[0]} | | | {shown[1]} | | | "
        f"{ratio(totals[0] if p_ini else None, totals[1] if c_ini else None)} | | |"
    )
    floor, fp = case["floor"], case["floor_process"]
    share_p = f"{floor['seconds'] / p_ini['wall']:.1%}" if p_ini else ""
    share_c = f"{fp['wall'] / c_ini['wall']:.1%}" if c_ini else ""
    out.append(
        f"| floor: DuckDB read_json→unpivot→sha256→Parquet, initial file | {floor['seconds']:.2f} "
        f"| {share_p} | {_gb(floor['peak_rss'])} | {fp['wall']:.2f} | {share_c} | {_gb(fp['peak_rss'])} "
        f"| {ratio(floor['seconds'], fp['wall'])} | | |"
    )
    if cli and "bare_wall" in cli:
        out.append(
            f"| start-up: `python -c pass` (median of 3) | | | | {cli['bare_wall']:.2f} | | "
            f"{_gb(cli['bare_peak_rss'])} | | | |"
        )
    if cli and "import_wall" in cli:
        out.append(
            f'| start-up: `python -c "import aag.cli"` (median of 3) | | | | {cli["import_wall"]:.2f} | | '
            f"{_gb(cli['import_peak_rss'])} | | | |"
        )
    out.append("")
    out.append(
        "The floor's CLI column is the same pass as a process of its own (interpreter start, "
        "`import duckdb`, the pass, exit), measured like the CLI commands; its in-process "
        "column is the pass alone. Ratios more than 10% from 1 are in bold."
    )
    if cli and cli.get("failed"):
        out.append("")
        out.append(f"**The CLI run did not finish: {cli['failed']}**")
    out.append("")
    return out


def _paths(paths: dict[str, int] | None) -> str:
    if not paths:
        return "n/a"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(paths.items()))


def _snapshot(folder: Path, commit: str | None) -> Path:
    """Copy ``src/aag`` as of ``commit`` (default: the working tree) into ``folder``."""
    folder.mkdir(parents=True)
    if commit:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "src/aag"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder), "--strip-components=1"], input=archive, check=True)
    else:
        shutil.copytree(REPO / "src" / "aag", folder / "aag", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _pythonpath(snapshot: Path) -> str:
    return os.pathsep.join([str(snapshot), *filter(None, [os.environ.get("PYTHONPATH")])])


def run_ab(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Alternate the ingest worker between ``args.ab`` and the working tree; print ratios.

    Both sides meet the same data and, run by run, nearly the same machine state, which
    is what makes a comparison on a shared machine worth anything.
    """
    sides: dict[str, str | None] = {args.ab: args.ab, "working tree": None}
    for label, rev in sides.items():
        print(f"{label}: {code_version(rev)}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in sides}
    with tempfile.TemporaryDirectory(prefix="aag_bench_ab_") as tmp:
        snapshots = {
            label: _snapshot(Path(tmp) / f"src{i}", rev) for i, (label, rev) in enumerate(sides.items())
        }
        shape = "unique" if args.shape == "both" else args.shape
        for n in args.sizes:
            _data_for(n, args.data_dir, shape)
            common = ["--n", str(n), "--data-dir", str(args.data_dir), "--shape", shape]
            for round_ in range(args.rounds):
                for label, snapshot in snapshots.items():
                    print(f"N={n} round {round_ + 1}: {label} …", flush=True)
                    out = Path(tmp) / f"run_{n}_{round_}_{len(results[label])}_{hash(label)}.json"
                    failed = _run_worker(
                        ["--worker", "ingest", *common, "--out", str(out)],
                        args.timeout,
                        {**env, "PYTHONPATH": _pythonpath(snapshot)},
                    )
                    if failed:
                        print(f"  FAILED: {failed}", flush=True)
                        continue
                    run = json.loads(out.read_text())
                    b = run["batches"]
                    ini = b["initial"]["report"]["seconds"]
                    results[label].append(
                        {
                            "n": n,
                            "round": round_ + 1,
                            "initial": ini,
                            **{
                                k: (
                                    b[k]["report"]["seconds"],
                                    b[k]["report"]["seconds"] / ini,
                                    b[k]["report"]["edge_versions_written"],
                                    b[k]["report"].get("rule_paths"),
                                )
                                for k in BATCHES[1:]
                            },
                        }
                    )
    print()
    heads = " | ".join(f"{k} s (÷ initial, versions)" for k in BATCHES[1:])
    print(f"| code | N | round | initial s | {heads} |")
    print("|" + "---|" * (4 + len(BATCHES) - 1))
    for label, rows in results.items():
        for r in rows:
            cells = [f"{r[k][0]:.1f} ({r[k][1]:.0%}, {r[k][2]:,})" for k in BATCHES[1:]]
            print(f"| {label} | {r['n']:,} | {r['round']} | {r['initial']:.1f} | " + " | ".join(cells) + " |")
    print()
    for label, rows in results.items():
        for r in rows:
            print(f"{label} N={r['n']:,} round {r['round']} rule paths:")
            for k in BATCHES[1:]:
                print(f"  {k}: {_paths(r[k][3])}")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aag_bench_data",
        help="where generated input files are cached",
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write raw figures as JSON here")
    parser.add_argument(
        "--keep-warehouse", type=Path, help="move the last size's warehouse here instead of deleting it"
    )
    parser.add_argument(
        "--duckdb-memory-limit", help="set the product's AAG_DUCKDB_MEMORY_LIMIT (e.g. 4GB) for the run"
    )
    parser.add_argument(
        "--copy-on-write",
        action="store_true",
        help="commit replaced edge versions with delta-rs's MERGE instead of deletion vectors "
        "(AAG_DELETION_VECTORS=0)",
    )
    parser.add_argument("--commit", help="measure src/aag as of this git revision (default: working tree)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per worker process")
    parser.add_argument(
        "--ab", metavar="REV", help="A/B: alternate REV's src/aag and the working tree's; print only"
    )
    parser.add_argument("--rounds", type=int, default=1, help="A/B pairs of ingest runs per size")
    parser.add_argument(
        "--shape",
        choices=[*gen_salesforce.SHAPES, "both"],
        default="both",
        help="data shape: unique (today's values), shared (5,000 last names, 500 cities, "
        "300 streets) or both (default)",
    )
    parser.add_argument(
        "--via",
        choices=["both", "process", "cli"],
        default="both",
        help="ingest in-process (AagService), through the CLI (one `aag` process per batch) "
        "or both (default)",
    )
    # internal: worker modes
    parser.add_argument("--worker", choices=["floor", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        paths = _data_for(args.n, args.data_dir, args.shape)
        if args.worker == "floor":
            worker_floor(paths["initial"], args.out)
        else:
            worker_ingest(paths, args.out, args.keep_warehouse)
        return

    machine = machine_info()
    env: dict[str, str] = {}
    if args.duckdb_memory_limit:
        env["AAG_DUCKDB_MEMORY_LIMIT"] = args.duckdb_memory_limit
        machine["duckdb_memory_limit"] = args.duckdb_memory_limit
    if args.copy_on_write:
        env["AAG_DELETION_VECTORS"] = "0"
        machine["deletion_vectors"] = "off (AAG_DELETION_VECTORS=0)"
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    if args.ab:
        run_ab(args, env)
        return
    with tempfile.TemporaryDirectory(prefix="aag_bench_out_") as tmp:
        # Every worker imports the same snapshot of src/aag, even if the tree changes mid-run.
        snapshot = _snapshot(Path(tmp) / "src", args.commit)
        env["PYTHONPATH"] = _pythonpath(snapshot)
        machine["code"] = code_version(args.commit)
        if args.commit:
            machine["commit"] = args.commit
        shapes = list(gen_salesforce.SHAPES) if args.shape == "both" else [args.shape]
        for shape, n in [(shape, n) for shape in shapes for n in args.sizes]:
            paths = _data_for(n, args.data_dir, shape)
            common = ["--n", str(n), "--data-dir", str(args.data_dir), "--shape", shape]
            print(f"N={n} {shape}: floor …", flush=True)
            floor_json = Path(tmp) / f"floor_{shape}_{n}.json"
            floor_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "floor", *common]
            ran = run_timed([*floor_cmd, "--out", str(floor_json)], {}, Path(tmp), args.timeout)
            if ran["returncode"] != 0:
                raise SystemExit(f"floor worker for N={n} {shape} failed: {ran['stderr'][-2000:]}")
            floor = json.loads(floor_json.read_text())
            case: dict[str, Any] = {
                "shape": shape,
                "n": n,
                "floor": floor,
                "floor_process": {"wall": ran["wall"], "peak_rss": ran["peak_rss"]},
                "run": None,
                "cli": None,
            }
            cases.append(case)
            print(
                f"  floor {floor['events']} events in {floor['seconds']:.1f}s (process {ran['wall']:.1f}s)",
                flush=True,
            )
            if args.via in ("both", "process"):
                print(f"N={n} {shape}: ingest in-process …", flush=True)
                run_json = Path(tmp) / f"run_{shape}_{n}.json"
                extra = ["--keep-warehouse", str(args.keep_warehouse)] if args.keep_warehouse else []
                failed = _run_worker(
                    ["--worker", "ingest", *common, "--out", str(run_json), *extra], args.timeout, env
                )
                if failed:
                    progress = run_json.with_suffix(".progress")
                    tail = progress.read_text().splitlines()[-4:] if progress.exists() else []
                    print(f"  ingest worker FAILED: {failed}", flush=True)
                    failures.append(
                        {
                            "n": n,
                            "shape": shape,
                            "floor": floor,
                            "failed": failed,
                            "progress_tail": [t.strip() for t in tail],
                        }
                    )
                else:
                    case["run"] = json.loads(run_json.read_text())
                    rows.append({**summarise(n, floor, case["run"]), "shape": shape})
            if args.via in ("both", "cli"):
                print(f"N={n} {shape}: ingest through the CLI …", flush=True)
                case["cli"] = run_cli(paths, env, args.timeout)
                if case["cli"]["failed"]:
                    print(f"  CLI run FAILED: {case['cli']['failed']}", flush=True)
    # Shape and via are part of the key: a run of this format never replaces the sections
    # of the runs before it (which were in-process only, on the unique shape).
    key = ",".join(str(n) for n in args.sizes) + f";shape={args.shape};via={args.via}"
    if args.duckdb_memory_limit:
        key += f";AAG_DUCKDB_MEMORY_LIMIT={args.duckdb_memory_limit}"
    if args.copy_on_write:
        key += ";AAG_DELETION_VECTORS=0"
    section = render(machine, rows, failures, key, args.sizes, cases, args.shape, args.via)
    print()
    print(section)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine, "rows": rows, "failures": failures, "cases": cases},
                indent=2,
                default=str,
            )
        )
    if not args.no_write:
        write_section(args.results, "bench_ingest", section, f"sizes={key}")
        print(f"updated {args.results}")


if __name__ == "__main__":
    main()
