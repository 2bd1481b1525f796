"""The ``aag`` command line (SPEC §9). Thin: parse, call :class:`AagService`, print."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aag.errors import AagError, InputError, WarehouseError
from aag.export import EXPORT_FORMATS
from aag.gold import GOLD_MODELS
from aag.pipeline import STEPS, FileProgress
from aag.service import AagService

app = typer.Typer(
    name="aag",
    help="Atomic attribute graph: field-level truth for customer data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Messages never wrap: a path or a count split over two lines breaks grep and scripts.
# Tables still fit the terminal width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Warehouse = Annotated[
    str | None,
    typer.Option("--warehouse", "-w", help="Warehouse folder or URI [env: AAG_WAREHOUSE]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _service(warehouse: str | None) -> AagService:
    svc = AagService(warehouse, engine=os.environ.get("AAG_ENGINE", "local"))
    if svc.warehouse.local:
        # A file where the warehouse folder (or one of its parents) should be: name it,
        # rather than let the first write fail with "File exists" or "Not a directory".
        folder = Path(svc.warehouse.uri)
        for path in (folder, *folder.parents):
            if path.exists():
                if path == folder and not path.is_dir():
                    raise WarehouseError(f"the warehouse {folder} is a file, not a folder")
                if not path.is_dir():
                    raise WarehouseError(f"cannot create the warehouse {folder}: {path} is a file")
                break
    return svc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _fmt(value: Any) -> str:
    """One table cell: times as ISO 8601 UTC, shares as percentages, None as blank."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _duration(seconds: Any) -> str:
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


class _Log:
    """Progress as plain lines on stderr, for when stderr is not a terminal.

    Piped or redirected (CI, cron, ``| tee``), a live bar draws nothing and stdout is
    buffered until the end: a long command would look hung. There, each step prints one
    line with the time since the command started; on a terminal the bar does the job.
    """

    def __init__(self) -> None:
        self.on = not err.is_terminal
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.on:
            sys.stderr.write(f"[{time.perf_counter() - self.started:7.1f}s] {message}\n")
            sys.stderr.flush()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False) + "\n")


@app.command()
def init(warehouse: Warehouse = None) -> None:
    """Create the bronze/silver tables, quarantine, ledger and default config."""
    svc = _service(warehouse)
    created = svc.init()
    out.print(f"warehouse ready at {svc.warehouse.uri} ({len(created)} new item(s))")


