"""The commands that write the graph and gold: ``init``, ``ingest`` and ``build``, with their progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from aag.cli.common import AsJson, Log, Warehouse, err, open_service, out, print_json, size
from aag.pipeline import STEPS, BatchReport, FileProgress


def init(warehouse: Warehouse = None) -> None:
    """Create the bronze/silver tables, quarantine, ledger and default config."""
    svc = open_service(warehouse)
    created = svc.init()
    out.print(f"warehouse ready at {svc.warehouse.uri} ({len(created)} new item(s))")


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
    svc = open_service(warehouse)
    log = Log()
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
        shown = _IngestProgress(progress, log, f"ingesting {source}.{obj}", len(files), as_json)
        svc.ingest(
            source,
            obj,
            files,
            on_file=shown.done,
            on_step=shown.step,
            on_progress=shown.moved,
            chunk_rows=chunk_rows,
            max_row_bytes=max_row_bytes,
        )
    if as_json:
        print_json([r.as_dict() for r in shown.reports])


class _IngestProgress:
    """The callbacks of one ``ingest``: a bar (or log lines) and a summary line per file.

    One bar for the file being ingested: bytes (JSON Lines) or rows (CSV, Parquet) of the
    file, the chunk and step it is in, and the rows landed so far.
    """

    def __init__(self, progress: Progress, log: Log, title: str, files: int, as_json: bool) -> None:
        self.progress = progress
        self.log = log
        self.files = files
        self.as_json = as_json
        self.reports: list[BatchReport] = []
        self.task: TaskID = progress.add_task(title, total=None, position="")
        self.path: Path | None = None
        self.index = 0
        self.chunk = 0
        self.chunks_done = 0
        self.current_step = "hashing"

    def describe(self) -> str:
        """The bar's text: which file of how many, its chunk and its step."""
        assert self.path is not None
        chunk = f"chunk {self.chunk}, " if self.chunk else ""
        return f"[{self.index}/{self.files}] {self.path.name}: {chunk}{self.current_step}"

    def enter(self, path: Path) -> None:
        """Start the bar afresh when a new file begins."""
        if self.path != path:
            self.path, self.index = path, self.index + 1
            self.chunk, self.chunks_done, self.current_step = 0, 0, "hashing"
            self.progress.reset(self.task, total=None, position="")
            self.log(f"{self.describe()} ({size(path.stat().st_size)})")

    def step(self, path: Path, name: str) -> None:
        """``on_step``: the file enters a step of :data:`aag.pipeline.STEPS`."""
        self.enter(path)
        if name == STEPS[0]:
            self.chunk = self.chunks_done + 1
        self.current_step = name
        self.progress.update(self.task, description=self.describe())
        self.log(self.describe())

    def moved(self, path: Path, where: FileProgress) -> None:
        """``on_progress``: how far the file is (hashing, then each chunk)."""
        self.enter(path)
        if where.unit == "bytes":
            position = f"{size(where.done)}/{size(where.total)}"
        else:
            position = f"{where.done:,}/{where.total:,} rows"
        if where.chunk:
            self.chunks_done = where.chunk
            position += f" · {where.rows:,} rows landed"
            self.log(f"[{self.index}/{self.files}] {path.name}: chunk {where.chunk} done, {position}")
        self.progress.update(
            self.task,
            completed=where.done,
            total=where.total or None,
            position=position,
            description=self.describe(),
        )

    def done(self, report: BatchReport) -> None:
        """``on_file``: the file's batch is committed; say what it did."""
        self.reports.append(report)
        self.log(
            f"[{self.index}/{self.files}] {Path(report.file).name}: {report.status}, "
            f"{report.rows_landed:,} rows landed, {report.rows_quarantined:,} quarantined "
            f"[{report.seconds:.1f}s]"
        )
        if not self.as_json:
            suppressed = (
                f"{report.rows_suppressed} suppressed (erased records), " if report.rows_suppressed else ""
            )
            if report.rows_duplicate:
                suppressed += f"{report.rows_duplicate} re-sent (first call kept), "
            if report.rows_deferred:
                suppressed += f"{report.rows_deferred} deferred (same values, later record time), "
            out.print(
                f"{Path(report.file).name}: {report.status} — {report.rows_landed} rows "
                f"landed, {report.rows_quarantined} quarantined, {suppressed}"
                f"{report.fields_rejected} field(s) rejected, {report.field_events} field "
                f"events, {report.edge_versions_written} new edge version(s) "
                f"[{report.seconds:.2f}s]",
                soft_wrap=True,
            )


def build(
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild every gold table (default: only what changed)")
    ] = False,
) -> None:
    """(Re)build the gold tables: the dbt project on the local target, then Parquet exports."""
    svc = open_service(warehouse)
    svc.warehouse.require()  # before the first progress line: a missing warehouse is the one line
    log = Log()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[position]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or log.on,
    ) as progress:
        report = svc.build(build_progress(progress, log), full_refresh=full_refresh)
    if as_json:
        print_json(report.as_dict())
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


def build_progress(progress: Progress, log: Log) -> Any:
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
