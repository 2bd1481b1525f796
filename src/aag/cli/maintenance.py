"""The operator's commands that change what the warehouse holds or decides.

``erase``, ``optimize`` and ``vacuum`` keep the files; the ``identity`` group records
the operator's decisions on which records are one customer.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aag.cli.common import AsJson, Warehouse, open_service, out, print_json


def erase(
    customer: Annotated[str, typer.Option("--customer", help="Customer node id")],
    warehouse: Warehouse = None,
    as_json: AsJson = False,
    requested_by: Annotated[
        str | None, typer.Option("--requested-by", help="Who asked (kept in the erasure log)")
    ] = None,
) -> None:
    """GDPR erasure of one customer (run 'aag vacuum' to delete the old files)."""
    result = open_service(warehouse).erase(customer, requested_by)
    if as_json:
        print_json(result)
        return
    out.print(f"erased {customer}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.items()))
    out.print("run 'aag vacuum' to delete superseded files that still hold the erased rows")


def optimize(warehouse: Warehouse = None) -> None:
    """Compact small files and cluster edges by entity (contents unchanged)."""
    result = open_service(warehouse).optimize()
    removed = sum(m["files_removed"] for m in result.values())
    added = sum(m["files_added"] for m in result.values())
    out.print(
        f"optimize rewrote {removed} file(s) into {added} across {len(result)} table(s); "
        "run 'aag vacuum' to delete the old files"
    )


def vacuum(warehouse: Warehouse = None) -> None:
    """Delete data files no table version references any more (irreversible)."""
    removed = open_service(warehouse).vacuum()
    out.print(f"vacuum removed {sum(removed.values())} file(s) from {len(removed)} table(s)")


identity_app = typer.Typer(
    help="Operator decisions on identity: keep two records apart, join them, or undo either."
)
Records = Annotated[
    list[str],
    typer.Option("--record", help="SOURCE:OBJECT:ID, e.g. salesforce:Contact:0035g00000AbCdE (twice)"),
]
Note = Annotated[str, typer.Option("--note", help="Why (kept with the decision, shown by explain)")]


def _decide(action: str, records: list[str], note: str, warehouse: str | None, as_json: bool) -> None:
    result = open_service(warehouse).decide_identity(action, records, note)  # type: ignore[arg-type]
    if as_json:
        print_json(result)
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
    for sentence in open_service(warehouse).identity_decisions():
        out.print(sentence)