def _size(n: int) -> str:
    """Bytes as a short human figure (decimal units, like ``ls -h --si``)."""
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="Source system, e.g. salesforce")],
    obj: Annotated[str, typer.Argument(metavar="OBJECT", help="Source object, e.g. Contact")],
    files: Annotated[list[Path], typer.Argument(help="Files to land, in order")],
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            min=1,
            help="Rows per chunk: a file is read and processed in chunks of this many rows "
            "(bounded memory), still as one batch [env: AAG_CHUNK_ROWS; default 500000]",
        ),
    ] = None,
    max_row_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-row-bytes",
            min=1,
            help="Largest row accepted, in bytes: a longer row is quarantined with its start "
            "and the reason, never loaded [env: AAG_MAX_ROW_BYTES; default 16777216 (16 MiB)]",
        ),
    ] = None,
) -> None:
    """Land and process files (one batch each, in the order given)."""
    svc = _service(warehouse)
    reports = []
    log = _Log()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[position]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or log.on,
    ) as progress:
        # One bar for the file being ingested: bytes (JSON Lines) or rows (CSV, Parquet) of
        # the file, the chunk and step it is in, and the rows landed so far.
        task = progress.add_task(f"ingesting {source}.{obj}", total=None, position="")
        current: dict[str, Any] = {"path": None, "index": 0, "chunk": 0, "step": "hashing"}

        def describe() -> str:
            path: Path = current["path"]
            chunk = f"chunk {current['chunk']}, " if current["chunk"] else ""
            return f"[{current['index']}/{len(files)}] {path.name}: {chunk}{current['step']}"

        def enter(path: Path) -> None:
            if current["path"] != path:
                current.update(path=path, index=current["index"] + 1, chunk=0, step="hashing", done=0)
                progress.reset(task, total=None, position="")
                log(f"{describe()} ({_size(path.stat().st_size)})")

        def step(path: Path, name: str) -> None:
            enter(path)
            if name == STEPS[0]:
                current["chunk"] = current.get("done", 0) + 1
            current["step"] = name
            progress.update(task, description=describe())
            log(describe())

        def moved(path: Path, where: FileProgress) -> None:
            enter(path)
            if where.unit == "bytes":
                position = f"{_size(where.done)}/{_size(where.total)}"
            else:
                position = f"{where.done:,}/{where.total:,} rows"
            if where.chunk:
                current["done"] = where.chunk
                position += f" · {where.rows:,} rows landed"
                log(f"[{current['index']}/{len(files)}] {path.name}: chunk {where.chunk} done, {position}")
            progress.update(
                task,
                completed=where.done,
                total=where.total or None,
                position=position,
                description=describe(),
            )

        def done(report: Any) -> None:
            reports.append(report)
            log(
                f"[{current['index']}/{len(files)}] {Path(report.file).name}: {report.status}, "
                f"{report.rows_landed:,} rows landed, {report.rows_quarantined:,} quarantined "
                f"[{report.seconds:.1f}s]"
            )
            if not as_json:
                suppressed = (
                    f"{report.rows_suppressed} suppressed (erased records), "
                    if report.rows_suppressed
                    else ""
                )
                if report.rows_duplicate:
                    suppressed += f"{report.rows_duplicate} re-sent (first call kept), "
                out.print(
                    f"{Path(report.file).name}: {report.status} — {report.rows_landed} rows "
                    f"landed, {report.rows_quarantined} quarantined, {suppressed}"
                    f"{report.fields_rejected} field(s) rejected, {report.field_events} field "
                    f"events, {report.edge_versions_written} new edge version(s) "
                    f"[{report.seconds:.2f}s]",
                    soft_wrap=True,
                )

        svc.ingest(
            source,
            obj,
            files,
            on_file=done,
            on_step=step,
            on_progress=moved,
            chunk_rows=chunk_rows,
            max_row_bytes=max_row_bytes,
        )
    if as_json:
        _print_json([r.as_dict() for r in reports])


def _customer_id(svc: AagService, customer: str | None, source: str | None, source_id: str | None) -> str:
    if customer:
        return customer
    if source and source_id:
        return svc.find_customer(source, source_id)
    raise AagError("give --customer ID, or --source S with --source-id ID")


@app.command()
def profile(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer node id")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source system")] = None,
    source_id: Annotated[str | None, typer.Option("--source-id", help="Record id")] = None,
    version: Annotated[int, typer.Option("--version", min=1, max=3)] = 2,
    warehouse: Warehouse = None,
    as_json: AsJson = False,
) -> None:
    """One resolved customer profile (v1: values; v2: with source and field time; v3: and rule)."""
    svc = _service(warehouse)
    data = svc.profile(_customer_id(svc, customer, source, source_id), version)
    if as_json:
        _print_json(data)
        return
    _print_profile(data)


def _print_profile(data: dict[str, Any]) -> None:
    table = Table(title=f"customer {data['customer_id']}")
    table.add_column("attribute")
    table.add_column("value")
    has_lineage = any(k.endswith("_source") for k in data)
    has_rule = any(k.endswith("_rule") for k in data)
    if has_lineage:
        table.add_column("source")
        table.add_column("field changed at")
    if has_rule:
        table.add_column("rule")
    for key, value in data.items():
        if key == "customer_id" or key.endswith(("_source", "_updated_at", "_rule")):
            continue
        row = [key, "" if value is None else str(value)]
        if has_lineage:
            stamp = data.get(f"{key}_updated_at")
            row += [data.get(f"{key}_source") or "", _json_default(stamp) if stamp else ""]
        if has_rule:
            row.append(data.get(f"{key}_rule") or "")
        table.add_row(*row)
    out.print(table)


