"""The gold layer: run the dbt project (``dbt/``) in-process and publish its tables.

``aag build`` runs ``dbt build`` on the ``local`` target (dbt-duckdb) through
``dbtRunner``. It stages a copy of the project under ``<warehouse>/gold/dbt`` whose
``seeds/`` folder holds the configuration in force for the warehouse (the registry and
priorities the engine reads), pins the Delta versions of the two silver tables so
every model reads one snapshot, and afterwards writes each gold model to Parquet,
readable by any tool without dbt.

**Incremental builds.** After a batch only a few customers change. ``relationships``
keeps a Delta change data feed (``aag build`` switches it on), and a build after an
earlier one hands dbt the rows that changed since the version that build read
(``silver.relationship_changes``); the models then resolve only the affected customers
again and replace their rows (``dbt/macros/incremental.sql``). A build is full when
there is no earlier one, when the project or the configuration changed since, when the
feed does not cover the range (a vacuum removed its files), or when asked
(``full_refresh``).

**Publishing.** dbt runs on a working copy of the DuckDB file (``gold/.work``), so a
failed or killed build leaves the published tables as they were. A green build writes
its Parquet files into a new folder ``gold/builds/<id>``, then publishes in this
order: the DuckDB file (renamed over ``gold/aag.duckdb``), the ``gold/current`` link
(switched to the new folder in one rename, so readers of ``gold/<model>.parquet``, links
through ``current``, see the whole previous export or the whole new one), and
``gold/build.json`` last: what was built from which silver versions. A crash anywhere
before ``build.json`` leaves the previous manifest, and the next build redoes the
change since then (re-resolving a customer twice gives the same rows).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from aag.config import CONFIG_FILES, default_config_dir
from aag.delta import CHANGE_FEED_PROPERTY
from aag.errors import AagError, WarehouseError
from aag.faults import crash_point
from aag.store import RELATIONSHIP_STATS_COLUMNS, STATS_COLUMNS_PROPERTY
from aag.warehouse import Warehouse

#: Gold relations ``aag export`` serves, with the order their Parquet files are written in.
GOLD_MODELS: dict[str, str] = {
    "customer_profile_v1": "customer_id",
    "customer_profile_v2": "customer_id",
    "customer_profile_v3": "customer_id",
    "company_assets": "customer_id, company_id, asset_id",
    "consent_log": "customer_id, change_seq",
    "customer_identity": "customer_id, source_system, source_object, source_record_id",
}
#: What the staged project copies from ``dbt/`` (``seeds/`` comes from the config in force).
PROJECT_ITEMS = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests", "analyses")
DUCKDB_FILE = "aag.duckdb"
MANIFEST_FILE = "build.json"
#: dbt builds a working copy of the DuckDB file here; it is renamed into place when green.
WORK_DIR = ".work"
#: One folder of Parquet exports per build; ``current`` links to the published one.
BUILDS_DIR = "builds"
CURRENT_LINK = "current"
#: Where dbt-duckdb opens the database (``dbt/profiles.yml``); unset, the published file.
DATABASE_ENV = "AAG_GOLD_DATABASE"
#: Per-customer gold tables, with their customer column (erasure deletes by it).
CUSTOMER_TABLES = (*GOLD_MODELS, "customer_records")
#: An incremental run's copies of the affected customers' edges and values (silver schema):
#: scratch for that run, emptied by erasure.
SCRATCH_TABLES = ("affected_edges", "affected_nodes")
SILVER_TABLES = ("nodes", "relationships")
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


def _one_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " ".join(lines)[:300]


def run_dbt(
    args: list[str],
    on_node: Callable[[str, str, int], None] | None = None,
    versions: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Invoke dbt in-process, quietly; ``on_node(name, status, total)`` per finished node.

    Args:
        args: The dbt command and its arguments.
        on_node: Progress callback.
        versions: Silver Delta versions the run reads (``$AAG_SILVER_VERSIONS`` for the
            run's duration; the project's views read the latest otherwise).
        env: More environment variables for the run's duration.

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
    settings = dict(env or {})
    if versions:
        from aag.dbt_plugin import VERSIONS_ENV

        settings[VERSIONS_ENV] = ",".join(f"{name}={version}" for name, version in versions.items())
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return dbtRunner(callbacks=[callback]).invoke([*args[:1], *quiet, *args[1:]])
    finally:
        _release_dbt()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    variables = {
        "warehouse": warehouse.uri,
        # The ranking sorts only by the keys of the strategies in force (resolve_winner).
        "survivorship_strategies": sorted({r.strategy for r in warehouse.config.survivorship.values()}),
        **(extra_vars or {}),
    }
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


def fingerprint(staged: Path) -> str:
    """A hash of the staged project and its seeds: a build after a change to either is full."""
    digest = hashlib.sha256()
    for item in (*PROJECT_ITEMS, "seeds"):
        root = staged / item
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(staged)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _outdated_properties(configuration: dict[str, str]) -> dict[str, str]:
    """The ``relationships`` properties an older ``aag init`` set differently, as they must be."""
    wanted = {}
    if configuration.get(CHANGE_FEED_PROPERTY) != "true":
        wanted[CHANGE_FEED_PROPERTY] = "true"
    stats = configuration.get(STATS_COLUMNS_PROPERTY)
    if stats is not None and "is_current" in stats.split(","):
        # Delta-Spark refuses to alter a table whose statistics list a boolean column.
        wanted[STATS_COLUMNS_PROPERTY] = RELATIONSHIP_STATS_COLUMNS
    return wanted


def ensure_silver_properties(warehouse: Warehouse) -> bool:
    """Bring the properties of ``relationships`` up to date; returns whether its change feed was off.

    The Delta change data feed must be on: incremental builds read which edges changed
    from it. delta-rs (and Spark) then write the changed rows of every MERGE next to
    the data files, and ``aag vacuum`` removes them with the other old files. The same
    metadata-only commit drops a boolean column from the statistics columns of tables
    made before Delta-Spark's rule was known (see :meth:`aag.store.DeltaGraphStore.create`).
    Warehouses made by an older ``aag init`` get a commit to silver, so the caller holds
    the writer lock (:meth:`aag.service.AagService.build` does).
    """
    table = warehouse.io.open(warehouse.graph.relationships_uri)
    configuration = table.metadata().configuration
    wanted = _outdated_properties(configuration)
    if not wanted:
        return False
    table.alter.set_table_properties(wanted)
    return configuration.get(CHANGE_FEED_PROPERTY) != "true"


def _changes_since(warehouse: Warehouse, since: int, until: int) -> pa.Table:
    from aag.dbt_plugin import read_changes

    return read_changes(warehouse.graph.relationships_uri, since, until)


def plan_build(
    warehouse: Warehouse, versions: dict[str, int], stamp: str, full_refresh: bool
) -> tuple[int | None, pa.Table | None, str]:
    """Whether this build can be incremental: the base version, the changed rows, or why not.

    Returns:
        ``(since, changes, "")`` for an incremental build, else ``(None, None, reason)``.
    """
    if full_refresh:
        return None, None, "asked (--full-refresh)"
    previous = manifest(warehouse)
    folder = gold_dir(warehouse)
    if not previous or not (folder / DUCKDB_FILE).exists():
        return None, None, "no earlier build"
    if previous.get("fingerprint") != stamp:
        return None, None, "the dbt project or the configuration changed"
    since = (previous.get("silver_versions") or {}).get("relationships")
    if since is None:
        return None, None, "the earlier build recorded no silver version"
    try:
        changes = _changes_since(warehouse, int(since), versions["relationships"])
    except Exception as exc:  # any failure to read the feed means: build everything
        return None, None, f"no change feed since version {since}: {_one_line(str(exc))[:120]}"
    return int(since), changes, ""


def build(
    warehouse: Warehouse,
    on_node: Callable[[str, str, int], None] | None = None,
    extra_args: list[str] | None = None,
    full_refresh: bool = False,
) -> BuildReport:
    """Run ``dbt build`` on the local target, then export and publish every gold model.

    Incremental when an earlier build's tables and the change feed since allow it (see
    the module docstring), else full.

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
    env = {DATABASE_ENV: str(database)}
    started = time.perf_counter()
    args = [*dbt_args("build", staged, warehouse), *(extra_args or [])]
    if changes is not None:
        # The published tables are the base the change is applied to (copied: a failed
        # build must leave them as they were).
        shutil.copyfile(folder / DUCKDB_FILE, database)
        _write_changes(database, changes)
        from aag.dbt_plugin import CHANGES_ENV, CHANGES_PREPARED

        env[CHANGES_ENV] = CHANGES_PREPARED
    else:
        args.append("--full-refresh")
    result = run_dbt(args, on_node, versions, env)
    dbt_seconds = time.perf_counter() - started
    if not result.success:
        raise _failure(result, staged / "logs" / "dbt.log")
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
        warnings=_warnings(result),
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
    _write_manifest(folder, report.as_dict())
    shutil.rmtree(work, ignore_errors=True)
    return report


