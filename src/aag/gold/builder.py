"""``aag build``: stage the project, run dbt on a working copy, export and publish the result.

Incremental when an earlier build's tables and the change feed since allow it
(:mod:`aag.gold.incremental`); published in the order :mod:`aag.gold.publishing` describes.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from aag.config import default_config_dir
from aag.faults import crash_point
from aag.gold.incremental import ensure_silver_properties, plan_build, silver_versions, write_changes
from aag.gold.project import (
    BUILDS_DIR,
    DATABASE_ENV,
    DUCKDB_FILE,
    MEMORY_LIMIT_ENV,
    WORK_DIR,
    fingerprint,
    gold_dir,
    memory_limit,
    stage_project,
)
from aag.gold.publishing import export_gold, publish, write_manifest
from aag.gold.runner import build_failure, dbt_args, node_warnings, run_dbt
from aag.graph.warehouse import Warehouse


@dataclass
class BuildReport:
    """What ``aag build`` did."""

    warehouse: str
    duckdb_file: str
    silver_versions: dict[str, int]
    config_dir: str
    nodes_run: int
    models: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dbt_seconds: float = 0.0
    export_seconds: float = 0.0
    built_at: str = ""
    #: ``full`` or ``incremental``, and why a build was full.
    mode: str = "full"
    full_reason: str = ""
    #: Incremental builds: the relationships version the change was read from, the number
    #: of changed edge rows and of customers resolved again.
    changes_since: int | None = None
    changed_rows: int = 0
    affected_customers: int = 0
    #: Hash of the staged project and configuration (a change forces a full build).
    fingerprint: str = ""
    #: Folder of this build's Parquet exports (relative to ``gold/``).
    exports: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def build(
    warehouse: Warehouse,
    on_node: Callable[[str, str, int], None] | None = None,
    extra_args: list[str] | None = None,
    full_refresh: bool = False,
) -> BuildReport:
    """Run ``dbt build`` on the local target, then export and publish every gold model.

    Incremental when an earlier build's tables and the change feed since allow it (see
    :mod:`aag.gold.incremental`), else full.

    Args:
        warehouse: An initialised local warehouse.
        on_node: Progress callback ``(node name, status, total nodes)``.
        extra_args: More dbt arguments (e.g. ``["--select", "gold"]``).
        full_refresh: Rebuild every table from scratch.

    Raises:
        BuildError: A model failed or a data test failed (one line, with the log path).
    """
    warehouse.require()
    folder = gold_dir(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    staged = stage_project(warehouse)
    stamp = fingerprint(staged)
    ensure_silver_properties(warehouse)
    versions = silver_versions(warehouse)
    since, changes, full_reason = plan_build(warehouse, versions, stamp, full_refresh)
    work = folder / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    database = work / DUCKDB_FILE
    # Passed on explicitly, so the run and the export below share one limit.
    env = {DATABASE_ENV: str(database), MEMORY_LIMIT_ENV: memory_limit()}
    started = time.perf_counter()
    args = [*dbt_args("build", staged, warehouse), *(extra_args or [])]
    if changes is not None:
        # The published tables are the base the change is applied to (copied: a failed
        # build must leave them as they were).
        shutil.copyfile(folder / DUCKDB_FILE, database)
        write_changes(database, changes)
        from aag.dbt_plugin import CHANGES_ENV, CHANGES_PREPARED

        env[CHANGES_ENV] = CHANGES_PREPARED
    else:
        args.append("--full-refresh")
    result = run_dbt(args, on_node, versions, env)
    dbt_seconds = time.perf_counter() - started
    if not result.success:
        raise build_failure(result, staged / "logs" / "dbt.log")
    crash_point("gold-models-built")
    started = time.perf_counter()
    build_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    exports = folder / BUILDS_DIR / build_id
    counts = export_gold(database, exports)
    affected = 0
    if changes is not None:
        affected = _count(database, "SELECT count(*) FROM silver.affected_customers")
    report = BuildReport(
        warehouse=warehouse.uri,
        duckdb_file=str(folder / DUCKDB_FILE),
        silver_versions=versions,
        config_dir=str(warehouse.config.directory or default_config_dir()),
        nodes_run=len(getattr(result.result, "results", None) or []),
        models=counts,
        warnings=node_warnings(result),
        dbt_seconds=round(dbt_seconds, 3),
        built_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        mode="incremental" if changes is not None else "full",
        full_reason=full_reason,
        changes_since=since,
        changed_rows=changes.num_rows if changes is not None else 0,
        affected_customers=affected,
        fingerprint=stamp,
        exports=f"{BUILDS_DIR}/{build_id}",
    )
    crash_point("gold-exported")
    publish(folder, database, exports)
    report.export_seconds = round(time.perf_counter() - started, 3)
    write_manifest(folder, report.as_dict())
    shutil.rmtree(work, ignore_errors=True)
    return report


def _count(database: Path, sql: str) -> int:
    con = duckdb.connect(str(database), read_only=True)
    try:
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0