@app.command()
def explain(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer node id")] = None,
    attribute: Annotated[str, typer.Option("--attribute", help="e.g. phone")] = "phone",
    source: Annotated[str | None, typer.Option("--source")] = None,
    source_id: Annotated[str | None, typer.Option("--source-id")] = None,
    warehouse: Warehouse = None,
    as_json: AsJson = False,
) -> None:
    """Why an attribute has its value: winner, competing values, version history."""
    svc = _service(warehouse)
    result = svc.explain(_customer_id(svc, customer, source, source_id), attribute).as_dict()
    if as_json:
        _print_json(result)
        return
    _print_explanation(result)


def _print_explanation(result: dict[str, Any]) -> None:
    win = result["winner"]
    out.print(f"[bold]{result['attribute']}[/bold] of {result['customer_id']}")
    out.print(f"rule: {result['rule']}")
    if win is None and not result["losers"]:
        out.print("no current value")
        return
    if win is None:  # only sources the attribute's survivorship rule does not allow hold one
        out.print("no current value from a source allowed to supply it")
    else:
        out.print(
            f"[green]winner[/green]: {win['value']} from {win['source_system']}, field changed "
            f"at {_json_default(win['updated_at'])} (event {win['source_event_id']})"
        )
    if result.get("strategy", "latest") != "latest":
        out.print(f"decided by: {result['decided_by']}")
    for loser in result["losers"]:
        out.print(f"[red]lost[/red]: {loser['value']} from {loser['source_system']} — {loser['why_lost']}")
    for sentence in result.get("identity", []):
        out.print(f"identity: {sentence}")
    table = Table(title="history (every version per source)")
    for col in ("source", "value", "from", "to", "current"):
        table.add_column(col)
    for h in result["history"]:
        table.add_row(
            h["source_system"],
            str(h["value"]),
            _json_default(h["updated_at"]),
            _json_default(h["valid_to"]) if h["valid_to"] else "",
            "yes" if h["is_current"] else "",
        )
    out.print(table)


@app.command()
def build(
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild every gold table (default: only what changed)")
    ] = False,
) -> None:
    """(Re)build the gold tables: the dbt project on the local target, then Parquet exports."""
    svc = _service(warehouse)
    svc.warehouse.require()  # before the first progress line: a missing warehouse is the one line
    log = _Log()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[position]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or log.on,
    ) as progress:
        report = svc.build(_build_progress(progress, log), full_refresh=full_refresh)
    if as_json:
        _print_json(report.as_dict())
        return
    for warning in report.warnings:
        err.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    folder = Path(report.duckdb_file).parent
    how = (
        f"incremental: {report.affected_customers} customers re-resolved"
        if report.mode == "incremental"
        else f"full: {report.full_reason}"
    )
    out.print(
        f"gold built ({how}): {report.nodes_run} dbt nodes green (dbt {report.dbt_seconds:.1f}s, "
        f"export {report.export_seconds:.1f}s) in {folder}",
        soft_wrap=True,
    )
    for name, rows in report.models.items():
        out.print(f"  {name:<22} {rows:>10} rows  {name}.parquet", soft_wrap=True)
    out.print(f"  all of them (and silver views) in {Path(report.duckdb_file).name}", soft_wrap=True)


def _build_progress(progress: Progress, log: _Log) -> Any:
    """The ``on_node`` callback of a build: the bar (or log lines) per finished dbt node.

    dbt names the node count only once it has parsed the project: until then the bar
    says so and shows no count.
    """
    log("dbt build: parsing the project")
    task = progress.add_task("dbt build: parsing the project", total=None, position="")
    finished = [0]

    def on_node(name: str, status: str, total: int) -> None:
        finished[0] += 1
        position = f"{finished[0]}/{total}" if total else f"{finished[0]}"
        progress.update(
            task, advance=1, total=total or None, position=position, description=f"dbt build: {name} {status}"
        )
        log(f"dbt build: [{position}] {name} {status}")
        if total and finished[0] == total:
            progress.update(task, description="writing the gold Parquet files")
            log("writing the gold Parquet files")

    return on_node


