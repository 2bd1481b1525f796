"""The gold layer: run the dbt project (``dbt/``) in-process and export its tables.

``aag build`` runs ``dbt build`` on the ``local`` target (dbt-duckdb) through
``dbtRunner``. It stages a copy of the project under ``<warehouse>/gold/dbt`` whose
``seeds/`` folder holds the configuration in force for the warehouse (the registry and
priorities the engine reads), pins the Delta versions of the two silver tables so
every model reads one snapshot, and afterwards writes each gold model to
``<warehouse>/gold/<relation>.parquet``, readable by any tool without dbt.
``<warehouse>/gold/aag.duckdb`` holds the same tables (schemas ``gold``, ``silver``,
``config``), and ``<warehouse>/gold/build.json`` records what was built from what.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from aag.config import CONFIG_FILES, default_config_dir
from aag.errors import AagError, WarehouseError
from aag.warehouse import Warehouse

#: Gold relations ``aag export`` serves, with the order their Parquet files are written in.
GOLD_MODELS: dict[str, str] = {
    "customer_profile_v1": "customer_id",
    "customer_profile_v2": "customer_id",
    "company_assets": "customer_id, company_id, asset_id",
    "consent_log": "customer_id, change_seq",
    "customer_identity": "customer_id, source_system, source_object, source_record_id",
}
#: What the staged project copies from ``dbt/`` (``seeds/`` comes from the config in force).
PROJECT_ITEMS = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests", "analyses")
DUCKDB_FILE = "aag.duckdb"
MANIFEST_FILE = "build.json"
SILVER_TABLES = ("nodes", "relationships")
#: Pinned silver Delta versions for a dbt run (``nodes=3,relationships=7``), read by
#: :mod:`aag.dbt_plugin` outside dbt's configuration, so a new snapshot does not make dbt
#: re-parse the project.
VERSIONS_ENV = "AAG_SILVER_VERSIONS"
EXPORT_BATCH_ROWS = 256 * 1024


class BuildError(AagError):
    """The dbt build failed (a model error or a failing data test)."""

    exit_code = 1

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        #: Names of the dbt nodes that errored or failed.
        self.failures = failures or []


def project_dir() -> Path:
    """The dbt project: ``$AAG_DBT_PROJECT_DIR``, else ``dbt/`` of the source checkout."""
    override = os.environ.get("AAG_DBT_PROJECT_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "dbt")
    for folder in candidates:
        if (folder / "dbt_project.yml").is_file():
            return folder
    raise WarehouseError(
        "the dbt project was not found (set AAG_DBT_PROJECT_DIR to the repository's dbt/ folder)"
    )


def gold_dir(warehouse: Warehouse) -> Path:
    """``<warehouse>/gold`` (local warehouses only)."""
    if not warehouse.local:
        raise WarehouseError(
            f"gold exports need a local warehouse, not {warehouse.uri}; on object stores run the "
            "dbt project's databricks target"
        )
    return Path(warehouse.uri) / "gold"


def gold_file(warehouse: Warehouse, model: str) -> Path:
    """The Parquet export of one gold model."""
    return gold_dir(warehouse) / f"{model}.parquet"


def stage_project(warehouse: Warehouse) -> Path:
    """Copy the dbt project to ``<warehouse>/gold/dbt`` with the warehouse's config as seeds.

    The config in force is the folder :attr:`Warehouse.config` was loaded from; an identity
    file it lacks comes from the packaged defaults, as the engine does.
    """
    source = project_dir()
    staged = gold_dir(warehouse) / "dbt"
    for item in PROJECT_ITEMS:
        target = staged / item
        if target.is_dir():
            shutil.rmtree(target)
        if (source / item).is_dir():
            shutil.copytree(source / item, target)
        elif (source / item).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / item, target)
    seeds = staged / "seeds"
    if seeds.exists():
        shutil.rmtree(seeds)
    seeds.mkdir(parents=True)
    config_folder = warehouse.config.directory or default_config_dir()
    for name in CONFIG_FILES:
        origin = config_folder / name
        if not origin.exists():
            origin = default_config_dir() / name
        shutil.copyfile(origin, seeds / name)
    return staged


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _one_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " ".join(lines)[:300]


def run_dbt(
    args: list[str],
    on_node: Callable[[str, str, int], None] | None = None,
    versions: dict[str, int] | None = None,
) -> Any:
    """Invoke dbt in-process, quietly; ``on_node(name, status, total)`` per finished node.

    Args:
        args: The dbt command and its arguments.
        on_node: Progress callback.
        versions: Silver Delta versions the run reads (``$AAG_SILVER_VERSIONS`` for the
            run's duration; the project's views read the latest otherwise).

    Returns:
        The ``dbtRunnerResult``.
    """
    from dbt.cli.main import dbtRunner

    total = [0]

    def callback(event: Any) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            total[0] = int(event.data.node_count)
        elif name == "NodeFinished" and on_node is not None:
            info = event.data.node_info
            on_node(str(info.node_name), str(info.node_status), total[0])

    quiet = ["--log-level", "none", "--log-level-file", "info"]
    quiet += ["--no-send-anonymous-usage-stats", "--no-version-check"]
    previous = os.environ.get(VERSIONS_ENV)
    if versions:
        os.environ[VERSIONS_ENV] = ",".join(f"{name}={version}" for name, version in versions.items())
    try:
        return dbtRunner(callbacks=[callback]).invoke([*args[:1], *quiet, *args[1:]])
    finally:
        _release_dbt()
        if previous is None:
            os.environ.pop(VERSIONS_ENV, None)
        else:
            os.environ[VERSIONS_ENV] = previous


def _release_dbt() -> None:
    """Let go of what an in-process dbt run keeps after it returns.

    dbt-duckdb keeps its DuckDB database open in a class-level environment, so this
    process could not open the file in another mode (read-only) afterwards; and dbt keeps
    its adapters, with their multiprocessing locks, in a module-level factory, which makes
    the resource tracker warn about leaked semaphores when the CLI leaves via os._exit.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    environment = getattr(DuckDBConnectionManager, "_ENV", None)
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    reset_adapters()  # type: ignore[no-untyped-call]
    gc.collect()


