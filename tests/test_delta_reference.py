"""Delta Lake's own implementation as the reference for every table AAG writes and reads.

Delta-Spark (PySpark 4.2.0 with Delta Lake 4.4.0's jars, installed by ``make
delta-reference`` into ``.venv-delta``; nothing downloads at test time) runs in a
subprocess (``tests/delta_reference/delta_spark.py``):

* it reads every Delta table of a warehouse AAG wrote, and gets the rows AAG's own
  reader gets;
* it rewrites part of ``nodes`` and ``relationships`` behind deletion vectors, as
  Databricks does for a MERGE or DELETE on a table with ``delta.enableDeletionVectors``.
  AAG must read those tables as they are: the store's scans (delta-rs ``QueryBuilder``),
  the dbt plugin's Parquet views (which drop the deleted positions), an ingest on top
  (delta-rs writes the table again), and the reference reads the result back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from aag import gold
from aag.demo import write_demo_files
from aag.service import AagService
from aag.world import generate
from deltakit import delta_spark

#: Rows moved behind deletion vectors: about a third of each table, spread over its files.
PREDICATE = "abs(hash(source_node_id)) % 3 = 0"
NODE_PREDICATE = "abs(hash(node_id)) % 3 = 0"

pytestmark = pytest.mark.spark


def _tables(svc: AagService) -> dict[str, str]:
    """Every Delta table of the warehouse, by a short name."""
    root = Path(svc.warehouse.uri)
    found = sorted(p.parent for p in root.rglob("_delta_log") if p.is_dir())
    return {str(p.relative_to(root)).replace("/", "."): str(p) for p in found}


def _canonical(table: pa.Table) -> list[str]:
    """Rows as sorted JSON lines: map columns as sorted pairs, times as ISO text."""

    def cell(value: Any) -> Any:
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            return sorted(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    names = sorted(table.column_names)
    rows = table.to_pylist()
    return sorted(json.dumps([cell(row[n]) for n in names], default=str) for row in rows)


def _aag_read(svc: AagService, uri: str) -> pa.Table:
    return svc.warehouse.io.read(uri)


def _assert_same_rows(reference: pa.Table, ours: pa.Table, what: str) -> None:
    assert sorted(reference.column_names) == sorted(ours.column_names), what
    assert reference.num_rows == ours.num_rows, (what, reference.num_rows, ours.num_rows)
    assert _canonical(reference) == _canonical(ours), what


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[AagService, Path]:
    root = tmp_path_factory.mktemp("delta ref")  # a space: paths reach the plugin quoted
    svc = AagService(str(root / "wh"))
    svc.init()
    for batch, path in write_demo_files(root / "in"):
        svc.ingest(batch.source_system, batch.source_object, [path])
    world = generate(root / "world", 80)
    for system, obj, path in world.files[: len(world.files) // 2]:
        svc.ingest(system, obj, [path])
    svc.build()
    return svc, root


def test_delta_spark_reads_every_table_aag_wrote_as_aag_does(warehouse, tmp_path):
    svc, _ = warehouse
    tables = _tables(svc)
    assert {"silver.nodes", "silver.relationships", "ledger.batches", "quarantine"} <= set(tables)
    counts = delta_spark("dump", str(tmp_path), *(f"{name}={uri}" for name, uri in tables.items()))
    assert set(counts) == set(tables)
    for name, uri in tables.items():
        _assert_same_rows(pq.read_table(tmp_path / f"{name}.parquet"), _aag_read(svc, uri), name)
    assert counts["silver.relationships"] > 1000


def _hidden(uri: str) -> int:
    """Rows of the table's files that deletion vectors hide."""
    table = DeltaTable(uri)
    return sum(
        len(mask) - sum(mask)
        for batch in pa.RecordBatchReader.from_stream(table.deletion_vectors())
        for mask in batch.column("selection_vector").to_pylist()
    )


