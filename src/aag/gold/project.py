"""Where gold lives and what dbt builds it from: the layout of ``<warehouse>/gold``, the staged project.

``aag build`` stages a copy of the dbt project under ``<warehouse>/gold/dbt`` whose
``seeds/`` folder holds the configuration in force for the warehouse (the registry and
priorities the engine reads). Its fingerprint decides whether a build may be incremental.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from aag.config import CONFIG_FILES, default_config_dir
from aag.errors import WarehouseError
from aag.graph.warehouse import Warehouse

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
#: Per-customer tables of the silver schema that the gold build writes (the record map).
SILVER_CUSTOMER_TABLES = ("customer_records",)
#: Per-customer gold tables, with their customer column (erasure deletes by it).
CUSTOMER_TABLES = (*GOLD_MODELS, *SILVER_CUSTOMER_TABLES)
#: An incremental run's change set and copies of the affected customers' edges and values
#: (silver schema): scratch for that run, emptied by erasure.
SCRATCH_TABLES = ("affected_edges", "affected_nodes", "affected_customers", "changed_entities")
SILVER_TABLES = ("nodes", "relationships")
#: DuckDB's memory limit for the gold build (dbt's connection and the export), as in
#: ``dbt/profiles.yml``. Beyond it DuckDB spills to a folder next to the working copy of
#: the database; the default keeps a full build at 1M customers under 4 GB of RSS.
MEMORY_LIMIT_ENV = "AAG_DUCKDB_MEMORY_LIMIT"
GOLD_MEMORY_LIMIT = "3GB"


def memory_limit() -> str:
    """The gold build's DuckDB memory limit: ``$AAG_DUCKDB_MEMORY_LIMIT``, else :data:`GOLD_MEMORY_LIMIT`."""
    return os.environ.get(MEMORY_LIMIT_ENV, "").strip() or GOLD_MEMORY_LIMIT


def project_dir() -> Path:
    """The dbt project: ``$AAG_DBT_PROJECT_DIR``, the checkout's ``dbt/``, or the wheel's copy."""
    override = os.environ.get("AAG_DBT_PROJECT_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve()
    # src/aag/gold/project.py -> the checkout's root; installed: site-packages/aag.
    candidates += [here.parents[3] / "dbt", here.parents[1] / "dbt_project"]
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