@app.command()
def export(
    model: Annotated[
        str,
        typer.Argument(
            help="silver: nodes, relationships, quarantine, batches; gold (after 'aag build'): "
            + ", ".join(GOLD_MODELS)
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="/".join(EXPORT_FORMATS))] = "parquet",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output file (its folder must exist)")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite an existing file (never an ingested input file)"),
    ] = False,
    warehouse: Warehouse = None,
) -> None:
    """Write a model to a Parquet, CSV or JSON Lines file (an existing file only with --force)."""
    svc = _service(warehouse)
    target = out_path or Path(f"{model}.{fmt}")
    if target.is_dir():
        raise InputError(f"--out {target} is a folder; give a file name, e.g. {target / f'{model}.{fmt}'}")
    rows = svc.export(model, fmt, target, force=force)
    out.print(f"wrote {rows} row(s) of {model} to {target}")
    if model in GOLD_MODELS and svc.gold_is_stale():
        err.print("note: silver changed since the last 'aag build'; run it to refresh the gold tables")


@app.command()
def erase(
    customer: Annotated[str, typer.Option("--customer", help="Customer node id")],
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    requested_by: Annotated[
        str | None, typer.Option("--requested-by", help="Who asked (kept in the erasure log)")
    ] = None,
) -> None:
    """GDPR erasure of one customer (run 'aag vacuum' to delete the old files)."""
    result = _service(warehouse).erase(customer, requested_by)
    if as_json:
        _print_json(result)
        return
    out.print(f"erased {customer}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.items()))
    out.print("run 'aag vacuum' to delete superseded files that still hold the erased rows")


@app.command()
def optimize(warehouse: Warehouse = None) -> None:
    """Compact small files and cluster edges by entity (contents unchanged)."""
    result = _service(warehouse).optimize()
    removed = sum(m["files_removed"] for m in result.values())
    added = sum(m["files_added"] for m in result.values())
    out.print(
        f"optimize rewrote {removed} file(s) into {added} across {len(result)} table(s); "
        "run 'aag vacuum' to delete the old files"
    )


@app.command()
def monitor(warehouse: Warehouse = None, as_json: AsJson = False) -> None:
    """Freshness per source, open conflicts, completeness and quarantine counts."""
    report = _service(warehouse).monitor()
    if as_json:
        _print_json(report.as_dict())
        return
    out.print(f"checked at {_fmt(report.checked_at)}")
    sections = (
        (
            "freshness per source",
            ["source_system", "last_event", "last_landing", "batches", "rows_landed"],
            _freshness_rows(report.freshness.to_pylist()),
        ),
        (
            "open conflicts (customers whose current values disagree, by source pair)",
            report.conflicts.column_names,
            report.conflicts.to_pylist(),
        ),
        (
            "completeness (share of customers holding the attribute)",
            report.completeness.column_names,
            report.completeness.to_pylist(),
        ),
        ("quarantine", report.quarantine.column_names, report.quarantine.to_pylist()),
    )
    for title, names, rows in sections:
        table = Table(title=title)
        for name in names:
            table.add_column(_HEADERS.get(name, name), justify="right" if name in _NUMERIC else "left")
        for row in rows:
            table.add_row(*(_fmt(row[name]) for name in names))
        if not rows:
            table.add_row(*(["—"] + [""] * (len(names) - 1)))
        out.print(table)


# Short headers, so that every monitor table fits 80 columns (``--json`` keeps the names).
_HEADERS = {
    "source_system": "source",
    "source_object": "object",
    "last_event": "last event",
    "last_landing": "last landing",
    "rows_landed": "rows landed",
    "source_a": "source a",
    "source_b": "source b",
    "of_customers": "of",
    "latest_at": "latest",
}
_NUMERIC = {"batches", "rows_landed", "customers", "of_customers", "share", "entries"}


def _freshness_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each time with its lag below it in one cell: seven columns would not fit 80."""

    def when(at: Any, lag: Any) -> str:
        return f"{_fmt(at)}\n{_duration(lag)} ago" if at is not None else ""

    return [
        {
            **row,
            "last_event": when(row["latest_event_at"], row["event_lag_seconds"]),
            "last_landing": when(row["latest_landing_at"], row["landing_lag_seconds"]),
        }
        for row in rows
    ]


@app.command()
def vacuum(warehouse: Warehouse = None) -> None:
    """Delete data files no table version references any more (irreversible)."""
    removed = _service(warehouse).vacuum()
    out.print(f"vacuum removed {sum(removed.values())} file(s) from {len(removed)} table(s)")


@app.command()
def demo(
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    people: Annotated[
        int, typer.Option(min=0, help="Customers in the generated five-source world (0: seed case only)")
    ] = 1000,
) -> None:
    """Run the seed's case, then a generated five-source world, and score the resolution."""
    from aag.demo import DemoBatch, run_seed_case, run_world

    location = warehouse or os.environ.get("AAG_WAREHOUSE") or tempfile.mkdtemp(prefix="aag-demo-")
    log = _Log()
    svc = _service(location)
    svc.init()
    inputs = (
        Path(svc.warehouse.uri) / "demo-input"
        if svc.warehouse.local
        else Path(tempfile.mkdtemp(prefix="aag-demo-input-"))
    )

    def story(batch: DemoBatch, path: Path) -> None:
        if not as_json:
            out.print(f"[dim]{batch.story}[/dim]")
        log(f"seed case: ingesting {batch.source_system}.{batch.source_object} {path.name}")

    case = run_seed_case(svc, inputs, story)
    customer = case.customer_id
    if not as_json:
        out.print()
        _print_profile(case.profile)
        _print_explanation(case.explain_phone)
        out.print(
            f"\nA record-level CDP (latest record wins) would show phone {case.record_level['phone']!r}; "
            f"AAG shows {case.profile['phone']!r}."
        )
    world_score = None
    if people:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or log.on,
        ) as progress:
            task = progress.add_task("generating the world", total=None)
            log(f"generating the five-source world: {people:,} people")

            def on_file(system: str, obj: str, path: Path) -> None:
                progress.update(task, description=f"{path.parent.name}: ingesting {system}.{obj}")

            def on_report(report: Any) -> None:
                path = Path(report.file)
                log(
                    f"{path.parent.name}: {path.name} {report.status}, {report.rows_landed:,} rows landed, "
                    f"{report.rows_quarantined:,} quarantined [{report.seconds:.1f}s]"
                )

            world_score, _ = run_world(svc, inputs / "world", people, on_file, on_report)
            log("scored the profiles against the generator's truth")
            if svc.warehouse.local:
                progress.remove_task(task)
                svc.build(_build_progress(progress, log))
    explorer = _explorer_link(svc, customer) if svc.warehouse.local else None
    if as_json:
        _print_json(
            {
                "warehouse": svc.warehouse.uri,
                "customer_id": customer,
                "explorer": explorer,
                "profile": case.profile,
                "explain_phone": case.explain_phone,
                "record_level_would_show": case.record_level,
                "world": None if world_score is None else world_score.as_dict(),
            }
        )
        return
    if world_score is not None:
        _print_score(world_score)
    out.print(f"warehouse: {svc.warehouse.uri}", soft_wrap=True)
    out.print(
        f"try: {_program()} explain --warehouse {svc.warehouse.uri} --customer {customer} --attribute email",
        soft_wrap=True,
    )
    if explorer:
        out.print(f"\nexplore it: {explorer['command']}", soft_wrap=True)
        out.print(f"then open {explorer['url']}", soft_wrap=True)


