"""Databricks artifacts: setup SQL, the catalog-table store's commit SQL, the pipeline, the bundle.

What can run locally runs on local Spark with Delta Lake's jars (``tests/conftest.py``):
the setup DDL creates real Delta tables (change data feed, deletion vectors), the commit
task's MERGE runs on them, and the statements are also checked with sqlglot's
Databricks dialect.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
import yaml
from sqlglot import exp

from aag.config import CONFIG_FILES, default_config_dir, load_config
from aag.databricks.job import setup_sql, statements
from aag.databricks.store import SparkTableGraphStore, merge_relationships_sql, merge_source_sql
from aag.engine.base import Capability, Engine, SqlScan
from aag.graph.memory import MemoryGraphStore
from aag.graph.store import ChangeSql, GraphChange
from aag.model import NODES, RELATIONSHIPS
from historykit import with_history_files
from rulekit import Ev, apply, versions
from test_extract_parity import _other_sources

#: Objects whose rows are about another object's records (the histories' files go with them).
HISTORY_OBJECTS = ("CDHDR", "CDPOS", "ContactHistory")

ROOT = Path(__file__).resolve().parents[1]


def _plain(sql: str) -> str:
    """Setup SQL with ``IDENTIFIER(:catalog || '.s.t')`` as the name ``aag.s.t``."""
    return re.sub(
        r"IDENTIFIER\(:catalog(?: \|\| '\.([\w.]+)')?\)", lambda m: "aag" + (f".{m[1]}" if m[1] else ""), sql
    )


def _run_setup(spark: object, name: str) -> None:
    """Run one setup file's statements on local Spark (schemas stand in for the catalog)."""
    for statement in statements(setup_sql()[name]):
        spark.sql(statement, args={"catalog": "spark_catalog"})  # type: ignore[attr-defined]


def _detail(spark: object, table: str) -> dict[str, Any]:
    detail: dict[str, Any] = spark.sql(f"DESCRIBE DETAIL {table}").collect()[0].asDict()  # type: ignore[attr-defined]
    return detail


def _assert_real_delta(spark: object, table: str) -> None:
    """``table`` is a Delta table with change data feed and deletion vectors on."""
    detail = _detail(spark, table)
    assert detail["format"] == "delta", (table, detail["format"])
    for key in ("delta.enableChangeDataFeed", "delta.enableDeletionVectors"):
        assert detail["properties"].get(key) == "true", (table, key, detail["properties"])
    assert {"changeDataFeed", "deletionVectors"} <= set(detail["tableFeatures"]), table


#: The schemas of the setup (``01_catalog.sql``), which local Spark holds in its one catalog.
SETUP_SCHEMAS = ("bronze", "graph", "config", "gold")


def _run_setup_schemas(spark: object) -> None:
    """The ``CREATE SCHEMA`` statements of ``01_catalog.sql`` (local Spark creates no catalog)."""
    for statement in statements(setup_sql()["01_catalog.sql"]):
        if statement.startswith("CREATE SCHEMA"):
            spark.sql(statement, args={"catalog": "spark_catalog"})  # type: ignore[attr-defined]


def _drop_setup_schemas(spark: object) -> None:
    for schema in SETUP_SCHEMAS:
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[attr-defined]


# -- setup -------------------------------------------------------------------------------


def test_setup_files_are_the_generated_sql():
    for name, sql in setup_sql().items():
        text = (ROOT / "databricks" / "setup" / name).read_text(encoding="utf-8")
        assert text.endswith(sql), (
            f"databricks/setup/{name} is stale: run python -m aag.databricks databricks/setup"
        )


def test_setup_sql_is_databricks_sql_with_cdf_and_clustering():
    parsed = {}
    for sql in setup_sql().values():
        for statement in statements(sql):
            plain = _plain(statement)
            if plain.startswith(("DECLARE", "SET VAR", "EXECUTE IMMEDIATE")):
                continue  # the CREATE CATALOG text: evaluated on Spark (see below)
            tree = sqlglot.parse_one(plain, read="databricks")
            assert not isinstance(tree, exp.Command), plain[:80]
            named = tree.find(exp.Table)
            parsed[named.sql(dialect="databricks") if named else plain] = tree
    rel = parsed["aag.graph.relationships"].sql(dialect="databricks")
    assert "CLUSTER BY (source_node_id)" in rel and "'delta.enableChangeDataFeed'='true'" in rel.replace(
        " ", ""
    )
    nodes = parsed["aag.graph.nodes"].sql(dialect="databricks")
    assert "'delta.enableChangeDataFeed'='true'" in nodes.replace(" ", "")
    # Every table monitoring reads exists in the setup.
    from aag.service.monitoring import DATABRICKS_TABLES

    for table in DATABRICKS_TABLES.values():
        assert f"aag.{table}" in parsed, table


@pytest.mark.spark
def test_config_sql_loads_the_seeds_on_spark(spark_engine):
    spark = spark_engine.spark
    spark.sql("CREATE DATABASE IF NOT EXISTS config")
    try:
        _run_setup(spark, "03_config.sql")
        for name in CONFIG_FILES:
            table = name.removesuffix(".csv")
            rows = spark.sql(f"SELECT * FROM config.{table}").toArrow()
            lines = (default_config_dir() / name).read_text(encoding="utf-8").strip().splitlines()
            assert rows.num_rows == len(lines) - 1, table
        registry = spark.sql("SELECT * FROM config.identity_rules").toArrow().to_pylist()
        assert any("record's own id" in (r["description"] or "") for r in registry)
    finally:
        for name in CONFIG_FILES:
            spark.sql(f"DROP TABLE IF EXISTS config.{name.removesuffix('.csv')}")


# -- the catalog-table store ---------------------------------------------------------------


class _CatalogEngine(Engine):
    """Records statements; has what a Databricks Spark session has."""

    dialect = "spark"
    name = "fake-databricks"
    capabilities = frozenset({Capability.CATALOG_TABLES, Capability.MERGE})

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.native: list[str] = []

    def register(self, name, table):  # pragma: no cover - not used
        raise NotImplementedError

    def query(self, sql):  # pragma: no cover - not used
        raise NotImplementedError

    def materialize(self, name, sql):  # pragma: no cover - not used
        raise NotImplementedError

    def view(self, name, sql):  # pragma: no cover - not used
        raise NotImplementedError

    def drop(self, name):  # pragma: no cover - not used
        raise NotImplementedError

    def execute(self, sql):
        self.executed.append(sql)

    def execute_native(self, sql):
        self.native.append(sql)


CHANGE_SQL = ChangeSql(
    nodes="SELECT * FROM batch_new_nodes",
    replace_keys="SELECT * FROM rule_out_keys UNION ALL SELECT * FROM identity_out_keys",
    edge_rows="SELECT * FROM rule_out_rows",
    log_append="SELECT * FROM rule_out_log",
)


def _change(keys: int, counts: dict[str, int]) -> GraphChange:
    replace = pa.table(
        {c: pa.array(["k"] * keys, pa.string()) for c in ("source_node_id", "rel_type", "source_system")}
    )
    return GraphChange(
        nodes=None, replace_keys=replace, edge_rows=None, log_append=None, counts=counts, sql=CHANGE_SQL
    )


def test_merge_is_one_databricks_merge_with_delete_markers():
    text = merge_relationships_sql("aag.graph.relationships", CHANGE_SQL)
    tree = sqlglot.parse_one(text, read="databricks")
    assert isinstance(tree, exp.Merge)
    assert tree.this.sql(dialect="databricks") == "aag.graph.relationships AS t"
    on = tree.args["on"].sql(dialect="databricks")
    for column in ("source_node_id", "rel_type", "source_system"):
        assert f"t.{column} = s.{column}" in on
    whens = tree.args["whens"].sql(dialect="databricks")
    assert "WHEN MATCHED THEN DELETE" in whens
    assert "WHEN NOT MATCHED AND s._aag_op = 'insert' THEN INSERT" in whens
    # Re-generating from the parsed tree gives the same statement: nothing sqlglot dropped.
    assert sqlglot.parse_one(tree.sql(dialect="databricks"), read="databricks") == tree


def test_commit_statements_follow_the_engine_capabilities():
    engine = _CatalogEngine()
    store = SparkTableGraphStore(engine, "aag.graph")
    assert store.merge
    only_new = store.commit_statements(_change(0, {"nodes": 3, "log": 2, "edges": 5}))
    assert [s.sql.split()[0:3] for s in only_new] == [
        ["INSERT", "INTO", "aag.graph.nodes"],
        ["INSERT", "INTO", "aag.graph.edge_events"],
        ["INSERT", "INTO", "aag.graph.relationships"],
    ]
    replacing = store.commit_statements(_change(2, {"edges": 5}))
    assert len(replacing) == 1 and replacing[0].sql.startswith("MERGE INTO aag.graph.relationships")
    # The INSERTs and the MERGE are canonical SQL: DuckDB's dialect reads them.
    for statement in only_new + replacing:
        assert not statement.native
        assert not isinstance(sqlglot.parse_one(statement.sql, read="duckdb"), exp.Command)
    store.commit(_change(0, {}))
    assert engine.executed == [] and engine.native == []  # nothing to write, no statement
    store.create()
    # The schema is canonical; the Delta DDL (CLUSTER BY, TBLPROPERTIES) is Spark's own.
    assert engine.executed == ["CREATE SCHEMA IF NOT EXISTS aag.graph"]
    assert [s.split()[5] for s in engine.native] == [
        "aag.graph.nodes",
        "aag.graph.relationships",
        "aag.graph.edge_events",
    ]
    assert all("CLUSTER BY" in s and "TBLPROPERTIES" in s for s in engine.native)
    # Without MERGE (Spark without Delta Lake), the same change rebuilds the table instead,
    # with Spark's CREATE TABLE ... USING PARQUET AS and qualified rename (native).
    engine.capabilities = frozenset({Capability.CATALOG_TABLES})
    fallback = SparkTableGraphStore(engine, "aag.graph").commit_statements(_change(2, {"edges": 5}))
    assert not any("MERGE" in s.sql for s in fallback)
    assert [s.native for s in fallback] == [False, True, False, True]
    # Scans are SQL the engine runs in place.
    assert isinstance(store.scan_relationships(pa.table({"source_node_id": ["x"]})), SqlScan)


def test_names_spliced_into_the_store_sql_must_be_plain():
    """Catalog, schema and table names go into the SQL unquoted: anything else is refused."""
    from aag.databricks.job import commit_pending
    from aag.databricks.store import SparkTableBatchLog

    engine = _CatalogEngine()
    for bad in ("aag.graph; DROP TABLE x", "a-b.graph", "`aag`.graph", "a.b.c.d", ""):
        with pytest.raises(ValueError, match="not a plain"):
            SparkTableGraphStore(engine, bad)
        with pytest.raises(ValueError, match="not a plain"):
            SparkTableBatchLog(engine, bad)
    for bad in ("aag.graph", "aag'--"):
        with pytest.raises(ValueError, match=r"must be one name|not a plain"):
            commit_pending(None, bad)
    assert SparkTableGraphStore(engine, "spark_catalog.graph").relationships_table == (
        "spark_catalog.graph.relationships"
    )


def test_the_embedded_engine_cannot_hold_catalog_tables(duckdb_engine):
    with pytest.raises(TypeError):
        SparkTableGraphStore(duckdb_engine)


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["source_node_id"], row["rel_type"], row["source_system"])


def _edge(row: dict[str, Any]) -> tuple[Any, ...]:
    """An edge row as a comparable tuple (map properties as sorted pairs)."""
    props = row["properties"]
    pairs = sorted(props.items() if isinstance(props, dict) else props or [])
    return (*(row[c] for c in RELATIONSHIPS.names if c != "properties"), tuple(pairs))