def _write_changes(database: Path, changes: pa.Table) -> None:
    from aag.dbt_plugin import write_changes

    con = duckdb.connect(str(database))
    try:
        write_changes(con, changes)
    finally:
        con.close()


def _count(database: Path, sql: str) -> int:
    con = duckdb.connect(str(database), read_only=True)
    try:
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _write_manifest(folder: Path, data: dict[str, Any]) -> None:
    """Write ``build.json`` by rename: readers see the previous manifest or the new one."""
    partial = folder / f".{MANIFEST_FILE}.tmp"
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, folder / MANIFEST_FILE)


def _link(path: Path, target: str) -> None:
    """Make ``path`` a symbolic link to ``target`` in one rename (replacing a file or link)."""
    partial = path.with_name(f".{path.name}.link")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    partial.symlink_to(target)
    if path.is_dir() and not path.is_symlink():
        # A copy of the warehouse that followed the link made it a folder.
        shutil.rmtree(path)
    os.replace(partial, path)


def publish(folder: Path, database: Path, exports: Path) -> None:
    """Put a green build in place: the DuckDB file, then the exports' ``current`` link.

    Each step is one rename. ``gold/<model>.parquet`` are links through ``current``, so a
    reader opens either every file of the previous build or every file of the new one.
    Older export folders are deleted (open files stay readable until closed).
    """
    # A write-ahead log left by a tool that wrote to the old file must not be replayed
    # onto the new one.
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{DUCKDB_FILE}.wal").unlink()
    os.replace(database, folder / DUCKDB_FILE)
    _link(folder / CURRENT_LINK, f"{BUILDS_DIR}/{exports.name}")
    for model in GOLD_MODELS:
        path = folder / f"{model}.parquet"
        if not path.is_symlink():
            _link(path, f"{CURRENT_LINK}/{model}.parquet")
    for old in (folder / BUILDS_DIR).iterdir():
        if old.name != exports.name:
            shutil.rmtree(old, ignore_errors=True)


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
    folder.mkdir(parents=True, exist_ok=True)
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
            # Plain encoding: most columns are near-unique, so building dictionaries cost
            # ~6% of the export's CPU at 1M customers for files within 2% of the size.
            with pq.ParquetWriter(partial, schema, compression="zstd", use_dictionary=False) as writer:
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
            _write_manifest(folder, {**previous, "exports": None, "exports_removed_by": "erasure"})
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
            schema = "silver" if table == "customer_records" else "gold"
            con.execute(
                f"DELETE FROM {schema}.{table} "
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
                con.execute(f"DELETE FROM silver.{table}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    work = folder / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fresh = work / DUCKDB_FILE
    con = duckdb.connect(str(fresh))
    try:
        con.execute(f"ATTACH '{_sql_text(str(database))}' AS previous (READ_ONLY)")
        con.execute(f"COPY FROM DATABASE previous TO {fresh.stem}")
        con.execute("DETACH previous")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{DUCKDB_FILE}.wal").unlink()
    os.replace(fresh, database)
    shutil.rmtree(work, ignore_errors=True)


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def manifest(warehouse: Warehouse) -> dict[str, Any] | None:
    """The last build's ``build.json``, if any."""
    path = gold_dir(warehouse) / MANIFEST_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
