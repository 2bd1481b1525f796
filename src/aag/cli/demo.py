"""``aag demo``: the seed's case and a generated world, shown with progress and a score.

What the demo does lives in :mod:`aag.demo`; this module shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aag.cli.common import AsJson, Log, Warehouse, err, open_service, out, print_json, program
from aag.cli.ingest import build_progress
from aag.cli.reads import print_explanation, print_profile


def demo(
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    people: Annotated[
        int, typer.Option(min=0, help="Customers in the generated five-source world (0: seed case only)")
    ] = 1000,
) -> None:
    """Run the seed's case, then a generated five-source world, and score the resolution."""
    from aag.demo import DemoBatch, demo_inputs, demo_warehouse, explorer_link, run_seed_case, run_world

    log = Log()
    svc = open_service(demo_warehouse(warehouse))
    svc.init()
    inputs = demo_inputs(svc)

    def story(batch: DemoBatch, path: Path) -> None:
        if not as_json:
            out.print(f"[dim]{batch.story}[/dim]")
        log(f"seed case: ingesting {batch.source_system}.{batch.source_object} {path.name}")

    case = run_seed_case(svc, inputs, story)
    customer = case.customer_id
    if not as_json:
        out.print()
        print_profile(case.profile)
        print_explanation(case.explain_phone)
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
                svc.build(build_progress(progress, log))
    explorer = explorer_link(svc, customer, program()) if svc.warehouse.local else None
    if as_json:
        print_json(
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
        f"try: {program()} explain --warehouse {svc.warehouse.uri} --customer {customer} --attribute email",
        soft_wrap=True,
    )
    if explorer:
        out.print(f"\nexplore it: {explorer['command']}", soft_wrap=True)
        out.print(f"then open {explorer['url']}", soft_wrap=True)


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