@pytest.mark.spark
@pytest.mark.parametrize("merge", [True, False], ids=["delta-merge", "rebuild"])
def test_merge_source_rows_and_the_fallback_commit_on_spark(spark_engine, duckdb_engine, merge):
    """The commit on Spark tables: a real Delta MERGE, or (an engine without MERGE) the rebuild."""
    from aag.engine.spark import SparkEngine

    engine = spark_engine if merge else SparkEngine(spark_engine.spark, merge=False)
    assert (Capability.MERGE in engine.capabilities) is merge
    spark = engine.spark
    engine.execute("DROP SCHEMA IF EXISTS aag_store_test CASCADE")
    store = SparkTableGraphStore(engine, "aag_store_test")
    store.create()
    table = store.relationships_table
    for name in (store.nodes_table, table, store.edge_events_table):
        if merge:
            _assert_real_delta(spark, name)
        else:
            assert _detail(spark, name)["format"].lower() == "parquet", name
    reference = MemoryGraphStore()
    batches = [
        # c3's rows are never replaced: they share files with replaced rows, which a MERGE
        # on a table with deletion vectors marks instead of rewriting.
        [Ev("c1", "A", 0, "e1"), Ev("c2", "B", 0, "e1"), Ev("c3", "D", 0, "e0")],
        [Ev("c1", "A", 4, "e2"), Ev("c1", "C", 5, "e3"), Ev("c2", None, 6, "e4")],
        [Ev("c1", "B", 3, "e5")],
    ]
    from aag.pipeline import plan_change
    from rulekit import events_table

    merges = 0
    for n, batch in enumerate(batches):
        apply(duckdb_engine, reference, batch, batch=f"b{n}")
        engine.register("batch_events", events_table(batch, f"b{n}"))
        engine.register("batch_nodes", NODES.empty_table())
        plan = plan_change(engine, store)
        try:
            change = plan.change()
            statements_ = store.commit_statements(change)
            assert any(s.sql.startswith("MERGE INTO") for s in statements_) is (
                merge and change.replace_keys.num_rows > 0
            )
            if change.replace_keys.num_rows:
                # The rows the MERGE reads: one delete marker per key, then the key's
                # complete new row set.
                assert change.sql is not None
                source = engine.query(merge_source_sql(change.sql)).to_pylist()
                markers = {_key(r) for r in source if r["_aag_op"] == "delete"}
                keys = {tuple(r.values()) for r in change.replace_keys.to_pylist()}
                assert markers == keys and sum(r["_aag_op"] == "delete" for r in source) == len(keys)
                inserts = [r for r in source if r["_aag_op"] == "insert"]
                assert len(inserts) == change.counts["edges"]
                assert set(RELATIONSHIPS.names) < set(source[0])
                replaced = [r for r in store.relationships().to_pylist() if _key(r) in keys]
            store.commit(change)
        finally:
            plan.release()
        if not (merge and change.replace_keys.num_rows):
            continue
        merges += 1
        last = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").collect()[0].asDict()
        assert last["operation"] == "MERGE", last["operation"]
        metrics = {k: int(v) for k, v in last["operationMetrics"].items()}
        assert metrics["numTargetRowsDeleted"] == len(replaced), metrics
        assert metrics["numTargetRowsInserted"] == len(inserts), metrics
        # The change data feed of that commit is exactly the replaced rows (deleted) and
        # the keys' new rows (inserted); a MERGE that only deletes and inserts has no
        # update pre- or post-images.
        changes = spark.sql(f"SELECT * FROM table_changes('{table}', {last['version']})").toArrow()
        by_type: dict[str, list[tuple[Any, ...]]] = {}
        for row in changes.to_pylist():
            assert row["_commit_version"] == last["version"]
            by_type.setdefault(row["_change_type"], []).append(_edge(row))
        assert set(by_type) == {"delete", "insert"}, set(by_type)
        assert sorted(by_type["delete"], key=repr) == sorted(map(_edge, replaced), key=repr)
        assert sorted(by_type["insert"], key=repr) == sorted(map(_edge, inserts), key=repr)
        if n == 1:
            # c3 kept its rows in the files the MERGE touched: they were marked, not rewritten.
            assert metrics["numTargetDeletionVectorsAdded"] > 0, metrics
    assert merges == (2 if merge else 0)
    assert versions(store) == versions(reference)


# -- pipeline ------------------------------------------------------------------------------