def _program() -> str:
    """How to call aag again: ``make demo`` runs .venv/bin/aag, which is not on PATH."""
    if shutil.which("aag"):
        return "aag"
    # ``python -m aag`` sets argv[0] to the package's __main__.py, which is no command.
    return f"{sys.executable} -m aag" if sys.argv[0].endswith("__main__.py") else sys.argv[0]


def _explorer_link(svc: AagService, customer: str) -> dict[str, str]:
    """A read-only key for the explorer, the command that serves it, and the URL to open.

    The key travels in the URL's fragment, which browsers never send to a server.
    """
    from aag.serving.keys import KEYS_FILE, add_key, read_keys, revoke_key

    assert svc.warehouse.config_dir is not None
    path = svc.warehouse.config_dir / KEYS_FILE
    if path.exists() and any(k.name == "demo-explorer" for k in read_keys(path)):
        revoke_key(path, "demo-explorer")
    key = add_key(path, "demo-explorer", frozenset({"read"}))
    return {
        "command": f"{_program()} serve --warehouse {svc.warehouse.uri}",
        "url": f"http://127.0.0.1:8787/#key={key}&customer={customer}",
    }


identity_app = typer.Typer(
    help="Operator decisions on identity: keep two records apart, join them, or undo either."
)
app.add_typer(identity_app, name="identity")
Records = Annotated[
    list[str],
    typer.Option("--record", help="SOURCE:OBJECT:ID, e.g. salesforce:Contact:0035g00000AbCdE (twice)"),
]
Note = Annotated[str, typer.Option("--note", help="Why (kept with the decision, shown by explain)")]


