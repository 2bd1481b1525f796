"""The gold layer: run the dbt project (``dbt/``) in-process and publish its tables.

``aag build`` runs ``dbt build`` on the ``local`` target (dbt-duckdb) through
``dbtRunner`` on a staged copy of the project whose seeds are the configuration in force,
pins the Delta versions of the two silver tables so every model reads one snapshot, and
afterwards writes each gold model to Parquet, readable by any tool without dbt.

- :mod:`aag.gold.project`: the layout of ``<warehouse>/gold`` and the staged project.
- :mod:`aag.gold.runner`: running dbt in-process and reading its result.
- :mod:`aag.gold.incremental`: whether a build is incremental, and the change it reads.
- :mod:`aag.gold.builder`: ``aag build`` itself.
- :mod:`aag.gold.publishing`: export to Parquet, publish by renames, read what was published.
- :mod:`aag.gold.scrub`: take erased customers out of gold.

The dbt plugin (:mod:`aag.dbt_plugin`, run inside dbt) imports none of these.
"""

from __future__ import annotations

from aag.gold.builder import BuildReport, build
from aag.gold.incremental import ensure_silver_properties, plan_build, silver_versions
from aag.gold.project import (
    BUILDS_DIR,
    CURRENT_LINK,
    CUSTOMER_TABLES,
    DATABASE_ENV,
    DUCKDB_FILE,
    GOLD_MODELS,
    MANIFEST_FILE,
    PROJECT_ITEMS,
    SCRATCH_TABLES,
    SILVER_CUSTOMER_TABLES,
    SILVER_TABLES,
    WORK_DIR,
    fingerprint,
    gold_dir,
    gold_file,
    project_dir,
    stage_project,
)
from aag.gold.publishing import EXPORT_BATCH_ROWS, export_gold, manifest, publish, read_gold
from aag.gold.runner import BuildError, dbt_args, failed_nodes, run_dbt
from aag.gold.scrub import discard

__all__ = [
    "BUILDS_DIR",
    "CURRENT_LINK",
    "CUSTOMER_TABLES",
    "DATABASE_ENV",
    "DUCKDB_FILE",
    "EXPORT_BATCH_ROWS",
    "GOLD_MODELS",
    "MANIFEST_FILE",
    "PROJECT_ITEMS",
    "SCRATCH_TABLES",
    "SILVER_CUSTOMER_TABLES",
    "SILVER_TABLES",
    "WORK_DIR",
    "BuildError",
    "BuildReport",
    "build",
    "dbt_args",
    "discard",
    "ensure_silver_properties",
    "export_gold",
    "failed_nodes",
    "fingerprint",
    "gold_dir",
    "gold_file",
    "manifest",
    "plan_build",
    "project_dir",
    "publish",
    "read_gold",
    "run_dbt",
    "silver_versions",
    "stage_project",
]
