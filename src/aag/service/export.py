"""Exports: a silver table or a gold model written to a Parquet, CSV or JSON Lines file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aag import gold
from aag.bronze import file_sha256
from aag.engine.dialect import ident, lit
from aag.engine.duckdb import local_connection
from aag.errors import InputError, NotFoundError
from aag.graph.warehouse import Warehouse

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
#: Silver tables ``aag export`` reads directly from Delta.
SILVER_MODELS = ("nodes", "relationships", "quarantine", "batches")
#: Models ``aag export`` knows: the silver tables, and the gold models as ``aag build`` left them.
EXPORT_MODELS = (*SILVER_MODELS, *gold.GOLD_MODELS)


def model(warehouse: Warehouse, name: str) -> pa.Table:
    """A table by its export name."""
    warehouse.require()
    graph = warehouse.graph
    if name == "nodes":
        return graph.nodes()
    if name == "relationships":
        return graph.relationships()
    if name == "quarantine":
        return warehouse.quarantine()
    if name == "batches":
        return warehouse.batches()
    if name in gold.GOLD_MODELS:
        return gold.read_gold(warehouse, name)
    raise NotFoundError(f"unknown model {name!r}; known: {', '.join(EXPORT_MODELS)}")


def export_target_check(warehouse: Warehouse, out: Path, force: bool = False) -> None:
    """Refuse an export target that would lose data; raises :class:`InputError`.

    An existing file is kept unless ``force``; a file inside the warehouse, or one with
    the content of a file the ledger records as landed (an input file), is kept even
    with ``force``: exports never overwrite what the warehouse was built from. A
    missing parent folder is an error, not created (a typo would go unnoticed).
    """
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name with --out")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder (create it first)")
    if warehouse.local and out.resolve().is_relative_to(Path(warehouse.uri)):
        raise InputError(f"{out} is inside the warehouse {warehouse.uri}; export elsewhere")
    if not out.exists():
        return
    if not force:
        raise InputError(f"{out} exists; use --force to overwrite it")
    if warehouse.is_initialised() and out.is_file():
        digest = file_sha256(out)
        landed = warehouse.io.read(
            warehouse.ledger_uri, "file_name", f"file_sha256 = {lit(digest)} AND status = 'committed'"
        )
        if landed.num_rows:
            raise InputError(
                f"{out} is a file the warehouse ingested ({landed.column(0)[0].as_py()}); "
                "not overwritten, even with --force"
            )


def export(warehouse: Warehouse, name: str, fmt: str, out: Path, force: bool = False) -> int:
    """Write a model to a file; returns the number of rows.

    The file is written next to its target under a temporary name and renamed into
    place, so a failed export leaves no half-written file (see
    :func:`export_target_check` for the targets refused).
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    table = model(warehouse, name)
    export_target_check(warehouse, out, force)
    tmp = out.with_name(f".{out.name}.aag-export.tmp")
    try:
        _write_file(table, fmt, tmp)
        tmp.replace(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return int(table.num_rows)


def _write_file(table: pa.Table, fmt: str, out: Path) -> None:
    if fmt == "parquet":
        pq.write_table(table, out)
        return
    # Text formats: timestamps as ISO 8601 UTC, maps as JSON objects (CSV) or nested
    # objects (JSON Lines); DuckDB writes the file without a Python row loop.
    columns = []
    for field in table.schema:
        col = ident(field.name)
        if pa.types.is_timestamp(field.type):
            columns.append(f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {col}")
        elif pa.types.is_map(field.type) and fmt == "csv":
            columns.append(f"CAST(to_json({col}) AS VARCHAR) AS {col}")
        else:
            columns.append(col)
    con = local_connection()
    con.register("export_src", table)
    try:
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json"
        con.execute(f"COPY (SELECT {', '.join(columns)} FROM export_src) TO {lit(str(out))} ({options})")  # noqa: S608 - columns via dialect.ident, the path via dialect.lit
    finally:
        con.unregister("export_src")
