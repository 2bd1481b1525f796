"""The read commands give the same answers whichever store holds the graph.

A generated five-source world is ingested into a Delta warehouse by the embedded
engine. The same graph rows are then put into two other stores: the in-memory store,
and Spark catalog tables (:class:`~aag.databricks.store.SparkTableGraphStore`, the
Databricks store) read through the Spark engine. Every read command the CLI, API and
MCP tools offer — customer look-ups, profiles, explanations, neighbourhoods, the
identity map, all profiles, monitoring — must answer the same on all three.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from aag.databricks.store import SparkTableGraphStore
from aag.engine.base import Engine
from aag.errors import NotFoundError
from aag.graph.memory import MemoryGraphStore
from aag.graph.store import GraphChange, GraphStore
from aag.selection import EdgeSelection, NodeSelection
from aag.service import AagService
from aag.world import generate

#: People in the world: enough for merges across all five sources and some splits.
PEOPLE = 60
#: Customers whose single-customer reads are compared, per store (every Spark read is a
#: Spark job: fewer customers there, the same mix of merged and single-record ones).
SAMPLE = {"memory": 12, "spark": 4}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, duckdb_engine: Engine) -> AagService:
    world = generate(tmp_path_factory.mktemp("world"), PEOPLE)
    svc = AagService(str(tmp_path_factory.mktemp("wh") / "wh"), engine=duckdb_engine)
    svc.init()
    for system, obj, path in world.files:
        svc.ingest(system, obj, [path])
    return svc


def _copy(source: GraphStore, target: GraphStore) -> None:
    nodes, edges, log = source.nodes(), source.relationships(), source.edge_events()
    keys = edges.select(["source_node_id", "rel_type", "source_system"]).slice(0, 0)
    counts = {"nodes": nodes.num_rows, "edges": edges.num_rows, "log": log.num_rows}
    target.commit(GraphChange(nodes=nodes, replace_keys=keys, edge_rows=edges, log_append=log, counts=counts))


def _spark_store(reference: AagService, engine: Engine) -> SparkTableGraphStore:
    engine.execute("DROP SCHEMA IF EXISTS aag_read_parity CASCADE")
    store = SparkTableGraphStore(engine, "aag_read_parity")
    store.create()
    source = reference.graph
    for name, table, target in (
        ("rp_nodes", source.nodes(), store.nodes_table),
        ("rp_edges", source.relationships(), store.relationships_table),
        ("rp_log", source.edge_events(), store.edge_events_table),
    ):
        engine.register(name, table)
        engine.execute(f"INSERT INTO {target} SELECT * FROM {name}")
        engine.drop(name)
    return store


@pytest.fixture(
    scope="module", params=["memory", pytest.param("spark", marks=pytest.mark.spark)], ids=["memory", "spark"]
)
def other(request: pytest.FixtureRequest, reference: AagService) -> AagService:
    if request.param == "memory":
        store: GraphStore = MemoryGraphStore()
        _copy(reference.graph, store)
        engine = request.getfixturevalue("duckdb_engine")
    else:
        engine = request.getfixturevalue("spark_engine")
        store = _spark_store(reference, engine)
    return AagService(reference.warehouse.uri, engine=engine, graph=store)


def _sample(reference: AagService, other: AagService) -> list[str]:
    """Record entities of merged customers first (their reads cross records), then others."""
    edges = reference.graph.read_edges(EdgeSelection(rel_types=["SAME_AS"], current=True))
    merged = sorted(set(edges.column("source_node_id").to_pylist()))
    customers = reference.graph.read_nodes(NodeSelection(node_types=["customer"]), ["node_id"])
    others = sorted(set(customers.column("node_id").to_pylist()) - set(merged))
    size = _size(other)
    return merged[: size // 2] + others[: size // 2]


def _size(other: AagService) -> int:
    return SAMPLE["spark" if other.engine.name == "spark" else "memory"]


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


def test_the_stores_hold_the_same_graph(reference: AagService, other: AagService) -> None:
    ref, got = reference.graph, other.graph
    assert ref.relationships().num_rows > 1000
    assert _rows(got.read_edges(EdgeSelection())) == _rows(ref.read_edges(EdgeSelection()))
    assert _rows(got.read_nodes(NodeSelection())) == _rows(ref.read_nodes(NodeSelection()))


def test_selections_answer_the_same(reference: AagService, other: AagService) -> None:
    ids = _sample(reference, other)
    selections = [
        EdgeSelection(sources=ids),
        EdgeSelection(sources=ids, current=False),
        EdgeSelection(ends=ids, current=True),
        EdgeSelection(targets=ids, rel_types=["SAME_AS"]),
        EdgeSelection(rel_types=["HAS_EMAIL", "HAS_PHONE"], current=True),
        EdgeSelection(sources=[]),
        EdgeSelection(sources=["it's got a quote"]),
    ]
    columns = ["source_node_id", "target_node_id", "is_current"]
    for selection in selections:
        want = _rows(reference.graph.read_edges(selection, columns))
        assert _rows(other.graph.read_edges(selection, columns)) == want, selection
    assert reference.graph.read_edges(EdgeSelection(sources=ids, current=False)).num_rows > 0
    for node_selection in (
        NodeSelection(ids=ids),
        NodeSelection(node_types=["customer"]),
        NodeSelection(with_value=True),
        NodeSelection(with_value=False, node_types=["email"]),
    ):
        want = _rows(reference.graph.read_nodes(node_selection))
        assert _rows(other.graph.read_nodes(node_selection)) == want, node_selection


def test_customer_reads_answer_the_same(reference: AagService, other: AagService) -> None:
    ids = _sample(reference, other)
    assert len(ids) == _size(other)
    for entity in ids:
        survivor = reference.survivor(entity)
        assert other.survivor(entity) == survivor
        assert other.members(entity) == reference.members(entity)
        records = reference.records_of(entity)
        assert records and other.records_of(entity) == records
        system, _, record_id = records[0].split(":", 2)
        assert reference.find_customer(system, record_id) == survivor
        assert other.find_customer(system, record_id) == survivor
        for version in (1, 2, 3):
            assert other.profile(entity, version) == reference.profile(entity, version)
        for attribute in ("email", "phone", "last_name"):
            want = reference.explain(entity, attribute).as_dict()
            assert other.explain(entity, attribute).as_dict() == want
        assert other.neighbourhood(entity, hops=2) == reference.neighbourhood(entity, hops=2)
        email = reference.profile(entity, 2).get("email")
        if email:
            assert other.lookup("email", email) == reference.lookup("email", email)
    with pytest.raises(NotFoundError):
        other.profile("no-such-customer")


def test_whole_graph_reads_answer_the_same(reference: AagService, other: AagService) -> None:
    assert _rows(other.identity_map()) == _rows(reference.identity_map())
    for version in (1, 2, 3):
        assert _rows(other.customer_profiles(version)) == _rows(reference.customer_profiles(version))
    ref, got = reference.monitor(), other.monitor()
    # Freshness is an age measured from each call's own clock: compare what it is made of.
    keep = [c for c in ref.freshness.column_names if not c.endswith("_lag_seconds")]
    assert _rows(got.freshness.select(keep)) == _rows(ref.freshness.select(keep))
    for name in ("conflicts", "completeness", "quarantine"):
        assert _rows(getattr(got, name)) == _rows(getattr(ref, name)), name
