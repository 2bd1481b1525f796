"""The whole pipeline on Spark gives the embedded engine's graph, row for row.

The generated five-source world (every sync round) is ingested twice: through the
embedded engine (DuckDB) and through ``AagService(engine=spark)`` on local Spark,
both committing to local Delta tables. Nodes, relationships and both profile
versions must be identical. The only column left out is ``nodes.created_at``, the
wall-clock time a node was first written (ingestion bookkeeping); everything else,
``properties.batch_id`` included, is a function of the input files.

The Databricks store (:class:`aag.databricks.store.SparkTableGraphStore`) is held to the
same standard on the first two rounds: graph tables in the Spark catalog, scanned
and written with Spark SQL (Delta tables and their MERGE: the tests' local Spark
loads Delta Lake's jars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aag.databricks.store import SparkTableGraphStore
from aag.pipeline import ingest_file
from aag.service import AagService
from aag.service.reads import customer_profiles_of
from aag.world import generate

pytestmark = pytest.mark.spark

#: People in the generated world: every source, identity merges, all seven rounds.
PEOPLE = 200
#: Files (in ingest order) the catalog-table store runs: rounds one and two.
CATALOG_FILES = 12


def _node_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r["node_id"],
            r["node_type"],
            r["value"],
            r["checksum"],
            tuple(sorted(dict(r["properties"] or []).items())),
        )
        for r in table.to_pylist()
    )


def _edge_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r["source_node_id"],
            r["target_node_id"],
            r["rel_type"],
            r["updated_at"],
            r["confidence"],
            r["is_current"],
            r["source_system"],
            r["source_event_id"],
            tuple(sorted(dict(r["properties"] or []).items())),
        )
        for r in table.to_pylist()
    )


def _profile_rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["customer_id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("world"), PEOPLE)


@pytest.fixture(scope="module")
def on_duckdb(world, tmp_path_factory, duckdb_engine) -> AagService:
    svc = AagService(str(tmp_path_factory.mktemp("duck") / "wh"), engine=duckdb_engine)
    svc.init()
    for system, obj, path in world.files:
        svc.ingest(system, obj, [path])
    return svc


@pytest.fixture(scope="module")
def on_spark(world, tmp_path_factory, spark_engine) -> AagService:
    svc = AagService(str(tmp_path_factory.mktemp("spark") / "wh"), engine=spark_engine)
    svc.init()
    for system, obj, path in world.files:
        svc.ingest(system, obj, [path])
    return svc


def test_world_is_large_enough_to_mean_something(world, on_duckdb):
    systems = {system for system, _, _ in world.files}
    assert systems == {"salesforce", "sap", "shopify", "zendesk", "segment"}
    same_as = [r for r in on_duckdb.warehouse.graph.relationships().to_pylist() if r["rel_type"] == "SAME_AS"]
    assert len(same_as) > 50  # identity merged records across sources
    assert len({p.parent.name for _, _, p in world.files}) == 7


def test_spark_writes_the_same_nodes(on_duckdb, on_spark):
    assert _node_rows(on_spark.warehouse.graph.nodes()) == _node_rows(on_duckdb.warehouse.graph.nodes())


def test_spark_writes_the_same_relationships_and_log(on_duckdb, on_spark):
    duck, spark = on_duckdb.warehouse.graph, on_spark.warehouse.graph
    assert _edge_rows(spark.relationships()) == _edge_rows(duck.relationships())
    log = ["source_node_id", "rel_type", "source_system", "target_node_id", "updated_at", "source_event_id"]
    assert sorted(spark.edge_events().select(log).to_pylist(), key=repr) == sorted(
        duck.edge_events().select(log).to_pylist(), key=repr
    )


@pytest.mark.parametrize("version", [1, 2])
def test_spark_resolves_the_same_profiles(on_duckdb, on_spark, version):
    expected = _profile_rows(on_duckdb.customer_profiles(version))
    assert len(expected) > PEOPLE // 2
    assert _profile_rows(on_spark.customer_profiles(version)) == expected


def test_spark_batches_report_the_same_work(on_duckdb, on_spark):
    keep = ["batch_id", "rows_landed", "rows_processed", "rows_quarantined", "field_events"]
    keep += ["nodes_written", "edge_versions_written"]
    assert sorted(on_spark.warehouse.batches().select(keep).to_pylist(), key=repr) == sorted(
        on_duckdb.warehouse.batches().select(keep).to_pylist(), key=repr
    )


def test_catalog_table_store_matches_the_embedded_graph(world, tmp_path: Path, duckdb_engine, spark_engine):
    files = world.files[:CATALOG_FILES]
    assert any(p.parent.name == "round2" for _, _, p in files)
    reference = AagService(str(tmp_path / "duck"), engine=duckdb_engine)
    reference.init()
    hybrid = AagService(str(tmp_path / "spark"), engine=spark_engine)
    hybrid.init()
    spark_engine.execute("DROP SCHEMA IF EXISTS aag_parity_graph CASCADE")
    store = SparkTableGraphStore(spark_engine, "aag_parity_graph")
    store.create()
    rewrites = 0
    for system, obj, path in files:
        reference.ingest(system, obj, [path])
        # Bronze, quarantine and ledger stay local; the graph lives in Spark tables.
        report = ingest_file(hybrid.warehouse, spark_engine, system, obj, path, graph=store)
        rewrites += int(report.rule_paths.get("close_open", 0) + report.rule_paths.get("full", 0) > 0)
    assert rewrites > 0  # the replace-keys commit ran, not only inserts
    graph = reference.warehouse.graph
    assert _node_rows(store.nodes()) == _node_rows(graph.nodes())
    assert _edge_rows(store.relationships()) == _edge_rows(graph.relationships())
    assert len(store.edge_events()) == len(graph.edge_events())
    for version in (1, 2):
        got = customer_profiles_of(
            spark_engine, store.relationships(), store.nodes(), hybrid.warehouse.config, version
        )
        assert _profile_rows(got) == _profile_rows(reference.customer_profiles(version))
