"""Scrubbing erased customers out of gold (called by erasure after silver lost their edges).

The published exports are deleted; the DuckDB file an incremental build starts from keeps
its tables without the erased customers, rewritten so no page of it keeps them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa

from aag.engine.dialect import lit
from aag.gold.project import (
    BUILDS_DIR,
    CURRENT_LINK,
    CUSTOMER_TABLES,
    DUCKDB_FILE,
    GOLD_MODELS,
    MANIFEST_FILE,
    SCRATCH_TABLES,
    SILVER_CUSTOMER_TABLES,
    WORK_DIR,
    gold_dir,
)
from aag.gold.publishing import manifest, write_manifest
from aag.graph.warehouse import Warehouse


def discard(warehouse: Warehouse, erased: list[str] | None = None) -> int:
    """Take erased customers out of gold; returns the files removed.

    Erasure calls this after deleting the customers' edges. The published exports held
    the customers, so they are deleted (``aag build`` writes them anew). The DuckDB file
    keeps the tables an incremental build starts from, without the erased entities and
    the customers they belonged to: their rows are deleted and the file is rewritten, so
    no page of it keeps them. ``build.json`` keeps the silver versions it was built from
    and records that the exports are gone. Without an earlier build (or without the ids),
    every gold output is deleted instead.

    Args:
        warehouse: The warehouse.
        erased: Entity ids the erasure removed (the customer's records).
    """
    folder = gold_dir(warehouse)
    if not folder.exists():
        return 0
    removed = _remove_exports(folder)
    previous = manifest(warehouse)
    database = folder / DUCKDB_FILE
    if previous and database.exists() and erased:
        try:
            _scrub(folder, erased)
        except duckdb.Error:
            pass  # an unreadable file: drop the whole gold layer below
        else:
            write_manifest(folder, {**previous, "exports": None, "exports_removed_by": "erasure"})
            return removed
    for path in (database, folder / f"{DUCKDB_FILE}.wal", folder / MANIFEST_FILE):
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def _remove_exports(folder: Path) -> int:
    """Delete every export folder and the ``current`` link; returns the files removed."""
    removed = 0
    builds = folder / BUILDS_DIR
    if builds.is_dir():
        removed += sum(1 for p in builds.rglob("*") if p.is_file())
        shutil.rmtree(builds)
    for path in [folder / CURRENT_LINK, *(folder / f"{m}.parquet" for m in GOLD_MODELS)]:
        if path.is_symlink() or path.exists():
            if not path.is_symlink():
                removed += 1  # an export of the layout before export folders
            path.unlink()
    return removed


def _scrub(folder: Path, erased: list[str]) -> None:
    """Delete erased entities and their customers from the DuckDB file, then rewrite it.

    The customers: every erased entity, and the customer each of them belonged to in the
    gold tables. The scratch tables of the last incremental run are emptied. A row deleted
    in DuckDB stays in its block until overwritten, so the database is copied into a new
    file (``COPY FROM DATABASE``) that replaces the old one.
    """
    database = folder / DUCKDB_FILE
    con = duckdb.connect(str(database))
    try:
        con.register("erased_rows", pa.table({"id": pa.array(erased, pa.string())}))
        con.execute("CREATE TEMP TABLE erased_ids AS SELECT DISTINCT id FROM erased_rows")
        con.execute(
            """
CREATE TEMP TABLE erased_customers AS
SELECT id AS customer_id FROM erased_ids
UNION SELECT customer_id FROM silver.customer_records WHERE record_entity_id IN (SELECT id FROM erased_ids)
"""
        )
        for table in CUSTOMER_TABLES:
            schema = "silver" if table in SILVER_CUSTOMER_TABLES else "gold"
            con.execute(
                f"DELETE FROM {schema}.{table} "  # noqa: S608 - schema and table from the module constant CUSTOMER_TABLES
                "WHERE customer_id IN (SELECT customer_id FROM erased_customers)"
            )
        con.execute(
            "DELETE FROM silver.customer_records WHERE record_entity_id IN (SELECT id FROM erased_ids)"
        )
        # The last incremental run's edge and value copies may hold the erased customer's
        # values; the next incremental run rebuilds them, so they are emptied whole.
        present = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'silver'"
        ).fetchall()
        for (table,) in present:
            if table in SCRATCH_TABLES:
                con.execute(f"DELETE FROM silver.{table}")  # noqa: S608 - table checked against the module constant SCRATCH_TABLES
        con.execute("CHECKPOINT")
    finally:
        con.close()
    work = folder / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fresh = work / DUCKDB_FILE
    con = duckdb.connect(str(fresh))
    try:
        con.execute(f"ATTACH {lit(str(database))} AS previous (READ_ONLY)")
        con.execute(f"COPY FROM DATABASE previous TO {fresh.stem}")
        con.execute("DETACH previous")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{DUCKDB_FILE}.wal").unlink()
    os.replace(fresh, database)
    shutil.rmtree(work, ignore_errors=True)