def _decide(action: str, records: list[str], note: str, warehouse: str | None, as_json: bool) -> None:
    result = _service(warehouse).decide_identity(action, records, note)  # type: ignore[arg-type]
    if as_json:
        _print_json(result)
        return
    a, b = result["records"]
    customers = result["customers"]
    out.print(f"{action}: {a} and {b} (decided at {result['decided_at']})")
    for record in (a, b):
        out.print(f"  {record} → customer {customers[record]}")


@identity_app.command("unlink")
def identity_unlink(
    record: Records, note: Note = "", warehouse: Warehouse = None, as_json: AsJson = False
) -> None:
    """Keep two records apart: never one customer, whatever identifiers they share."""
    _decide("unlink", record, note, warehouse, as_json)


@identity_app.command("link")
def identity_link(
    record: Records, note: Note = "", warehouse: Warehouse = None, as_json: AsJson = False
) -> None:
    """Join two records into one customer although they share no identifier."""
    _decide("link", record, note, warehouse, as_json)


@identity_app.command("undo")
def identity_undo(
    record: Records, note: Note = "", warehouse: Warehouse = None, as_json: AsJson = False
) -> None:
    """Withdraw the link or unlink decision in force for two records."""
    _decide("undo", record, note, warehouse, as_json)


@identity_app.command("list")
def identity_list(warehouse: Warehouse = None) -> None:
    """The decisions in force (the full history is the decisions file itself)."""
    for sentence in _service(warehouse).identity_decisions():
        out.print(sentence)


keys_app = typer.Typer(help="API keys of the REST API (stored as hashes in the warehouse config).")
app.add_typer(keys_app, name="keys")


def _keys_file(warehouse: str | None) -> Path:
    from aag.serving.keys import KEYS_FILE

    svc = _service(warehouse)
    svc.warehouse.require()
    folder = svc.warehouse.config_dir
    if folder is None:
        raise AagError("API keys live in a local warehouse's config folder")
    return folder / KEYS_FILE


@contextmanager
def _writing_keys(path: Path) -> Iterator[None]:
    """Turn a failed write of the keys file (read-only warehouse, full disk) into one line."""
    try:
        yield
    except OSError as exc:
        raise WarehouseError(f"cannot write the API keys file {path}: {exc.strerror or exc}") from exc


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="A name for the key (shown in logs and erasure records)")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, ingest, erase, admin")] = "read",
    warehouse: Warehouse = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from aag.serving.keys import add_key, parse_scopes

    path = _keys_file(warehouse)
    with _writing_keys(path):
        key = add_key(path, name, parse_scopes(scopes))
    out.print(key)


@keys_app.command("list")
def keys_list(warehouse: Warehouse = None) -> None:
    """List key names and scopes (never the keys)."""
    from aag.serving.keys import read_keys

    path = _keys_file(warehouse)
    table = Table("name", "scopes")
    for key in read_keys(path) if path.exists() else []:
        table.add_row(key.name, " ".join(sorted(key.scopes)))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(name: str, warehouse: Warehouse = None) -> None:
    """Remove a key (the running server stops accepting it at its next request)."""
    from aag.serving.keys import revoke_key

    path = _keys_file(warehouse)
    with _writing_keys(path):
        revoke_key(path, name)
    out.print(f"revoked {name}")