@pytest.mark.spark
def test_pipeline_passes_spark_pipelines_dry_run(tmp_path):
    """The declarative pipeline, as deployed, analyses cleanly with open-source SDP."""
    project = tmp_path / "pipeline"
    shutil.copytree(ROOT / "databricks" / "pipeline", project)
    landing = tmp_path / "landing"
    from aag.config import load_config

    for spec in load_config().objects:
        (landing / spec.source_system / spec.source_object).mkdir(parents=True, exist_ok=True)
    spec_path = project / "spark-pipeline.yml"
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    spec["storage"] = (tmp_path / "storage").as_uri()
    spec["configuration"]["aag.landing.path"] = str(landing)
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
    }
    done = subprocess.run(
        [str(bin_dir / "spark-pipelines"), "dry-run", "--spec", str(spec_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Run is COMPLETED" in log, log[-4000:]


def test_pipeline_declares_every_object_with_the_extractor_sql():
    from aag.config import load_config
    from aag.databricks.lakeflow import define
    from aag.sources import extractor_for
    from aag.sources.base import LandingExtractor
    from aag.sources.history import FieldHistoryExtractor

    declared: list[tuple[str, str]] = []
    queries: dict[str, Any] = {}

    class _Recorder:
        def __getattr__(self, kind):
            def decorator(*args, name=None, **kwargs):
                def register(fn):
                    declared.append((kind, name))
                    queries[name] = fn
                    return fn

                return register

            return decorator

    names = define(spark=None, dp=_Recorder(), conf={"aag.bronze.mode": "files"})
    kinds = dict((n, k) for k, n in declared)
    config = load_config()
    for spec in config.objects:
        key = f"{spec.source_system}_{spec.source_object}".lower()
        extractor = extractor_for(spec, config)
        assert kinds[f"bronze.{key}"] == "table"
        assert kinds[f"aag_quarantine_{key}"] == "temporary_view"
        if isinstance(extractor, LandingExtractor):
            # Rows that only land (ADR6, CDHDR): checked, kept for another object to join.
            assert spec.source_object in {"ADR6", "CDHDR"}
            assert f"aag_events_{key}" not in kinds
            continue
        assert kinds[f"aag_events_{key}"] == "temporary_view"
        if isinstance(extractor, FieldHistoryExtractor):
            # Field histories and change documents are pivoted into their owner's columns.
            assert extractor.belongs_to
            assert kinds[f"aag_enriched_{key}"] == "temporary_view"
            # The view's SQL is the extractor's pivot, transpiled: the owner's field columns.
            sql = queries[f"aag_enriched_{key}"].__defaults__[0]
            owner_fields = [row.source_field for row in extractor.spec.attributes]
            assert all(f"`_changes:{field}`" in sql for field in owner_fields), sql
    histories = [s for s in config.objects if isinstance(extractor_for(s, config), FieldHistoryExtractor)]
    assert {s.source_object for s in histories} == {"ContactHistory", "CDPOS"}
    assert kinds["graph.field_events"] == "materialized_view"
    assert kinds["graph.landed_batches"] == "materialized_view"
    assert {"graph.field_events", "graph.node_candidates", "graph.extract_quarantine"} <= set(names)


def test_an_empty_source_setting_leaves_the_object_out_in_tables_mode():
    """The bundle's ``salesforce_history_table`` defaults to "": no ContactHistory datasets then."""
    from aag.databricks.lakeflow import define

    class _Names:
        def __getattr__(self, kind):
            return lambda *args, **kwargs: lambda fn: fn

    tables = {"aag.bronze.mode": "tables", "aag.source.salesforce.Contact": "fivetran.salesforce.contact"}
    for history, declared in (("", False), ("  ", False), ("fivetran.salesforce.contact_history", True)):
        conf = {**tables, "aag.source.salesforce.ContactHistory": history}
        names = define(
            spark=None, dp=_Names(), conf={**conf, "aag.shape.salesforce.ContactHistory": "fivetran"}
        )
        assert "bronze.salesforce_contact" in names
        assert ("bronze.salesforce_contacthistory" in names) is declared, (history, names)
    pipeline = _resources()["pipelines"]["aag_pipeline"]["configuration"]
    assert pipeline["aag.source.salesforce.ContactHistory"] == "${var.salesforce_history_table}"
    assert _yaml(ROOT / "databricks.yml")["variables"]["salesforce_history_table"]["default"] == ""


# -- bundle ----------------------------------------------------------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _bundle_files() -> list[Path]:
    """``databricks.yml`` and the resource files its ``include`` globs name (relative to it)."""
    bundle = _yaml(ROOT / "databricks.yml")
    return [ROOT / "databricks.yml", *(p for g in bundle["include"] for p in sorted(ROOT.glob(g)))]


def _resources() -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = {}
    for path in _bundle_files():
        for kind, items in (_yaml(path).get("resources") or {}).items():
            resources.setdefault(kind, {}).update(items)
    return resources


# The fields the Databricks CLI rewrites as local paths (bundle/config/mutator/paths/*.go in
# github.com/databricks/cli), each resolved against the folder of the file that sets it.
_TASK_PATHS = {
    ("notebook_task", "notebook_path"): "notebook",
    ("spark_python_task", "python_file"): "file",
    ("dbt_task", "project_directory"): "directory",
    ("sql_task", "file", "path"): "file",
    ("libraries", "*", "requirements"): "file",
    ("libraries", "*", "whl"): "local library",
    ("libraries", "*", "jar"): "local library",
}
_BUNDLE_PATHS = {
    ("artifacts", "*", "path"): "directory",
    **{("resources", "jobs", "*", "tasks", "*", *k): v for k, v in _TASK_PATHS.items()},
    **{
        ("resources", "jobs", "*", "tasks", "*", "for_each_task", "task", *k): v
        for k, v in _TASK_PATHS.items()
    },
    ("resources", "jobs", "*", "environments", "*", "spec", "dependencies", "*"): "dependency",
    ("resources", "pipelines", "*", "libraries", "*", "notebook", "path"): "notebook",
    ("resources", "pipelines", "*", "libraries", "*", "file", "path"): "file",
    ("resources", "pipelines", "*", "libraries", "*", "glob", "include"): "glob",
    ("resources", "pipelines", "*", "root_path"): "directory",
    ("resources", "pipelines", "*", "environment", "dependencies", "*"): "dependency",
}


def _matches(node: object, pattern: tuple[str, ...], where: str = "") -> list[tuple[str, object]]:
    if not pattern:
        return [(where, node)]
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, list) and head == "*":
        children = [(f"{where}[{i}]", item) for i, item in enumerate(node)]
    elif isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        children = [(f"{where}.{k}".lstrip("."), node[k]) for k in keys]
    else:
        return []
    return [m for name, child in children for m in _matches(child, rest, name)]


def bundle_paths() -> list[tuple[str, str, str, str, Path]]:
    """Every local path of the bundle: (file, field, kind, value, path), resolved as the CLI does."""
    out = []
    for path in _bundle_files():
        doc = _yaml(path)
        for scope in [doc, *((doc.get("targets") or {}).values())]:
            for pattern, kind in _BUNDLE_PATHS.items():
                for field, value in _matches(scope, pattern):
                    text = str(value)
                    if kind == "dependency" and not text.startswith(("./", "../")):
                        continue  # a PyPI requirement or a workspace/volume path, not a local file
                    if "://" in text or text.startswith(("/Workspace", "/Volumes", "dbfs:")):
                        continue
                    out.append((path.relative_to(ROOT).as_posix(), field, kind, text, path.parent / text))
    return out


def _wheel_dirs() -> set[Path]:
    """Folders the bundle's wheel artifacts are built into (``--wheel-dir`` under the artifact path)."""
    dirs = set()
    bundle = _yaml(ROOT / "databricks.yml")
    for artifact in bundle["artifacts"].values():
        built = re.search(r"--wheel-dir\s+(\S+)", artifact["build"])
        assert built, artifact["build"]
        dirs.add(((ROOT / artifact["path"]) / built[1]).resolve())
    return dirs


def test_every_local_path_in_the_bundle_resolves_like_the_cli():
    """Relative paths in a bundle file are relative to that file's folder (not the bundle root).

    A path the CLI cannot find fails ``bundle validate``/``deploy``; a wheel glob must point
    where the artifact build writes the wheel, which exists only after the build.
    """
    paths = bundle_paths()
    kinds = {kind for _, _, kind, _, _ in paths}
    # The walk finds what the bundle declares (a pattern that matched nothing would hide a typo).
    assert {"directory", "file", "dependency"} <= kinds, kinds
    problems = []
    for source, field, kind, text, path in paths:
        resolved = path.resolve()
        if kind in ("file", "notebook"):
            # A notebook may be named without its extension.
            suffixes = (".py", ".ipynb", ".sql") if kind == "notebook" else ()
            ok = resolved.is_file() or any(resolved.with_suffix(s).is_file() for s in suffixes)
        elif kind == "directory":
            ok = resolved.is_dir()
        elif kind == "glob":
            ok = bool(list(resolved.parent.glob(resolved.name)))
        else:  # a local wheel: a glob in the folder the artifact build writes to
            ok = resolved.suffix == ".whl" and resolved.parent in _wheel_dirs()
        if not ok:
            problems.append(f"{source}: {field} = {text} (resolves to {resolved})")
    assert not problems, "paths the Databricks CLI would not find:\n" + "\n".join(problems)
    # The dbt tasks point at the dbt project itself.
    for _, field, _, _, path in paths:
        if field.endswith("dbt_task.project_directory"):
            assert (path / "dbt_project.yml").is_file(), field


def test_dbt_tasks_follow_the_jobs_api_and_find_their_profile():
    """Jobs API: ``profiles_directory`` only without ``warehouse_id``; ``catalog`` and ``schema``
    only with it. Without a warehouse the task runs dbt with the project's own profiles.yml,
    so the environment variables that profile's target needs must be set on the task's cluster.
    """
    job = _resources()["jobs"]["aag_ingest"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job.get("job_clusters", [])}
    dbt_tasks = [t for t in job["tasks"] if "dbt_task" in t]
    assert len(dbt_tasks) == 2
    for task in dbt_tasks:
        dbt = task["dbt_task"]
        key = task["task_key"]
        assert not ("warehouse_id" in dbt and "profiles_directory" in dbt), key
        if "warehouse_id" in dbt:
            continue  # Databricks writes the profile itself
        assert not {"catalog", "schema"} & set(dbt), f"{key}: catalog/schema need warehouse_id"
        project = (ROOT / "databricks" / "resources" / dbt["project_directory"]).resolve()
        profiles = _yaml(project / dbt.get("profiles_directory", ".") / "profiles.yml")
        profile = profiles[_yaml(project / "dbt_project.yml")["profile"]]
        for command in dbt["commands"]:
            # Each command names its target: the profile's default one is the local DuckDB.
            target = re.search(r"--target[ =](\S+)", command)
            assert target, f"{key}: {command} names no --target"
            output = profile["outputs"][target[1]]
            needed = set(re.findall(r"env_var\(\s*'(\w+)'\s*\)", " ".join(map(str, output.values()))))
            provided = set(clusters[task["job_cluster_key"]].get("spark_env_vars", {}))
            assert needed and needed <= provided, f"{key}: {command} needs {sorted(needed - provided)}"


# PySpark API of each serverless environment version (Databricks Connect 14.3, 15.4 and 16.4
# are Spark 3.5 clients; 17.x, in version 4, is Spark 4.0).
_SERVERLESS_PYSPARK = {"1": (3, 5), "2": (3, 5), "3": (3, 5), "4": (4, 0)}


def test_commit_task_environment_has_the_pyspark_api_the_code_calls():
    """The commit task runs aag.engine.spark, which moves Arrow tables with
    ``createDataFrame(pyarrow.Table)`` and ``DataFrame.toArrow()`` on PySpark 4.0 and later and
    with pandas and ``_collect_as_arrow`` on 3.5 (``create_frame``, ``collect_arrow``): with
    both, every serverless environment version fits; with the 4.0 API alone, 4 or later."""
    engine = (ROOT / "src" / "aag" / "engine" / "spark.py").read_text(encoding="utf-8")
    fallbacks = "pyspark_version() >= (4, 0)" in engine and "_collect_as_arrow" in engine
    needs = (3, 5) if fallbacks else (4, 0)
    jobs = _resources()["jobs"]
    used_by = {}
    for name in ("aag_ingest", "aag_erase"):
        job = jobs[name]
        specs = {e["environment_key"]: e["spec"] for e in job["environments"]}
        used = [t for t in job["tasks"] if "environment_key" in t]
        used_by[name] = [t["task_key"] for t in used]
        for task in used:
            spec = specs[task["environment_key"]]
            assert "client" not in spec, "the Jobs API replaced spec.client by spec.environment_version"
            assert _SERVERLESS_PYSPARK[str(spec["environment_version"])] >= needs
    assert used_by == {"aag_ingest": ["graph_commit"], "aag_erase": ["erase"]}


class _Spark35Session:
    """A real session seen through the PySpark 3.5 API: its ``conf`` has no ``getAll``."""

    class _Conf:
        def __init__(self, conf: object) -> None:
            self._conf = conf

        def get(self, key: str, default: str | None = None) -> str | None:
            value: str | None = self._conf.get(key, default)  # type: ignore[attr-defined]
            return value

    def __init__(self, spark: object) -> None:
        self._spark = spark
        self.conf = self._Conf(spark.conf)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._spark, name)


class _Spark35Frame:
    """A real DataFrame seen through the PySpark 3.5 API: no ``toArrow``."""

    hidden: tuple[str, ...] = ("toArrow",)

    def __init__(self, df: object) -> None:
        self._df = df

    def __getattr__(self, name: str) -> object:
        if name in self.hidden:
            raise AttributeError(name)
        return getattr(self._df, name)


class _Connect35Frame(_Spark35Frame):
    """A Spark Connect 3.5 DataFrame: neither ``toArrow`` nor the classic ``_collect_as_arrow``."""

    hidden = ("toArrow", "_collect_as_arrow")


@pytest.mark.spark
def test_the_engine_moves_arrow_tables_through_the_pyspark_35_api(spark_engine, monkeypatch):
    """``create_frame`` and ``collect_arrow`` on the 3.5 paths give what the 4.x API gives:
    UTC timestamps, maps, nulls of every type, view-layout strings, an empty table."""
    from datetime import UTC, datetime

    from aag.engine import spark as spark_module

    spark = spark_engine.spark
    table = pa.table(
        {
            "id": pa.array(["a", "b", None], pa.string_view()),
            "at": pa.array(
                [datetime(2024, 3, 1, 12, 30, 1, 5, tzinfo=UTC), None, datetime(1900, 1, 1, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "n": pa.array([1, None, 2**40], pa.int64()),
            "ok": pa.array([True, None, False]),
            "x": pa.array([0.5, None, -1.0]),
            "props": pa.array([[("k", "v"), ("j", None)], None, []], pa.map_(pa.string(), pa.string())),
        }
    )
    expected = spark_module.collect_arrow(spark_module.create_frame(spark, table))
    assert expected.column("at").type == pa.timestamp("us", tz="UTC")
    assert expected.to_pylist() == table.cast(spark_module.spark_arrow_schema(table.schema)).to_pylist()
    monkeypatch.setattr(spark_module, "pyspark_version", lambda: (3, 5))
    for data in (table, table.slice(0, 0)):
        df = spark_module.create_frame(spark, data)
        want = expected.slice(0, data.num_rows)
        for frame in (df, _Spark35Frame(df), _Connect35Frame(df)):
            got = spark_module.collect_arrow(frame)
            assert got.schema == want.schema, type(frame).__name__
            assert got.to_pylist() == want.to_pylist(), type(frame).__name__


class _Recorder:
    """Stands in for ``pyspark.pipelines``: records the names of the declared datasets."""

    def __init__(self) -> None:
        self.declared: list[str] = []

    def __getattr__(self, kind: str) -> object:
        def decorator(*args: object, name: str = "", **kwargs: object) -> object:
            self.declared.append(name)
            return lambda fn: fn

        return decorator


@pytest.mark.spark
def test_pipeline_reads_its_settings_on_pyspark_35_and_4(spark_engine):
    from aag.databricks.lakeflow import define, session_conf

    spark = spark_engine.spark
    keys = {"aag.bronze.mode": "files", "aag.objects": "salesforce.Contact", "aag.test.marker": "x"}
    try:
        for key, value in keys.items():
            spark.conf.set(key, value)
        for session in (spark, _Spark35Session(spark)):
            assert {k: v for k, v in session_conf(session, "aag.").items() if k in keys} == keys
            recorder = _Recorder()
            define(session, dp=recorder)
            bronze = [n for n in recorder.declared if n.startswith("bronze.")]
            assert bronze == ["bronze.salesforce_contact"]
    finally:
        for key in keys:
            spark.conf.unset(key)


def test_no_cloud_specific_node_type_is_hard_coded():
    """Node types differ per cloud (Standard_* is Azure only): the dbt cluster's is a variable."""
    bundle = _yaml(ROOT / "databricks.yml")
    for job in _resources()["jobs"].values():
        for cluster in job.get("job_clusters", []):
            node_type = cluster["new_cluster"]["node_type_id"]
            match = re.fullmatch(r"\$\{var\.(\w+)\}", node_type)
            assert match, f"{cluster['job_cluster_key']}: node_type_id {node_type} is not a variable"
            variable = bundle["variables"][match[1]]
            assert "default" not in variable, "a default node type would fit one cloud only"
            for cloud in ("AWS", "Azure", "GCP"):
                assert cloud in variable["description"], cloud


def test_sql_tasks_get_every_parameter_their_file_uses():
    """Each ``:name`` marker of a setup file is a task parameter, fed by a job parameter."""
    bundle = _yaml(ROOT / "databricks.yml")
    for job in _resources()["jobs"].values():
        job_parameters = {p["name"]: p["default"] for p in job.get("parameters", [])}
        for task in job["tasks"]:
            if "sql_task" not in task:
                continue
            sql = (ROOT / "databricks" / "resources" / task["sql_task"]["file"]["path"]).read_text()
            markers = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", sql))
            given = task["sql_task"].get("parameters", {})
            assert markers <= set(given), f"{task['task_key']}: missing {sorted(markers - set(given))}"
            for value in given.values():
                name = re.fullmatch(r"\{\{job\.parameters\.(\w+)\}\}", value)
                assert name and name[1] in job_parameters, value
    parameters = {p["name"]: p["default"] for p in _resources()["jobs"]["aag_setup"]["parameters"]}
    assert parameters["managed_location"] == "${var.catalog_managed_location}"
    assert bundle["variables"]["catalog_managed_location"]["default"] == ""


@pytest.mark.spark
def test_catalog_sql_takes_an_optional_managed_location(spark_engine):
    """The CREATE CATALOG statement 01_catalog.sql builds, evaluated by Spark SQL."""
    from pyspark.errors import PySparkException

    from aag.databricks.job import CREATE_CATALOG_VARIABLE, catalog_sql

    spark = spark_engine.spark
    declare, build, execute = list(statements(catalog_sql()))[:3]

    def built(location: str) -> str:
        spark.sql(declare)
        spark.sql(build, args={"catalog": "aag", "managed_location": location})
        return str(spark.sql(f"SELECT {CREATE_CATALOG_VARIABLE}").collect()[0][0])

    assert built("") == "CREATE CATALOG IF NOT EXISTS IDENTIFIER(:catalog)"
    assert built("s3://bucket/uc/aag") == (
        "CREATE CATALOG IF NOT EXISTS IDENTIFIER(:catalog) MANAGED LOCATION 's3://bucket/uc/aag'"
    )
    for bad in ("s3://b/x' DROP", "abfss://c@a.dfs.core.windows.net/x\\y"):
        with pytest.raises(PySparkException, match="must not contain a quote"):
            built(bad)
    # EXECUTE IMMEDIATE runs the built text with the catalog bound (a schema stands in for
    # the catalog, which local Spark cannot create).
    spark.sql(f"SET VAR {CREATE_CATALOG_VARIABLE} = 'CREATE SCHEMA IF NOT EXISTS IDENTIFIER(:catalog)'")
    try:
        spark.sql(execute, args={"catalog": "aag_execute_test"})
        assert spark.catalog.databaseExists("aag_execute_test")
    finally:
        spark.sql("DROP SCHEMA IF EXISTS aag_execute_test")


def test_bundle_deploys_pipeline_job_and_dbt_with_dev_and_prod():
    bundle = _yaml(ROOT / "databricks.yml")
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["targets"]["dev"]["mode"] == "development"
    assert bundle["targets"]["prod"]["mode"] == "production"
    resources = _resources()
    pipeline = resources["pipelines"]["aag_pipeline"]
    assert pipeline["configuration"]["aag.schema.graph"] == "graph"
    job = resources["jobs"]["aag_ingest"]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == ["pipeline", "graph_commit", "dbt_run", "dbt_test"]
    assert tasks["pipeline"]["pipeline_task"]["pipeline_id"] == "${resources.pipelines.aag_pipeline.id}"
    assert tasks["graph_commit"]["python_wheel_task"]["entry_point"] == "aag-databricks"
    for key, command in (
        ("dbt_run", "dbt run --target databricks"),
        ("dbt_test", "dbt test --target databricks"),
    ):
        assert command in tasks[key]["dbt_task"]["commands"]
    assert [d["task_key"] for d in tasks["dbt_test"]["depends_on"]] == ["dbt_run"]
    erase = {t["task_key"]: t for t in resources["jobs"]["aag_erase"]["tasks"]}
    assert list(erase) == ["erase", "ingest"]
    wheel = erase["erase"]["python_wheel_task"]
    assert wheel["entry_point"] == "aag-databricks" and wheel["parameters"][0] == "erase"
    # Every job parameter reaches the task, under the option main() reads.
    names = {p["name"] for p in resources["jobs"]["aag_erase"]["parameters"]}
    passed = dict(zip(wheel["parameters"][1::2], wheel["parameters"][2::2], strict=True))
    from_job = {v for v in passed.values() if v.startswith("{{")}
    assert from_job == {f"{{{{job.parameters.{n}}}}}" for n in names}
    assert set(passed) == {"--catalog", "--customer", "--requested-by"}
    # After the erase, one run of the ingest job: the pipeline update recomputes the
    # materialized views from the erased bronze and dbt rebuilds gold without the customer.
    assert [d["task_key"] for d in erase["ingest"]["depends_on"]] == ["erase"]
    assert erase["ingest"]["run_job_task"] == {"job_id": "${resources.jobs.aag_ingest.id}"}
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'aag-databricks = "aag.databricks:main"' in pyproject


# -- dbt on the databricks target -------------------------------------------------------------


def test_the_bundle_syncs_no_symlink_and_dbt_reads_the_packaged_seeds():
    """A bundle sync skips symlinked folders (and a Git folder may not keep links), so the
    repository tracks none; the dbt project names the packaged seed folder itself."""
    tracked = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in tracked if line.startswith("120000 ")]
    assert links == [], f"symlinks a bundle sync would skip: {links}"
    project = ROOT / "dbt"
    seed_dirs = {(project / p).resolve() for p in _yaml(project / "dbt_project.yml")["seed-paths"]}
    assert default_config_dir().resolve() in seed_dirs
    for name in CONFIG_FILES:
        assert (default_config_dir() / name).is_file(), name


def test_dbt_databricks_target_reads_the_graph_schema_the_setup_creates(tmp_path):
    """`dbt parse` + `dbt compile` offline: gold reads <catalog>.graph.{nodes,relationships}.

    Placeholder credentials and no introspection, so nothing connects; the catalog is the
    one the job passes (AAG_DATABRICKS_CATALOG), the schema the one 02_tables.sql creates.
    """
    env = {
        **os.environ,
        "DATABRICKS_HOST": "dbc-00000000-0000.cloud.databricks.com",
        "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/0000000000000000",
        "DATABRICKS_TOKEN": "offline-placeholder",
        "AAG_DATABRICKS_CATALOG": "aag_ci",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt_dir = ROOT / "dbt"
    common = ["--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir), "--target", "databricks"]
    common += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
    for command in (["parse"], ["compile", "--no-introspect", "--no-populate-cache"]):
        done = subprocess.run(
            [*dbt, *command, *common], capture_output=True, text=True, timeout=300, env=env, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    compiled = "\n".join(p.read_text() for p in (tmp_path / "target" / "compiled").rglob("*.sql"))
    created = _plain(setup_sql()["02_tables.sql"])
    for table in ("nodes", "relationships"):
        assert f"`aag_ci`.`graph`.`{table}`" in compiled, table
        assert f"aag.graph.{table} (" in created, table
    assert "`silver`.`relationships`" not in compiled and "`silver`.`nodes`" not in compiled
    # The seeds come from the packaged folder (what ref() of a config table needs to parse).
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"].values()
    seeds = {n["name"]: n["original_file_path"] for n in nodes if n["resource_type"] == "seed"}
    assert seeds == {name.removesuffix(".csv"): f"../src/aag/defaults/seeds/{name}" for name in CONFIG_FILES}


# -- pipeline + commit task, end to end on local Spark ------------------------------------------


def _without_batch(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for r in rows:
        props = dict(r["properties"] or [])
        props.pop("batch_id", None)  # pipeline batches are files by path, local ones by content
        out.append(
            (
                r["source_node_id"],
                r["target_node_id"],
                r["rel_type"],
                r["updated_at"],
                r["is_current"],
                r["source_system"],
                r["source_event_id"],
                tuple(sorted(props.items())),
            )
        )
    return sorted(out)


#: Customers of the world the pipeline + commit parity test builds (tests/test_spark35.py runs
#: it on PySpark 3.5 with fewer, to stay within its time budget).
PARITY_CUSTOMERS = int(os.environ.get("AAG_PARITY_CUSTOMERS", "60"))


@pytest.mark.spark
def test_pipeline_and_commit_task_give_the_embedded_graph(tmp_path, spark_engine, duckdb_engine):
    """The Databricks flow on local Spark: pipeline datasets (in batch), then the job task.

    Every world file lands in the pipeline's landing folder; ``run_batch`` computes the
    pipeline's datasets with its own SQL, the setup DDL creates the graph tables (Delta,
    change data feed, deletion vectors), and ``commit_pending`` commits them with the
    catalog-table store: INSERTs and a real Delta MERGE. The graph must equal what the
    embedded engine builds from the same files one by one.
    """
    from aag.databricks.job import FIELD_EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE, commit_pending
    from aag.databricks.lakeflow import run_batch
    from aag.databricks.store import SparkTableBatchLog
    from aag.engine.spark import collect_arrow
    from aag.service import AagService
    from aag.service.reads import customer_profiles_of
    from aag.world import generate

    spark = spark_engine.spark
    world = generate(tmp_path / "world", PARITY_CUSTOMERS, formats="jsonl")
    # Field histories and change documents of the world's records (exact change times),
    # then the hand-written ones with every quarantine reason (tests/test_extract_parity.py).
    files = with_history_files(world.files, tmp_path / "history")
    (tmp_path / "edge").mkdir()
    files += [f for f in _other_sources(tmp_path / "edge") if f[1] in HISTORY_OBJECTS]
    reference = AagService(str(tmp_path / "duck"), engine=duckdb_engine)
    reference.init()
    landing = tmp_path / "landing"
    for system, obj, path in files:
        reference.ingest(system, obj, [path])
        folder = landing / system / obj
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / f"{path.parent.name}_{path.stem}.jsonl")
    from aag.config import load_config

    for spec in load_config().objects:
        (landing / spec.source_system / spec.source_object).mkdir(parents=True, exist_ok=True)
    _drop_setup_schemas(spark)
    try:
        datasets = run_batch(spark, {"aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        assert "graph.field_events" in datasets
        _run_setup_schemas(spark)
        _run_setup(spark, "02_tables.sql")
        store = SparkTableGraphStore(spark_engine, "spark_catalog.graph")
        assert store.merge
        for table in (store.nodes_table, store.relationships_table, store.edge_events_table):
            _assert_real_delta(spark, table)
        for table in (LEDGER_TABLE, QUARANTINE_TABLE):
            _assert_real_delta(spark, f"spark_catalog.{table}")
        done = commit_pending(spark, "spark_catalog")
        assert commit_pending(spark, "spark_catalog") == []  # every batch is in the ledger now
        graph = reference.warehouse.graph
        assert _without_batch(store.relationships().to_pylist()) == _without_batch(
            graph.relationships().to_pylist()
        )
        node_cols = ["node_id", "node_type", "value", "checksum"]
        assert sorted(store.nodes().select(node_cols).to_pylist(), key=repr) == sorted(
            graph.nodes().select(node_cols).to_pylist(), key=repr
        )
        got = customer_profiles_of(spark_engine, store.relationships(), store.nodes(), load_config(), 2)
        expected = reference.customer_profiles(2).to_pylist()
        assert sorted(got.to_pylist(), key=repr) == sorted(expected, key=repr)
        quarantined = collect_arrow(spark.sql(f"SELECT * FROM spark_catalog.{QUARANTINE_TABLE}"))
        assert _quarantine(quarantined) == _quarantine(reference.warehouse.quarantine())
        committed = {d["object"] for d in done}
        assert committed >= {"salesforce.Contact", "sap.KNA1", "segment.identifies"}
        # The histories went through the pipeline: events dated by them, and their quarantine.
        assert committed >= {f"{s}.{o}" for s, o, _ in files if o in HISTORY_OBJECTS}
        by_object = {
            r["source_object"]: r["n"]
            for r in spark.sql(
                f"SELECT source_object, count(*) AS n FROM spark_catalog.{FIELD_EVENTS_TABLE} GROUP BY 1"
            ).collect()
        }
        assert by_object.get("ContactHistory") and by_object.get("CDPOS"), by_object
        assert {r["source_object"] for r in quarantined.to_pylist()} >= set(HISTORY_OBJECTS)
        # A ledger row per landed batch, also one that yielded neither events nor quarantine
        # rows (a file of CDHDR headers only lands), with the rows it landed: the counts
        # of the embedded ledger, which counts the lines of each file.
        expected_batches = reference.warehouse.batches().to_pylist()
        assert any(not (b["field_events"] or b["rows_quarantined"]) for b in expected_batches)
        ledger = collect_arrow(
            spark.sql(f"SELECT batch_id, rows_landed, file_name FROM {LEDGER_TABLE}")
        ).to_pylist()
        assert len({r["batch_id"] for r in ledger}) == len(ledger) == len(expected_batches)
        assert sorted(r["rows_landed"] for r in ledger) == sorted(b["rows_landed"] for b in expected_batches)
        assert all(str(r["file_name"]).endswith(".jsonl") for r in ledger), ledger
        # The job writes its ledger through the batch-log seam the CLI uses: one row per
        # pipeline batch, holding that batch's field events as the pipeline counted them.
        log = SparkTableBatchLog(spark_engine, f"spark_catalog.{LEDGER_TABLE}")
        per_batch = {
            r["batch_id"]: r["n"]
            for r in spark.sql(
                f"SELECT batch_id, count(*) AS n FROM spark_catalog.{FIELD_EVENTS_TABLE} GROUP BY batch_id"
            ).collect()
        }
        assert log.committed_batches([*per_batch, "no-such-batch"]) == set(per_batch)
        rows = collect_arrow(
            spark.sql(f"SELECT batch_id, field_events, rows_quarantined, status FROM {LEDGER_TABLE}")
        ).to_pylist()
        assert {r["batch_id"]: r["field_events"] for r in rows if r["field_events"]} == per_batch
        assert len(rows) == len(expected_batches) and {r["status"] for r in rows} == {"committed"}
        _rerun_after_a_failure_before_the_ledger(spark, store)
        # The objects after the first replaced keys with MERGEs; the change data feed of
        # every commit, replayed, is the table.
        history = collect_arrow(spark.sql(f"DESCRIBE HISTORY {store.relationships_table}")).to_pylist()
        merges = [h for h in history if h["operation"] == "MERGE"]
        assert merges, [h["operation"] for h in history]
        assert sum(int(dict(h["operationMetrics"])["numTargetRowsDeleted"]) for h in merges) > 0
        feed = collect_arrow(spark.sql(f"SELECT * FROM table_changes('{store.relationships_table}', 0)"))
        net: dict[tuple[Any, ...], int] = {}
        for row in feed.to_pylist():
            step = {"insert": 1, "delete": -1}[row["_change_type"]]
            net[_edge(row)] = net.get(_edge(row), 0) + step
        replayed = sorted((k for k, n in net.items() for _ in range(n)), key=repr)
        assert replayed == sorted(map(_edge, store.relationships().to_pylist()), key=repr)
    finally:
        _drop_setup_schemas(spark)


def _quarantine(table: pa.Table) -> list[tuple[Any, ...]]:
    """Quarantine rows without their batch, row number and time (which the two paths set apart)."""
    cols = ("source_system", "source_object", "record_id", "level", "source_field", "reason", "raw")
    return sorted((tuple(r[c] for c in cols) for r in table.to_pylist()), key=repr)


def _rerun_after_a_failure_before_the_ledger(spark: Any, store: SparkTableGraphStore) -> None:
    """A task that failed after its commits but before its ledger rows is run again.

    The object with the most quarantined rows loses its ledger rows (as if the task had
    died just before writing them); the next run plans its batches again and must leave
    the graph and the quarantine as they were, and write the ledger rows back.
    """
    from aag.databricks.job import LEDGER_TABLE, QUARANTINE_TABLE, commit_pending

    def counts() -> tuple[int, int]:
        quarantined, ledger = (
            int(spark.sql(f"SELECT count(*) AS n FROM spark_catalog.{t}").collect()[0]["n"])
            for t in (QUARANTINE_TABLE, LEDGER_TABLE)
        )
        return quarantined, ledger

    top = spark.sql(
        f"SELECT source_system, source_object, count(*) AS n FROM spark_catalog.{QUARANTINE_TABLE} "
        "GROUP BY source_system, source_object ORDER BY n DESC, source_system, source_object LIMIT 1"
    ).collect()
    assert top, "the world quarantines no row: the rerun would prove nothing about quarantine"
    system, obj = top[0]["source_system"], top[0]["source_object"]
    before_edges = sorted(map(_edge, store.relationships().to_pylist()), key=repr)
    before = counts()
    spark.sql(
        f"DELETE FROM spark_catalog.{LEDGER_TABLE} "
        f"WHERE source_system = '{system}' AND source_object = '{obj}'"
    )
    assert counts()[1] < before[1]
    done = commit_pending(spark, "spark_catalog")
    assert [d["object"] for d in done] == [f"{system}.{obj}"]
    assert counts() == before
    assert sorted(map(_edge, store.relationships().to_pylist()), key=repr) == before_edges


def _events(table: pa.Table) -> list[tuple[Any, ...]]:
    """Field events without their batch id (a file's path in one mode, a commit in the other)."""
    return sorted(
        (tuple(v for k, v in row.items() if k != "batch_id") for row in table.to_pylist()), key=repr
    )


def _batch_sizes(spark: object, table: str) -> list[int]:
    rows = spark.sql(f"SELECT count(*) AS n FROM {table} GROUP BY batch_id").collect()  # type: ignore[attr-defined]
    return sorted(r["n"] for r in rows)


@pytest.mark.spark
def test_bronze_from_a_delta_change_feed_gives_the_events_of_files(tmp_path, spark_engine, duckdb_engine):
    """``aag.bronze.mode = tables``: Salesforce contacts from a Delta source table.

    The source table is what a Fivetran connector keeps: one row per record with the API's
    columns, change data feed on, each sync one commit that upserts the synced records
    (a MERGE: new records inserted, known ones updated, so the feed has pre- and
    post-images). The pipeline reads the feed (inserts and post-images, one batch per
    commit) and must give the field events of the same syncs landed as files, and the
    commit task the embedded engine's graph.
    """
    from aag.databricks.job import FIELD_EVENTS_TABLE, commit_pending
    from aag.databricks.lakeflow import run_batch
    from aag.service import AagService
    from aag.world import generate

    spark = spark_engine.spark
    world = generate(tmp_path / "world", 60, formats="jsonl")
    syncs = [path for system, obj, path in world.files if (system, obj) == ("salesforce", "Contact")]
    assert len(syncs) > 2
    reference = AagService(str(tmp_path / "duck"), engine=duckdb_engine)
    reference.init()
    landing = tmp_path / "landing"
    (landing / "salesforce" / "Contact").mkdir(parents=True)
    for path in syncs:
        reference.ingest("salesforce", "Contact", [path])
        shutil.copyfile(path, landing / "salesforce" / "Contact" / f"{path.parent.name}.jsonl")
    source = "spark_catalog.aag_fivetran.salesforce_contact"
    one = {"aag.objects": "salesforce.Contact"}
    _drop_setup_schemas(spark)
    spark.sql("DROP SCHEMA IF EXISTS aag_fivetran CASCADE")
    try:
        run_batch(spark, {**one, "aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        from_files = spark.table(FIELD_EVENTS_TABLE).toArrow()
        files_batches = _batch_sizes(spark, FIELD_EVENTS_TABLE)
        _drop_setup_schemas(spark)

        # The source table: the API's columns (types as the API's JSON gives them).
        api = spark.read.json([str(p) for p in syncs]).schema
        spark.sql("CREATE SCHEMA aag_fivetran")
        spark.createDataFrame([], api).createOrReplaceTempView("aag_sync")
        spark.sql(
            f"CREATE TABLE {source} USING DELTA "
            "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true') AS SELECT * FROM aag_sync"
        )
        for path in syncs:
            spark.read.schema(api).json(str(path)).createOrReplaceTempView("aag_sync")
            spark.sql(
                f"MERGE INTO {source} t USING aag_sync s ON t.Id = s.Id "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            )
        kinds = {
            r["_change_type"]
            for r in spark.sql(f"SELECT DISTINCT _change_type FROM table_changes('{source}', 0)").collect()
        }
        assert kinds == {"insert", "update_preimage", "update_postimage"}, kinds

        datasets = run_batch(
            spark, {**one, "aag.bronze.mode": "tables", "aag.source.salesforce.Contact": source}
        )
        assert "bronze.salesforce_contact" in datasets
        bronze = spark.sql("SELECT count(DISTINCT _batch_id) FROM bronze.salesforce_contact").collect()
        assert bronze[0][0] == len(syncs)
        from_tables = spark.table(FIELD_EVENTS_TABLE).toArrow()
        tables_batches = _batch_sizes(spark, FIELD_EVENTS_TABLE)
        assert from_tables.num_rows > 100
        assert _events(from_tables) == _events(from_files)
        assert tables_batches == files_batches

        _run_setup_schemas(spark)
        _run_setup(spark, "02_tables.sql")
        done = commit_pending(spark, "spark_catalog")
        assert [d["object"] for d in done] == ["salesforce.Contact"]
        store = SparkTableGraphStore(spark_engine, "spark_catalog.graph")
        graph = reference.warehouse.graph
        assert _without_batch(store.relationships().to_pylist()) == _without_batch(
            graph.relationships().to_pylist()
        )
        node_cols = ["node_id", "node_type", "value", "checksum"]
        assert sorted(store.nodes().select(node_cols).to_pylist(), key=repr) == sorted(
            graph.nodes().select(node_cols).to_pylist(), key=repr
        )
    finally:
        _drop_setup_schemas(spark)
        spark.sql("DROP SCHEMA IF EXISTS aag_fivetran CASCADE")


# -- connector landing shapes (aag.shape.<system>.<object>) ------------------------------------

#: Salesforce contacts as the API gives them (the registry's names), two syncs: the second
#: changes one contact's email, soft-deletes another and adds a third.
SF_API_SYNCS: list[list[dict[str, Any]]] = [
    [
        {
            "Id": "003SHAPE0000000001",
            "AccountId": "001SHAPE0000000001",
            "FirstName": "Ana",
            "LastName": "Weber",
            "Email": "ana.weber@example.com",
            "Phone": "+49 30 4745328",
            "MailingStreet": "Parkweg 22",
            "MailingCity": "Berlin",
            "MailingPostalCode": "10115",
            "MailingCountry": "Germany",
            "HasOptedOutOfEmail": False,
            "LastModifiedDate": "2024-02-13T06:45:43.000+0000",
            "IsDeleted": False,
        },
        {
            "Id": "003SHAPE0000000002",
            "AccountId": "001SHAPE0000000001",
            "FirstName": "Femi",
            "LastName": "Novak",
            "Email": "femi.novak@example.com",
            "Phone": "+43 1 1810111",
            "MailingStreet": "Hauptstr. 1",
            "MailingCity": "Wien",
            "MailingPostalCode": "1010",
            "MailingCountry": "Austria",
            "HasOptedOutOfEmail": True,
            "LastModifiedDate": "2024-02-09T08:55:45.000+0000",
            "IsDeleted": False,
        },
    ],
    [
        {
            "Id": "003SHAPE0000000001",
            "AccountId": "001SHAPE0000000001",
            "FirstName": "Ana",
            "LastName": "Weber",
            "Email": "ana@weber.example.org",
            "Phone": "+49 30 4745328",
            "MailingStreet": "Parkweg 22",
            "MailingCity": "Berlin",
            "MailingPostalCode": "10115",
            "MailingCountry": "Germany",
            "HasOptedOutOfEmail": False,
            "LastModifiedDate": "2024-03-01T10:00:00.000+0000",
            "IsDeleted": False,
        },
        {
            "Id": "003SHAPE0000000002",
            "AccountId": "001SHAPE0000000001",
            "FirstName": "Femi",
            "LastName": "Novak",
            "Email": "femi.novak@example.com",
            "Phone": "+43 1 1810111",
            "MailingStreet": "Hauptstr. 1",
            "MailingCity": "Wien",
            "MailingPostalCode": "1010",
            "MailingCountry": "Austria",
            "HasOptedOutOfEmail": True,
            "LastModifiedDate": "2024-03-02T11:30:15.000+0000",
            "IsDeleted": True,
        },
        {
            "Id": "003SHAPE0000000003",
            "AccountId": "001SHAPE0000000002",
            "FirstName": "Kai",
            "LastName": "Lind",
            "Email": "kai.lind@example.com",
            "Phone": "+46 8 123456",
            "MailingStreet": "Storgatan 5",
            "MailingCity": "Stockholm",
            "MailingPostalCode": "111 22",
            "MailingCountry": "Sweden",
            "HasOptedOutOfEmail": False,
            "LastModifiedDate": "2024-03-03T09:05:00.000+0000",
            "IsDeleted": False,
        },
    ],
]

#: The same syncs as Fivetran's Salesforce connector lands them: every API field in
#: snake_case, typed columns, plus Fivetran's own columns. Follows Fivetran's published
#: Salesforce schema as its dbt package reads it (fivetran/dbt_salesforce_source,
#: models/stg_salesforce__contact.sql: id, account_id, email, first_name, is_deleted,
#: last_modified_date, last_name, mailing_city, mailing_country, mailing_postal_code,
#: mailing_street, phone, _fivetran_synced; _fivetran_deleted marks hard deletes).
SF_FIVETRAN_DDL = (
    "id STRING, account_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "mailing_street STRING, mailing_city STRING, mailing_postal_code STRING, mailing_country STRING, "
    "has_opted_out_of_email BOOLEAN, last_modified_date TIMESTAMP, is_deleted BOOLEAN, "
    "_fivetran_synced TIMESTAMP, _fivetran_deleted BOOLEAN"
)
SF_FIVETRAN_SYNCS = [
    [
        "('003SHAPE0000000001', '001SHAPE0000000001', 'Ana', 'Weber', 'ana.weber@example.com', "
        "'+49 30 4745328', 'Parkweg 22', 'Berlin', '10115', 'Germany', false, "
        "TIMESTAMP'2024-02-13 06:45:43Z', false, TIMESTAMP'2024-02-13 07:00:00Z', false)",
        "('003SHAPE0000000002', '001SHAPE0000000001', 'Femi', 'Novak', 'femi.novak@example.com', "
        "'+43 1 1810111', 'Hauptstr. 1', 'Wien', '1010', 'Austria', true, "
        "TIMESTAMP'2024-02-09 08:55:45Z', false, TIMESTAMP'2024-02-13 07:00:00Z', false)",
    ],
    [
        "('003SHAPE0000000001', '001SHAPE0000000001', 'Ana', 'Weber', 'ana@weber.example.org', "
        "'+49 30 4745328', 'Parkweg 22', 'Berlin', '10115', 'Germany', false, "
        "TIMESTAMP'2024-03-01 10:00:00Z', false, TIMESTAMP'2024-03-04 07:00:00Z', false)",
        "('003SHAPE0000000002', '001SHAPE0000000001', 'Femi', 'Novak', 'femi.novak@example.com', "
        "'+43 1 1810111', 'Hauptstr. 1', 'Wien', '1010', 'Austria', true, "
        "TIMESTAMP'2024-03-02 11:30:15Z', true, TIMESTAMP'2024-03-04 07:00:00Z', false)",
        "('003SHAPE0000000003', '001SHAPE0000000002', 'Kai', 'Lind', 'kai.lind@example.com', "
        "'+46 8 123456', 'Storgatan 5', 'Stockholm', '111 22', 'Sweden', false, "
        "TIMESTAMP'2024-03-03 09:05:00Z', false, TIMESTAMP'2024-03-04 07:00:00Z', false)",
    ],
]

#: ContactHistory rows as the API gives them: the contacts' ``created`` rows (no field
#: AAG maps), and the change of Ana's e-mail two seconds before the record's time.
SF_HISTORY_API_SYNCS: list[list[dict[str, Any]]] = [
    [
        {
            "Id": "017SHAPE0000000001",
            "ContactId": "003SHAPE0000000001",
            "Field": "created",
            "OldValue": None,
            "NewValue": None,
            "CreatedDate": "2024-02-13T06:45:43.000+0000",
            "IsDeleted": False,
        },
    ],
    [
        {
            "Id": "017SHAPE0000000002",
            "ContactId": "003SHAPE0000000001",
            "Field": "Email",
            "OldValue": "ana.weber@example.com",
            "NewValue": "ana@weber.example.org",
            "CreatedDate": "2024-03-01T09:59:58.000+0000",
            "IsDeleted": False,
        },
        {
            "Id": "017SHAPE0000000003",
            "ContactId": "003SHAPE0000000003",
            "Field": "created",
            "OldValue": None,
            "NewValue": None,
            "CreatedDate": "2024-03-03T09:05:00.000+0000",
            "IsDeleted": False,
        },
    ],
]

#: The same rows in Fivetran's ``contact_history`` table (columns as Fivetran's Salesforce
#: source packages read it: id, contact_id, created_by_id, created_date, field, data_type,
#: old_value, new_value, is_deleted, plus _fivetran_synced).
SF_HISTORY_FIVETRAN_DDL = (
    "id STRING, contact_id STRING, created_by_id STRING, created_date TIMESTAMP, field STRING, "
    "data_type STRING, old_value STRING, new_value STRING, is_deleted BOOLEAN, _fivetran_synced TIMESTAMP"
)
SF_HISTORY_FIVETRAN_SYNCS = [
    [
        "('017SHAPE0000000001', '003SHAPE0000000001', '005SHAPE0000000001', "
        "TIMESTAMP'2024-02-13 06:45:43Z', 'created', 'EntityId', NULL, NULL, false, "
        "TIMESTAMP'2024-02-13 07:00:00Z')",
    ],
    [
        "('017SHAPE0000000002', '003SHAPE0000000001', '005SHAPE0000000001', "
        "TIMESTAMP'2024-03-01 09:59:58Z', 'Email', 'Email', 'ana.weber@example.com', "
        "'ana@weber.example.org', false, TIMESTAMP'2024-03-04 07:00:00Z')",
        "('017SHAPE0000000003', '003SHAPE0000000003', '005SHAPE0000000001', "
        "TIMESTAMP'2024-03-03 09:05:00Z', 'created', 'EntityId', NULL, NULL, false, "
        "TIMESTAMP'2024-03-04 07:00:00Z')",
    ],
]

#: Segment identify calls as the API message gives them (the registry's names): nested
#: and flat address traits, one anonymous call, one call with Segment's clock-skew fields.
SEG_API_SYNCS: list[list[dict[str, Any]]] = [
    [
        {
            "message_id": "m-shape-1",
            "user_id": "003SHAPE0000000001",
            "anonymous_id": "anon-s1",
            "timestamp": "2024-02-10T23:02:37Z",
            "received_at": "2024-02-10T23:02:39Z",
            "traits": {
                "firstName": "Ana",
                "lastName": "Weber",
                "email": "ana.weber@example.com",
                "address": {"city": "Berlin", "postalCode": "10115", "country": "Germany"},
            },
        },
        {
            "message_id": "m-shape-2",
            "user_id": None,
            "anonymous_id": "anon-s2",
            "timestamp": "2024-02-11T08:00:00Z",
            "received_at": "2024-02-11T08:00:01Z",
            "traits": {"email": "visitor@example.com", "city": "Wien", "postalCode": "1010"},
        },
    ],
    [
        {
            "message_id": "m-shape-3",
            "user_id": "003SHAPE0000000003",
            "anonymous_id": "anon-s3",
            "timestamp": "2024-03-05T12:00:02.500Z",
            "received_at": "2024-03-05T12:00:03Z",
            "sent_at": "2024-03-05T11:58:00Z",
            "original_timestamp": "2024-03-05T11:57:59.500Z",
            "traits": {
                "name": "Kai Lind",
                "phone": "+46 8 123456",
                "street": "Storgatan 5",
                "country": "Sweden",
            },
        },
    ],
]

#: The same calls in Segment's warehouse ``identifies`` table: one snake_case column per
#: trait, nested objects flattened with ``_`` (``address_city``), the message id in ``id``,
#: typed timestamps, and ``context_*`` columns. Follows Segment's published warehouse
#: schema (segment.com/docs/connections/storage/warehouses/schema: "identifies" holds the
#: traits as top-level columns; a column is filled only for a non-null value).
SEG_WAREHOUSE_DDL = (
    "id STRING, user_id STRING, anonymous_id STRING, received_at TIMESTAMP, sent_at TIMESTAMP, "
    "original_timestamp TIMESTAMP, timestamp TIMESTAMP, uuid_ts TIMESTAMP, context_library_name STRING, "
    "email STRING, first_name STRING, last_name STRING, name STRING, phone STRING, "
    "address_city STRING, address_postal_code STRING, address_country STRING, "
    "street STRING, city STRING, postal_code STRING, country STRING"
)
SEG_WAREHOUSE_SYNCS = [
    [
        "('m-shape-1', '003SHAPE0000000001', 'anon-s1', TIMESTAMP'2024-02-10 23:02:39Z', NULL, NULL, "
        "TIMESTAMP'2024-02-10 23:02:37Z', TIMESTAMP'2024-02-10 23:10:00Z', 'analytics.js', "
        "'ana.weber@example.com', 'Ana', 'Weber', NULL, NULL, 'Berlin', '10115', 'Germany', "
        "NULL, NULL, NULL, NULL)",
        "('m-shape-2', NULL, 'anon-s2', TIMESTAMP'2024-02-11 08:00:01Z', NULL, NULL, "
        "TIMESTAMP'2024-02-11 08:00:00Z', TIMESTAMP'2024-02-11 08:10:00Z', 'analytics.js', "
        "'visitor@example.com', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'Wien', '1010', NULL)",
    ],
    [
        "('m-shape-3', '003SHAPE0000000003', 'anon-s3', TIMESTAMP'2024-03-05 12:00:03Z', "
        "TIMESTAMP'2024-03-05 11:58:00Z', TIMESTAMP'2024-03-05 11:57:59.500Z', "
        "TIMESTAMP'2024-03-05 12:00:02.500Z', TIMESTAMP'2024-03-05 12:10:00Z', 'analytics-ios', "
        "NULL, NULL, NULL, 'Kai Lind', '+46 8 123456', NULL, NULL, NULL, 'Storgatan 5', NULL, NULL, "
        "'Sweden')",
    ],
]


#: Shopify customers as the REST Admin API gives them (the registry's names): numeric ids,
#: times with the shop's UTC offset. Two syncs: the second changes one customer's email
#: and marketing consent. No default address: Fivetran keeps it in another table.
SHOP_API_SYNCS: list[list[dict[str, Any]]] = [
    [
        {
            "id": 207119551,
            "email": "bob.norman@example.com",
            "phone": "+16136120707",
            "first_name": "Bob",
            "last_name": "Norman",
            "accepts_marketing": False,
            "accepts_marketing_updated_at": "2024-02-01T10:15:00-05:00",
            "created_at": "2024-02-01T10:15:00-05:00",
            "updated_at": "2024-02-01T10:15:00-05:00",
        },
        {
            "id": 207119552,
            "email": "lea.mueller@example.de",
            "phone": None,
            "first_name": "Lea",
            "last_name": "Müller",
            "accepts_marketing": True,
            "accepts_marketing_updated_at": "2024-02-02T09:00:00+01:00",
            "created_at": "2024-02-02T09:00:00+01:00",
            "updated_at": "2024-02-02T09:30:12+01:00",
        },
    ],
    [
        {
            "id": 207119551,
            "email": "bob@norman.example.com",
            "phone": "+16136120707",
            "first_name": "Bob",
            "last_name": "Norman",
            "accepts_marketing": True,
            "accepts_marketing_updated_at": "2024-03-01T08:00:00-05:00",
            "created_at": "2024-02-01T10:15:00-05:00",
            "updated_at": "2024-03-01T08:00:05-05:00",
        },
    ],
]

#: The same syncs as Fivetran's Shopify connector lands them in its ``customer`` table:
#: the API's names, typed columns (BIGINT id, TIMESTAMP times in UTC, BOOLEAN consent),
#: the newer ``email_marketing_consent_*`` columns and Fivetran's own. Follows the columns
#: Fivetran's Shopify source package reads (fivetran/dbt_shopify_source,
#: macros/get_customer_columns.sql); the address is only ``default_address_id``.
SHOP_FIVETRAN_DDL = (
    "id BIGINT, email STRING, phone STRING, first_name STRING, last_name STRING, "
    "accepts_marketing BOOLEAN, accepts_marketing_updated_at TIMESTAMP, "
    "email_marketing_consent_state STRING, email_marketing_consent_opt_in_level STRING, "
    "email_marketing_consent_consent_updated_at TIMESTAMP, default_address_id BIGINT, "
    "orders_count BIGINT, state STRING, verified_email BOOLEAN, created_at TIMESTAMP, "
    "updated_at TIMESTAMP, _fivetran_synced TIMESTAMP"
)
SHOP_FIVETRAN_SYNCS = [
    [
        "(207119551, 'bob.norman@example.com', '+16136120707', 'Bob', 'Norman', false, "
        "TIMESTAMP'2024-02-01 15:15:00Z', 'not_subscribed', 'single_opt_in', "
        "TIMESTAMP'2024-02-01 15:15:00Z', "
        "1053317291, 0, 'enabled', true, TIMESTAMP'2024-02-01 15:15:00Z', TIMESTAMP'2024-02-01 15:15:00Z', "
        "TIMESTAMP'2024-02-02 06:00:00Z')",
        "(207119552, 'lea.mueller@example.de', NULL, 'Lea', 'Müller', true, "
        "TIMESTAMP'2024-02-02 08:00:00Z', 'subscribed', 'single_opt_in', TIMESTAMP'2024-02-02 08:00:00Z', "
        "1053317292, 1, 'enabled', true, TIMESTAMP'2024-02-02 08:00:00Z', TIMESTAMP'2024-02-02 08:30:12Z', "
        "TIMESTAMP'2024-02-03 06:00:00Z')",
    ],
    [
        "(207119551, 'bob@norman.example.com', '+16136120707', 'Bob', 'Norman', true, "
        "TIMESTAMP'2024-03-01 13:00:00Z', 'subscribed', 'single_opt_in', TIMESTAMP'2024-03-01 13:00:00Z', "
        "1053317291, 2, 'enabled', true, TIMESTAMP'2024-02-01 15:15:00Z', TIMESTAMP'2024-03-01 13:00:05Z', "
        "TIMESTAMP'2024-03-02 06:00:00Z')",
    ],
]

#: Zendesk Support users as the API gives them (the registry's names): numeric ids,
#: ``external_id`` naming the Salesforce contact of one of them. The second sync gives
#: the visitor a phone number.
ZD_API_SYNCS: list[list[dict[str, Any]]] = [
    [
        {
            "id": 361100001,
            "name": "Ana Weber",
            "email": "ana.weber@example.com",
            "phone": "+49 30 4745328",
            "external_id": "003SHAPE0000000001",
            "role": "end-user",
            "created_at": "2024-02-14T10:00:00Z",
            "updated_at": "2024-02-14T10:00:00Z",
        },
        {
            "id": 361100002,
            "name": "Walk-in Visitor",
            "email": "visitor@example.com",
            "phone": None,
            "external_id": None,
            "role": "end-user",
            "created_at": "2024-02-15T16:20:00Z",
            "updated_at": "2024-02-15T16:20:00Z",
        },
    ],
    [
        {
            "id": 361100002,
            "name": "Walk-in Visitor",
            "email": "visitor@example.com",
            "phone": "+43 1 5551234",
            "external_id": None,
            "role": "end-user",
            "created_at": "2024-02-15T16:20:00Z",
            "updated_at": "2024-03-06T09:12:44Z",
        },
    ],
]

#: The same syncs as Fivetran's Zendesk Support connector lands them in its ``user``
#: table: the API's names, typed columns, Fivetran's own columns. Follows the columns
#: Fivetran's Zendesk source package reads (fivetran/dbt_zendesk_source,
#: macros/get_user_columns.sql).
ZD_FIVETRAN_DDL = (
    "id BIGINT, name STRING, email STRING, phone STRING, external_id STRING, role STRING, "
    "active BOOLEAN, suspended BOOLEAN, organization_id BIGINT, locale STRING, time_zone STRING, "
    "created_at TIMESTAMP, updated_at TIMESTAMP, _fivetran_synced TIMESTAMP, _fivetran_deleted BOOLEAN"
)
ZD_FIVETRAN_SYNCS = [
    [
        "(361100001, 'Ana Weber', 'ana.weber@example.com', '+49 30 4745328', '003SHAPE0000000001', "
        "'end-user', true, false, NULL, 'de', 'Berlin', TIMESTAMP'2024-02-14 10:00:00Z', "
        "TIMESTAMP'2024-02-14 10:00:00Z', TIMESTAMP'2024-02-16 06:00:00Z', false)",
        "(361100002, 'Walk-in Visitor', 'visitor@example.com', NULL, NULL, 'end-user', true, false, "
        "NULL, 'en-US', 'Vienna', TIMESTAMP'2024-02-15 16:20:00Z', TIMESTAMP'2024-02-15 16:20:00Z', "
        "TIMESTAMP'2024-02-16 06:00:00Z', false)",
    ],
    [
        "(361100002, 'Walk-in Visitor', 'visitor@example.com', '+43 1 5551234', NULL, 'end-user', true, "
        "false, NULL, 'en-US', 'Vienna', TIMESTAMP'2024-02-15 16:20:00Z', TIMESTAMP'2024-03-06 09:12:44Z', "
        "TIMESTAMP'2024-03-07 06:00:00Z', false)",
    ],
]


def _leaves(value: Any) -> int:
    """Non-null values of a JSON value, nested objects counted by their keys."""
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    return 0 if value is None else 1


def _expected_events() -> dict[str, int]:
    """Field events of the API fixture rows, counted from the rows themselves.

    Each row gives one event per mapped field it fills (a soft-deleted Salesforce row
    gives the same number, removing each value), one linking the record to its source
    record node, and a Segment call with a ``user_id`` one more for its SAME_AS link.
    """
    salesforce = sum(
        sum(row[f] is not None for f in row if f not in ("Id", "LastModifiedDate", "IsDeleted")) + 1
        for rows in SF_API_SYNCS
        for row in rows
    )
    segment = sum(
        _leaves(row["traits"]) + 1 + (row["user_id"] is not None) for rows in SEG_API_SYNCS for row in rows
    )
    # Shopify and Zendesk are record-level like Salesforce, and every row of theirs is
    # live: each gives an event for every mapped field, an empty one removing the value
    # (the default address a Fivetran customer row does not carry, the visitor's phone),
    # plus the source-record link and Zendesk's external_id link.
    config = load_config()
    per_row = {
        system: len(config.object(system, obj).attributes) + 1 + len(config.object(system, obj).same_as)
        for system, obj in (("shopify", "customers"), ("zendesk", "users"))
    }
    # A ContactHistory row gives one event when its field is one the Contact rows map.
    mapped = {a.source_field for a in config.object("salesforce", "Contact").attributes}
    history = sum(row["Field"] in mapped for rows in SF_HISTORY_API_SYNCS for row in rows)
    return {
        "salesforce": salesforce + history,
        "segment": segment,
        "shopify": per_row["shopify"] * sum(len(rows) for rows in SHOP_API_SYNCS),
        "zendesk": per_row["zendesk"] * sum(len(rows) for rows in ZD_API_SYNCS),
    }


def _fill_source(spark: Any, table: str, ddl: str, key: str, syncs: list[list[str]]) -> None:
    """A Delta table with change data feed, one MERGE commit per sync (as a connector syncs)."""
    spark.sql(
        f"CREATE TABLE {table} ({ddl}) USING DELTA TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
    )
    columns = [c.split()[0] for c in ddl.split(", ")]
    for rows in syncs:
        spark.sql(
            f"MERGE INTO {table} t "
            f"USING (SELECT * FROM VALUES {', '.join(rows)} AS s({', '.join(columns)})) s "
            f"ON t.{key} = s.{key} WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )


@pytest.mark.spark
def test_connector_shapes_give_the_field_events_of_the_api_shape(tmp_path, spark_engine):
    """Fivetran's Salesforce, Shopify and Zendesk tables and Segment's ``identifies`` in ``tables`` mode.

    The same records land once in the API's shape (files) and once in each connector's
    own shape (Delta tables with change data feed, columns as the connector's published
    schema names them); ``aag.shape.<system>.<object>`` selects the connector's columns
    from ``landing_shapes.csv``. Both runs must give the same field events, and the
    connector run must quarantine nothing.
    """
    from aag.databricks.job import FIELD_EVENTS_TABLE
    from aag.databricks.lakeflow import run_batch
    from aag.errors import ConfigError

    spark = spark_engine.spark
    landing = tmp_path / "landing"
    for (system, obj), syncs in {
        ("salesforce", "Contact"): SF_API_SYNCS,
        ("salesforce", "ContactHistory"): SF_HISTORY_API_SYNCS,
        ("segment", "identifies"): SEG_API_SYNCS,
        ("shopify", "customers"): SHOP_API_SYNCS,
        ("zendesk", "users"): ZD_API_SYNCS,
    }.items():
        (landing / system / obj).mkdir(parents=True)
        for number, rows in enumerate(syncs):
            lines = "".join(json.dumps(row) + "\n" for row in rows)
            (landing / system / obj / f"sync{number}.jsonl").write_text(lines, encoding="utf-8")
    both = {
        "aag.objects": "salesforce.Contact,salesforce.ContactHistory,segment.identifies,"
        "shopify.customers,zendesk.users"
    }
    sf_table, seg_table = "spark_catalog.aag_shapes.salesforce_contact", "spark_catalog.aag_shapes.identifies"
    sf_history_table = "spark_catalog.aag_shapes.salesforce_contact_history"
    shop_table, zd_table = "spark_catalog.aag_shapes.shopify_customer", "spark_catalog.aag_shapes.zd_user"
    _drop_setup_schemas(spark)
    spark.sql("DROP SCHEMA IF EXISTS aag_shapes CASCADE")
    try:
        run_batch(spark, {**both, "aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        from_api = spark.table(FIELD_EVENTS_TABLE).toArrow()
        assert spark.table("graph.extract_quarantine").count() == 0
        _drop_setup_schemas(spark)

        spark.sql("CREATE SCHEMA aag_shapes")
        _fill_source(spark, sf_table, SF_FIVETRAN_DDL, "id", SF_FIVETRAN_SYNCS)
        _fill_source(spark, sf_history_table, SF_HISTORY_FIVETRAN_DDL, "id", SF_HISTORY_FIVETRAN_SYNCS)
        _fill_source(spark, seg_table, SEG_WAREHOUSE_DDL, "id", SEG_WAREHOUSE_SYNCS)
        _fill_source(spark, shop_table, SHOP_FIVETRAN_DDL, "id", SHOP_FIVETRAN_SYNCS)
        _fill_source(spark, zd_table, ZD_FIVETRAN_DDL, "id", ZD_FIVETRAN_SYNCS)
        tables = {
            **both,
            "aag.bronze.mode": "tables",
            "aag.source.salesforce.Contact": sf_table,
            "aag.source.salesforce.ContactHistory": sf_history_table,
            "aag.source.segment.identifies": seg_table,
            "aag.source.shopify.customers": shop_table,
            "aag.source.zendesk.users": zd_table,
        }
        shaped = {
            **tables,
            "aag.shape.salesforce.Contact": "fivetran",
            "aag.shape.salesforce.ContactHistory": "fivetran",
            "aag.shape.segment.identifies": "segment_warehouse",
            "aag.shape.shopify.customers": "fivetran",
            "aag.shape.zendesk.users": "fivetran",
        }
        run_batch(spark, shaped)
        # Bronze keeps the connector's rows as they came: one per insert or update.
        for bronze, connector_rows, own_column in (
            ("bronze.salesforce_contact", SF_FIVETRAN_SYNCS, "_fivetran_synced"),
            ("bronze.salesforce_contacthistory", SF_HISTORY_FIVETRAN_SYNCS, "_fivetran_synced"),
            ("bronze.segment_identifies", SEG_WAREHOUSE_SYNCS, "uuid_ts"),
            ("bronze.shopify_customers", SHOP_FIVETRAN_SYNCS, "_fivetran_synced"),
            ("bronze.zendesk_users", ZD_FIVETRAN_SYNCS, "_fivetran_synced"),
        ):
            raw = [json.loads(r["_raw"]) for r in spark.table(bronze).collect()]
            assert len(raw) == sum(len(rows) for rows in connector_rows), bronze
            assert "id" in raw[0] and "Id" not in raw[0] and own_column in raw[0], raw[0]
        from_shapes = spark.table(FIELD_EVENTS_TABLE).toArrow()
        quarantined = spark.table("graph.extract_quarantine").collect()
        assert quarantined == [], quarantined
        per_object = {
            r["source_system"]: r["n"]
            for r in spark.sql(
                f"SELECT source_system, count(*) AS n FROM {FIELD_EVENTS_TABLE} GROUP BY 1"
            ).collect()
        }
        assert _events(from_shapes) == _events(from_api)
        assert per_object == _expected_events(), per_object

        # The erase task finds a record's bronze rows whatever shape they landed in.
        from aag.databricks.erase import _bronze_rows

        config = load_config()
        for bronze, system, obj, record, field, expected in (
            (
                "salesforce_contact",
                "salesforce",
                "Contact",
                "003SHAPE0000000001",
                "Email",
                ["ana.weber@example.com", "ana@weber.example.org"],
            ),
            (
                "salesforce_contacthistory",
                "salesforce",
                "ContactHistory",
                "003SHAPE0000000001",
                "Id",
                ["017SHAPE0000000001", "017SHAPE0000000002"],
            ),
            (
                "shopify_customers",
                "shopify",
                "customers",
                "207119551",
                "email",
                ["bob.norman@example.com", "bob@norman.example.com"],
            ),
        ):
            rows = _bronze_rows(spark, config, f"bronze.{bronze}", system, obj, [record])
            assert sorted(rows.column(field).to_pylist()) == expected, (bronze, rows.to_pylist())

        # Without the shape setting the connector's columns are not the registry's: the
        # Salesforce rows have no Id and are quarantined, which is what the setting fixes.
        _drop_setup_schemas(spark)
        run_batch(spark, tables)
        reasons = {r["reason"] for r in spark.table("graph.extract_quarantine").collect()}
        assert any("record id" in (reason or "") for reason in reasons), reasons
        with pytest.raises(ConfigError, match="no landing shape 'fivetran'"):
            run_batch(spark, {**tables, "aag.shape.segment.identifies": "fivetran"})
        with pytest.raises(ConfigError, match=r"apply to aag\.bronze\.mode = tables"):
            run_batch(spark, {**shaped, "aag.bronze.mode": "files", "aag.landing.path": str(landing)})
    finally:
        _drop_setup_schemas(spark)
        spark.sql("DROP SCHEMA IF EXISTS aag_shapes CASCADE")


# -- erasure: the erase task against the embedded erase ------------------------------------------

#: Customers of the world the erasure parity test builds (small: it runs the pipeline twice).
ERASE_CUSTOMERS = 12
#: Its export rounds: three give erased values a history (each later round changes fields);
#: every further round adds ~6 Spark batches of the same kinds to the pipeline runs.
ERASE_ROUNDS = ("round1", "round2", "round3")


def _file_strings(path: str) -> set[str]:
    """Every string cell of one Parquet data file, read whole (rows behind deletion vectors too)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path.removeprefix("file:"))
    out: set[str] = set()
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out |= {str(v) for v in column.to_pylist() if v is not None}
    return out


def _held(strings: set[str], values: set[str], emails: set[str]) -> set[str]:
    """The erased values among ``strings``: a cell equal to a value, or raw text holding an e-mail."""
    found = strings & values
    return found | {e for e in emails if any(e in s.lower() for s in strings)}


@pytest.mark.spark
def test_erase_task_gives_the_embedded_erasure(tmp_path, spark_engine, duckdb_engine):
    """``python -m aag.databricks erase`` leaves the graph ``aag erase`` leaves, purged to the files.

    Both engines commit the same world; the same customer (the largest cluster) is erased
    on both. The graph tables must be equal again, no erased value may remain in any row,
    any live data file (read whole with pyarrow: rows behind deletion vectors count) or
    change data file the erase wrote, and re-sending the customer's rows must not bring
    it back.
    """
    from aag.config import load_config
    from aag.databricks.erase import ERASURES_TABLE
    from aag.databricks.job import QUARANTINE_TABLE, commit_pending, main
    from aag.databricks.lakeflow import run_batch
    from aag.engine.spark import collect_arrow
    from aag.ids import record_key
    from aag.pipeline.deferral import deferred_events
    from aag.service import AagService
    from aag.world import generate

    spark = spark_engine.spark
    config = load_config()
    world = generate(tmp_path / "world", ERASE_CUSTOMERS, formats="jsonl")
    world_files = [f for f in world.files if f[2].parent.name in ERASE_ROUNDS]
    reference = AagService(str(tmp_path / "duck"), engine=duckdb_engine)
    reference.init()
    landing = tmp_path / "landing"
    for spec in config.objects:
        (landing / spec.source_system / spec.source_object).mkdir(parents=True, exist_ok=True)
    for system, obj, path in world_files:
        reference.ingest(system, obj, [path])
        shutil.copyfile(path, landing / system / obj / f"{path.parent.name}_{path.stem}.jsonl")
    graph = reference.warehouse.graph
    # The customer with the most records; the oracle of what goes is computed here from
    # the reference graph: values only the cluster points at, and its source records.
    entities = graph.relationships().to_pylist()
    clusters: dict[str, set[str]] = {}
    for r in entities:
        if r["rel_type"] == "SAME_AS" and r["is_current"]:
            clusters.setdefault(r["target_node_id"], {r["target_node_id"]}).add(r["source_node_id"])
    customer = max(sorted(clusters), key=lambda c: len(clusters[c]))
    members = set(reference.members(customer))
    assert members == clusters[customer] and len(members) > 1
    # History is erased too: the customer must have a closed version for that to be checked.
    assert any(not r["is_current"] for r in entities if r["source_node_id"] in members)
    records = reference.records_of(customer)
    mine = {r["target_node_id"] for r in entities if r["source_node_id"] in members}
    others = {r["target_node_id"] for r in entities if r["source_node_id"] not in members}
    nodes = {r["node_id"]: r for r in graph.nodes().to_pylist()}
    values = {
        str(nodes[n]["value"])
        for n in mine - others - members
        if n in nodes and nodes[n]["value"] and len(str(nodes[n]["value"])) >= 6
    }
    emails = {v.lower() for v in values if "@" in v}
    assert emails and any(v in set(records) for v in values), (values, records)
    _drop_setup_schemas(spark)
    try:
        run_batch(spark, {"aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        # The pipeline's streaming tables are Delta on Databricks (local batch runs write Parquet).
        pipeline_tables = [
            f"{schema}.{r['tableName']}"
            for schema in ("bronze", "graph")
            for r in spark.sql(f"SHOW TABLES IN {schema}").collect()
            if not r["isTemporary"]
        ]
        for table in pipeline_tables:
            spark.sql(f"CONVERT TO DELTA spark_catalog.{table}")
            dv = "'delta.enableDeletionVectors' = 'true'"
            spark.sql(f"ALTER TABLE spark_catalog.{table} SET TBLPROPERTIES ({dv})")
        _run_setup_schemas(spark)
        _run_setup(spark, "02_tables.sql")
        store = SparkTableGraphStore(spark_engine, "spark_catalog.graph")
        commit_pending(spark, "spark_catalog")
        assert _without_batch(store.relationships().to_pylist()) == _without_batch(entities)
        tables = [
            f"spark_catalog.{schema}.{r['tableName']}"
            for schema in ("bronze", "graph")
            for r in spark.sql(f"SHOW TABLES IN {schema}").collect()
            if not r["isTemporary"]
        ]
        assert len(tables) > len(pipeline_tables)

        def change_files(table: str) -> set[str]:
            location = str(_detail(spark, table)["location"]).removeprefix("file:")
            return {str(p) for p in Path(location, "_change_data").rglob("*.parquet")}

        # Older commits' change data keeps replaced rows until VACUUM (documented); the
        # erase itself must write none.
        before = {t: change_files(t) for t in tables}
        reference.erase(customer, "dpo")
        main(
            [
                "erase",
                "--catalog",
                "spark_catalog",
                "--customer",
                customer,
                "--requested-by",
                "dpo@example.com",
            ]
        )
        assert _without_batch(store.relationships().to_pylist()) == _without_batch(
            graph.relationships().to_pylist()
        )
        node_cols = ["node_id", "node_type", "value", "checksum"]
        assert sorted(store.nodes().select(node_cols).to_pylist(), key=repr) == sorted(
            graph.nodes().select(node_cols).to_pylist(), key=repr
        )
        # The reference defers re-sent rows (their events stay in bronze); the Spark
        # path extracts every row: the event sets must agree.
        logged = graph.edge_events()
        deferred = deferred_events(duckdb_engine, reference.warehouse).select(logged.schema.names)
        expected = pa.concat_tables([logged, deferred.cast(logged.schema)])
        assert sorted(set(_events(store.edge_events())), key=repr) == sorted(set(_events(expected)), key=repr)
        quarantined = collect_arrow(spark.sql(f"SELECT * FROM spark_catalog.{QUARANTINE_TABLE}"))
        assert _quarantine(quarantined) == _quarantine(reference.warehouse.quarantine())
        log = collect_arrow(spark.sql(f"SELECT * FROM spark_catalog.{ERASURES_TABLE}")).to_pylist()
        assert {r["customer_id"] for r in log} == {customer}
        assert {record_key(*r.split(":", 2)) for r in records} <= {r["record_key"] for r in log}
        assert not _held({str(v) for r in log for v in r.values()}, values, emails)
        # No erased value in any row, live data file or change data file of any table.
        for table in tables:
            rows = collect_arrow(spark.table(table)).to_pylist()
            assert not _held({str(v) for r in rows for v in r.values() if v is not None}, values, emails), (
                table
            )
            files = [str(f) for f in spark.table(table).inputFiles()]
            files += sorted(change_files(table) - before[table])
            for data_file in files:
                assert not _held(_file_strings(data_file), values, emails), (table, data_file)
        # A field history re-sent alone: its events go to the erased Contact's entity, and
        # are dropped on both paths. The customer's lines leave the landing folder first
        # (as docs/deployment.md asks): ``run_batch`` lands every file again, where a
        # streaming table would only land new ones, and the re-landed Contact row would
        # name the record to the commit task.
        contact = next(r.split(":", 2)[2] for r in sorted(records) if r.startswith("salesforce:Contact:"))
        for landed_file in landing.rglob("*.jsonl"):
            lines = landed_file.read_text(encoding="utf-8").splitlines(keepends=True)
            keep = [x for x in lines if contact not in x and not any(e in x.lower() for e in emails)]
            landed_file.write_text("".join(keep), encoding="utf-8")
        history = {
            "Id": "017ERASED000000001",
            "ContactId": contact,
            "Field": "Email",
            "OldValue": None,
            "NewValue": "back.again@example.com",
            "CreatedDate": "2024-06-01T00:00:00.000+0000",
            "IsDeleted": False,
        }
        alone = tmp_path / "again" / "history_alone.jsonl"
        alone.parent.mkdir()
        alone.write_text(json.dumps(history) + "\n", encoding="utf-8")
        (report,) = reference.ingest("salesforce", "ContactHistory", [alone])
        assert report.rows_suppressed == 1, report
        shutil.copyfile(alone, landing / "salesforce" / "ContactHistory" / alone.name)
        run_batch(spark, {"aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        assert commit_pending(spark, "spark_catalog"), "the history row made no batch to commit"
        for got in (store.relationships(), graph.relationships()):
            assert not members & set(got.column("source_node_id").to_pylist())
        for got in (store.nodes(), graph.nodes()):
            assert "back.again@example.com" not in set(got.column("value").to_pylist())
        erased_ids = collect_arrow(spark.sql("SELECT entity_id FROM spark_catalog.graph.erased_entities"))
        assert set(erased_ids.column(0).to_pylist()) == members
        # The source re-sends the customer's rows: suppressed on both paths.
        resent = suppressed = 0
        for system, obj, path in world_files:
            spec = config.object(system, obj)
            lines = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and any(e in line.lower() for e in emails)
            ]
            if lines:
                again = tmp_path / "again" / f"{path.parent.name}_{path.stem}.jsonl"
                again.parent.mkdir(exist_ok=True)
                again.write_text("\n".join(lines) + "\n", encoding="utf-8")
                (report,) = reference.ingest(spec.source_system, spec.source_object, [again])
                shutil.copyfile(again, landing / system / obj / f"again_{again.name}")
                # A file byte-identical to one ingested before is a no-op (nothing lands).
                if report.status != "already ingested":
                    resent += len(lines)
                    suppressed += report.rows_suppressed
        assert resent > 0 and suppressed == resent
        run_batch(spark, {"aag.bronze.mode": "files", "aag.landing.path": str(landing)})
        assert commit_pending(spark, "spark_catalog"), "the re-sent rows made no batch to commit"
        for got in (store.relationships(), graph.relationships()):
            assert not members & set(got.column("source_node_id").to_pylist())
        for got in (store.nodes(), graph.nodes()):
            assert not _held({str(v) for v in got.column("value").to_pylist() if v}, values, emails)
    finally:
        _drop_setup_schemas(spark)