def test_tables_with_deletion_vectors_read_the_same_in_every_reader(warehouse, tmp_path):
    svc, root = warehouse
    # Two copies of the warehouse: one stays as AAG wrote it, the other gets vectors.
    plain = AagService(str(tmp_path / "plain"))
    shutil.copytree(svc.warehouse.uri, plain.warehouse.uri, symlinks=True)
    dv = AagService(str(tmp_path / "with vectors"))
    shutil.copytree(svc.warehouse.uri, dv.warehouse.uri, symlinks=True)
    graph = dv.warehouse.graph
    before = {uri: _aag_read(dv, uri) for uri in (graph.nodes_uri, graph.relationships_uri)}
    # AAG's own commits may have hidden rows already (its deletion-vector writer).
    hidden_before = {uri: _hidden(uri) for uri in before}
    moved = {
        graph.relationships_uri: delta_spark("rewrite", graph.relationships_uri, PREDICATE),
        graph.nodes_uri: delta_spark("rewrite", graph.nodes_uri, NODE_PREDICATE),
    }
    for uri, result in moved.items():
        table = DeltaTable(uri)
        assert "deletionVectors" in (table.protocol().reader_features or []), uri
        hidden = _hidden(uri)
        # The old copies are behind vectors, except in files the delete emptied (removed).
        assert 100 < hidden - hidden_before[uri] <= result["rows_moved"], (uri, hidden, hidden_before, result)
        result["hidden"] = hidden
        # 1. The store's reader (delta-rs QueryBuilder) sees the same rows as before.
        _assert_same_rows(before[uri], _aag_read(dv, uri), uri)

    # 2. The dbt plugin's views drop the hidden positions: the gold is the same.
    dv.build(full_refresh=True)
    plain.build(full_refresh=True)
    for model in gold.GOLD_MODELS:
        ours = pq.read_table(gold.gold_file(dv.warehouse, model))
        theirs = pq.read_table(gold.gold_file(plain.warehouse, model))
        assert ours.num_rows == theirs.num_rows, model
        assert _canonical(ours) == _canonical(theirs), model
    con = duckdb.connect(str(gold.gold_dir(dv.warehouse) / gold.DUCKDB_FILE), read_only=True)
    try:
        listed = con.execute('SELECT count(*) FROM silver."relationships__deleted_rows"').fetchone()
        viewed = con.execute("SELECT count(*) FROM silver.relationships").fetchone()
    finally:
        con.close()
    assert listed is not None and listed[0] == moved[graph.relationships_uri]["hidden"]
    assert viewed is not None and viewed[0] == before[graph.relationships_uri].num_rows

    # 3. An ingest on top: delta-rs writes the vector table again, and every reader,
    #    the reference included, agrees with the copy that never had vectors.
    world = generate(root / "world", 80)
    rest = world.files[len(world.files) // 2 :]
    for service in (plain, dv):
        for system, obj, path in rest:
            service.ingest(system, obj, [path])
    dumped = delta_spark(
        "dump",
        str(tmp_path / "after"),
        f"nodes={graph.nodes_uri}",
        f"relationships={graph.relationships_uri}",
    )
    assert dumped["relationships"] > 0
    for name, uri, plain_uri in (
        ("nodes", graph.nodes_uri, plain.warehouse.graph.nodes_uri),
        ("relationships", graph.relationships_uri, plain.warehouse.graph.relationships_uri),
    ):
        ours = _aag_read(dv, uri)
        _assert_same_rows(pq.read_table(tmp_path / "after" / f"{name}.parquet"), ours, name)
        # The two copies ingested the same files at different moments (nodes.created_at).
        expected = _aag_read(plain, plain_uri)
        kept = [c for c in expected.column_names if c != "created_at"]
        _assert_same_rows(expected.select(kept), ours.select(kept), name)
    dv.build()
    plain.build()
    for model in gold.GOLD_MODELS:
        ours = pq.read_table(gold.gold_file(dv.warehouse, model))
        theirs = pq.read_table(gold.gold_file(plain.warehouse, model))
        assert _canonical(ours) == _canonical(theirs), model