def failed_nodes(result: Any) -> list[tuple[str, str]]:
    """``(node name, one-line message)`` of every node that errored or failed in a dbt run."""
    failed = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status))
        if status in ("error", "fail", "runtime error"):
            node = node_result.node
            kind = getattr(node.resource_type, "value", node.resource_type)
            failed.append((str(node.name), f"{kind} {node.name}: {_one_line(node_result.message)}"))
    return failed


def _failure(result: Any, log_file: Path) -> BuildError:
    """The one-line error of a failed dbt run, naming what failed."""
    if result.exception is not None:
        return BuildError(f"dbt failed: {_one_line(str(result.exception))} (log: {log_file})")
    failed = failed_nodes(result)
    if not failed:
        return BuildError(f"dbt failed (log: {log_file})")
    more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
    return BuildError(
        f"dbt build failed: {failed[0][1]}{more} (log: {log_file})", [name for name, _ in failed]
    )


def _warnings(result: Any) -> list[str]:
    out = []
    for node_result in getattr(result.result, "results", None) or []:
        if str(getattr(node_result.status, "value", node_result.status)) == "warn":
            out.append(f"{node_result.node.name}: {_one_line(node_result.message)}")
    return out


def silver_versions(warehouse: Warehouse) -> dict[str, int]:
    """The current Delta versions of the silver graph tables."""
    uris = {"nodes": warehouse.graph.nodes_uri, "relationships": warehouse.graph.relationships_uri}
    return {name: int(warehouse.io.open(uri).version()) for name, uri in uris.items()}


def dbt_args(
    command: str,
    staged: Path,
    warehouse: Warehouse,
    extra_vars: dict[str, Any] | None = None,
) -> list[str]:
    """Arguments of a dbt command on the (staged) project against this warehouse.

    Args:
        command: dbt command, e.g. ``build``.
        staged: Project folder (also the profiles folder).
        warehouse: The warehouse (``--vars warehouse``).
        extra_vars: More project vars.
    """
    variables = {"warehouse": warehouse.uri, **(extra_vars or {})}
    return [
        command,
        "--project-dir",
        str(staged),
        "--profiles-dir",
        str(staged),
        "--target",
        "local",
        "--target-path",
        str(staged / "target"),
        "--log-path",
        str(staged / "logs"),
        "--vars",
        json.dumps(variables),
    ]