@app.command()
def serve(
    warehouse: Warehouse = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port)")] = 8787,
    intake_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between intake micro-batches")
    ] = 1.0,
    gold_refresh: Annotated[
        float, typer.Option(min=-1, help="Rebuild gold after intake at most every N seconds (-1: never)")
    ] = 30.0,
) -> None:
    """REST API, Segment intake and explorer page (OpenAPI docs at /docs)."""
    import uvicorn

    from aag.serving.api import create_app
    from aag.serving.service import ServingService

    serving = ServingService(
        _service(warehouse).warehouse.uri,
        engine=os.environ.get("AAG_ENGINE", "local"),
        intake_interval=intake_interval,
        gold_refresh=None if gold_refresh < 0 else gold_refresh,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"warning: listening on {host} over plain HTTP: API keys and personal data cross the "
            "network unencrypted; put a TLS-terminating proxy in front",
            soft_wrap=True,
        )
    config = uvicorn.Config(create_app(serving), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def announce(*args: Any, **kwargs: Any) -> None:
        await original(*args, **kwargs)
        for listener in server.servers:
            for sock in listener.sockets:
                bound_host, bound_port = sock.getsockname()[:2]
                err.print(
                    f"serving {serving.warehouse.uri} on http://{bound_host}:{bound_port}/ "
                    f"(API docs: http://{bound_host}:{bound_port}/docs)",
                    soft_wrap=True,
                )

    server.startup = announce  # type: ignore[method-assign]
    server.run()


@app.command()
def mcp(warehouse: Warehouse = None) -> None:
    """MCP server on stdio: profile lookup and explain as tools for AI agents."""
    from aag.serving.mcp_server import run_stdio

    run_stdio(_service(warehouse).warehouse.uri, engine=os.environ.get("AAG_ENGINE", "local"))


def _print_score(score: Any) -> None:
    formats = ", ".join(f"{n} {fmt}" for fmt, n in sorted(score.files_by_format.items()))
    out.print(
        f"\nGenerated world: {score.people} people in Salesforce, SAP, Shopify, Zendesk and Segment; "
        f"{score.people_in_one_customer} resolved to exactly one customer.\n"
        f"Files: {formats}; {score.rows_landed:,} rows landed, {score.rows_quarantined} quarantined with "
        f"a reason ({score.malformed_rows} malformed rows were generated); "
        f"{score.deleted_records} records deleted in their source."
    )
    table = Table("attribute", "cells", "AAG (field-level)", "latest record wins")
    for attr, (n, field_ok, record_ok) in score.per_attribute.items():
        if n:
            table.add_row(attr, str(n), f"{field_ok / n:.1%}", f"{record_ok / n:.1%}")
    table.add_row(
        "[b]all[/b]", str(score.cells), f"[b]{score.field_level:.1%}[/b]", f"[b]{score.record_level:.1%}[/b]"
    )
    for group, (people, n, field_ok, record_ok) in score.per_group.items():
        if n:
            table.add_row(
                f"people who {group} ({people})", str(n), f"{field_ok / n:.1%}", f"{record_ok / n:.1%}"
            )
    out.print(table)
    if score.wrong_merges:
        out.print(
            f"{score.wrong_merges} wrong merges (a relative's shop account on a family mailbox) were split "
            "by an operator with 'aag identity unlink' after round 3; later rounds kept them apart."
        )


def main() -> None:
    """Entry point: run the app; one-line errors, non-zero exit, no tracebacks."""
    code = 0
    try:
        _run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    if "aag.engine.spark" in sys.modules:
        # os._exit skips atexit: drop the Spark engine's temporary catalog folder here.
        sys.modules["aag.engine.spark"].remove_private_folders()
    # delta-rs' native runtime can abort while the interpreter tears its threads down;
    # leaving through os._exit keeps the exit code the command earned.
    os._exit(code)


def _run() -> None:
    try:
        app(standalone_mode=False)
    except AagError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:
        # typer vendors click; its usage errors and exits are recognised by shape.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"error: {exc.format_message()}", highlight=False, soft_wrap=True)
            raise SystemExit(int(exc.exit_code)) from None
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            raise SystemExit(int(exc.exit_code)) from None
        if os.environ.get("AAG_DEBUG"):
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(set AAG_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(70) from None


if __name__ == "__main__":
    main()
