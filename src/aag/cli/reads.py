"""The commands that read the warehouse: ``profile``, ``explain``, ``export`` and ``monitor``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aag.cli.common import (
    AsJson,
    Warehouse,
    cell,
    duration,
    err,
    json_default,
    open_service,
    out,
    print_json,
    text,
)
from aag.errors import AagError, InputError
from aag.gold import GOLD_MODELS
from aag.service import AagService
from aag.service.export import EXPORT_FORMATS


def _customer_id(svc: AagService, customer: str | None, source: str | None, source_id: str | None) -> str:
    if customer:
        return customer
    if source and source_id:
        return svc.find_customer(source, source_id)
    raise AagError("give --customer ID, or --source S with --source-id ID")


def profile(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer node id")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source system")] = None,
    source_id: Annotated[str | None, typer.Option("--source-id", help="Record id")] = None,
    version: Annotated[int, typer.Option("--version", min=1, max=3)] = 2,
    warehouse: Warehouse = None,
    as_json: AsJson = False,
) -> None:
    """One resolved customer profile (v1: values; v2: with source and field time; v3: and rule)."""
    svc = open_service(warehouse)
    data = svc.profile(_customer_id(svc, customer, source, source_id), version)
    if as_json:
        print_json(data)
        return
    print_profile(data)


def print_profile(data: dict[str, Any]) -> None:
    """A profile as a table: attribute and value, with source, field time and rule if given."""
    table = Table(title=f"customer {text(data['customer_id'])}")
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
        row = [text(key), text(value)]
        if has_lineage:
            stamp = data.get(f"{key}_updated_at")
            row += [text(data.get(f"{key}_source")), json_default(stamp) if stamp else ""]
        if has_rule:
            row.append(text(data.get(f"{key}_rule")))
        table.add_row(*row)
    out.print(table)


def explain(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer node id")] = None,
    attribute: Annotated[str, typer.Option("--attribute", help="e.g. phone")] = "phone",
    source: Annotated[str | None, typer.Option("--source")] = None,
    source_id: Annotated[str | None, typer.Option("--source-id")] = None,
    warehouse: Warehouse = None,
    as_json: AsJson = False,
) -> None:
    """Why an attribute has its value: winner, competing values, version history."""
    svc = open_service(warehouse)
    result = svc.explain(_customer_id(svc, customer, source, source_id), attribute).as_dict()
    if as_json:
        print_json(result)
        return
    print_explanation(result)


def print_explanation(result: dict[str, Any]) -> None:
    """An explanation as sentences (winner, losers, identity) and a history table."""
    win = result["winner"]
    out.print(f"[bold]{text(result['attribute'])}[/bold] of {text(result['customer_id'])}")
    out.print(f"rule: {text(result['rule'])}")
    if win is None and not result["losers"]:
        out.print("no current value")
        return
    if win is None:  # only sources the attribute's survivorship rule does not allow hold one
        out.print("no current value from a source allowed to supply it")
    else:
        out.print(
            f"[green]winner[/green]: {text(win['value'])} from {text(win['source_system'])}, field changed "
            f"at {json_default(win['updated_at'])} (event {text(win['source_event_id'])})"
        )
    if result.get("strategy", "latest") != "latest":
        out.print(f"decided by: {text(result['decided_by'])}")
    for loser in result["losers"]:
        lost = f"{text(loser['value'])} from {text(loser['source_system'])} — {text(loser['why_lost'])}"
        out.print(f"[red]lost[/red]: {lost}")
    for sentence in result.get("identity", []):
        out.print(f"identity: {text(sentence)}")
    table = Table(title="history (every version per source)")
    for col in ("source", "value", "from", "to", "current"):
        table.add_column(col)
    for h in result["history"]:
        table.add_row(
            text(h["source_system"]),
            text(h["value"]),
            json_default(h["updated_at"]),
            json_default(h["valid_to"]) if h["valid_to"] else "",
            "yes" if h["is_current"] else "",
        )
    out.print(table)


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
    svc = open_service(warehouse)
    target = out_path or Path(f"{model}.{fmt}")
    if target.is_dir():
        raise InputError(f"--out {target} is a folder; give a file name, e.g. {target / f'{model}.{fmt}'}")
    rows = svc.export(model, fmt, target, force=force)
    out.print(f"wrote {rows} row(s) of {model} to {target}")
    if model in GOLD_MODELS and svc.gold_is_stale():
        err.print("note: silver changed since the last 'aag build'; run it to refresh the gold tables")


def monitor(warehouse: Warehouse = None, as_json: AsJson = False) -> None:
    """Freshness per source, open conflicts, completeness and quarantine counts."""
    report = open_service(warehouse).monitor()
    if as_json:
        print_json(report.as_dict())
        return
    out.print(f"checked at {cell(report.checked_at)}")
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
            table.add_row(*(cell(row[name]) for name in names))
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
        return f"{cell(at)}\n{duration(lag)} ago" if at is not None else ""

    return [
        {
            **row,
            "last_event": when(row["latest_event_at"], row["event_lag_seconds"]),
            "last_landing": when(row["latest_landing_at"], row["landing_lag_seconds"]),
        }
        for row in rows
    ]