def build(
    warehouse: Warehouse,
    on_node: Callable[[str, str, int], None] | None = None,
    extra_args: list[str] | None = None,
) -> BuildReport:
    """Run ``dbt build`` on the local target, then export every gold model to Parquet.

    Args:
        warehouse: An initialised local warehouse.
        on_node: Progress callback ``(node name, status, total nodes)``.
        extra_args: More dbt arguments (e.g. ``["--select", "gold"]``).

    Raises:
        BuildError: A model failed or a data test failed (one line, with the log path).
    """
    warehouse.require()
    folder = gold_dir(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    staged = stage_project(warehouse)
    versions = silver_versions(warehouse)
    started = time.perf_counter()
    result = run_dbt([*dbt_args("build", staged, warehouse), *(extra_args or [])], on_node, versions)
    dbt_seconds = time.perf_counter() - started
    if not result.success:
        raise _failure(result, staged / "logs" / "dbt.log")
    started = time.perf_counter()
    counts = export_gold(folder / DUCKDB_FILE, folder)
    report = BuildReport(
        warehouse=warehouse.uri,
        duckdb_file=str(folder / DUCKDB_FILE),
        silver_versions=versions,
        config_dir=str(warehouse.config.directory or default_config_dir()),
        nodes_run=len(getattr(result.result, "results", None) or []),
        models=counts,
        warnings=_warnings(result),
        dbt_seconds=round(dbt_seconds, 3),
        export_seconds=round(time.perf_counter() - started, 3),
        built_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    (folder / MANIFEST_FILE).write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def export_gold(database: Path, folder: Path) -> dict[str, int]:
    """Write each gold relation of the DuckDB file to ``<folder>/<relation>.parquet``.

    Rows stream from DuckDB into the Parquet writer in batches. Every column is written
    as nullable (DuckDB alone would mark a column that happens to hold no NULL as
    required, so a file's schema would depend on its data); timestamps are UTC instants.
    Each file is written next to its final name and renamed into place, so a reader sees
    the previous export or the new one, never half of one.

    Returns:
        Rows per relation.
    """
    con = duckdb.connect(str(database))
    counts: dict[str, int] = {}
    try:
        con.execute("SET TimeZone = 'UTC'")
        for model, order in GOLD_MODELS.items():
            final = folder / f"{model}.parquet"
            partial = folder / f".{model}.parquet.tmp"
            reader = con.sql(f"SELECT * FROM gold.{model} ORDER BY {order}").to_arrow_reader(
                batch_size=EXPORT_BATCH_ROWS
            )
            schema = pa.schema([f.with_nullable(True) for f in reader.schema])
            rows = 0
            with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch.cast(schema))
                    rows += batch.num_rows
            os.replace(partial, final)
            counts[model] = rows
        # Fold the write-ahead log into the file: other tools open one self-contained file.
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts


def read_gold(warehouse: Warehouse, model: str) -> pa.Table:
    """A gold model's last export, or a one-line error when ``aag build`` has not run."""
    path = gold_file(warehouse, model)
    if not path.exists():
        raise WarehouseError(f"gold model {model} has not been built in {warehouse.uri} (run 'aag build')")
    return pq.read_table(path)


def discard(warehouse: Warehouse) -> int:
    """Delete the gold outputs (exports, DuckDB file, manifest); returns the files removed.

    Erasure calls this: the gold tables were computed before the erasure and still hold
    the erased customer. ``aag build`` writes them anew.
    """
    folder = gold_dir(warehouse)
    if not folder.exists():
        return 0
    doomed = [folder / f"{m}.parquet" for m in GOLD_MODELS]
    doomed += [folder / DUCKDB_FILE, folder / f"{DUCKDB_FILE}.wal", folder / MANIFEST_FILE]
    removed = 0
    for path in doomed:
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def manifest(warehouse: Warehouse) -> dict[str, Any] | None:
    """The last build's ``build.json``, if any."""
    path = gold_dir(warehouse) / MANIFEST_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
