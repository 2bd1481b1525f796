"""The merge-on-read writer (:mod:`aag.graph.deletion_vectors`) against delta-rs and Delta-Spark.

Every commit it makes must read back, in delta-rs (the store's reader) and in Delta
Lake's own Spark connector, exactly as delta-rs's copy-on-write MERGE of the same change
does; its change data feed must hold exactly the changed rows; a second writer and a
crash must leave the table as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag.errors import ConflictError
from aag.graph import deletion_vectors as dvs
from aag.graph.delta import DeltaIO
from aag.graph.local_writes import drop_orphans
from aag.graph.store import DeltaGraphStore
from aag.graph.warehouse import Warehouse
from aag.model import NODES, RELATIONSHIPS
from aag.service import maintenance
from deltakit import delta_spark

REPO = Path(__file__).resolve().parents[1]
KEY = ["source_node_id", "rel_type", "source_system"]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


# -- encodings ---------------------------------------------------------------------------
@given(st.binary(max_size=200))
def test_z85_round_trip(data: bytes) -> None:
    text = dvs.z85_encode(data)
    assert len(text) == (len(data) + 3) // 4 * 5
    assert dvs.z85_decode(text, len(data)) == data


def test_z85_matches_the_zeromq_test_vector() -> None:
    assert dvs.z85_encode(bytes.fromhex("864FD26FB559F75B")) == "HelloWorld"
    with pytest.raises(ValueError, match="not a Z85 character"):
        dvs.z85_decode("Hello~orld")


positions = st.sets(
    st.one_of(
        st.integers(0, 70_000),
        st.integers(0, 2**40),
        st.integers(2**32 - 5, 2**32 + 5),
    ),
    max_size=300,
)


@given(positions)
def test_bitmap_round_trip(rows: set[int]) -> None:
    data = dvs.encode_bitmap(rows)
    assert int.from_bytes(data[:4], "little") == dvs.MAGIC
    assert dvs.decode_bitmap(data) == sorted(rows)


@given(st.lists(positions, min_size=1, max_size=4), st.integers(0, 200))
def test_descriptors_round_trip_inline_and_in_files(vectors: list[set[int]], limit: int) -> None:
    store = dvs.VectorFile()
    descriptors = [dvs.vector_descriptor(rows, store, limit) for rows in vectors]
    folder = Path(f"/tmp/aag-dv-test-{os.getpid()}")
    folder.mkdir(exist_ok=True)
    try:
        (folder / store.name).write_bytes(bytes(store.content))
        for rows, descriptor in zip(vectors, descriptors, strict=True):
            again = dvs.Descriptor.from_json(json.loads(json.dumps(descriptor.to_json())))
            assert again == descriptor
            assert (descriptor.storage_type == "i") == (descriptor.size_in_bytes <= limit)
            assert descriptor.cardinality == len(rows)
            if descriptor.storage_type == "u":
                assert descriptor.file_name() == store.name
            assert dvs.read_vector(folder, descriptor) == sorted(rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_damaged_vector_file_is_refused(tmp_path: Path) -> None:
    store = dvs.VectorFile()
    descriptor = dvs.vector_descriptor(range(0, 5000, 7), store, 0)
    content = bytearray(store.content)
    content[20] ^= 0xFF
    (tmp_path / store.name).write_bytes(bytes(content))
    with pytest.raises(ValueError, match="checksum"):
        dvs.read_vector(tmp_path, descriptor)


# -- tables ------------------------------------------------------------------------------
def _rows(specs: list[tuple[str, str, int, bool]]) -> pa.Table:
    """Relationships rows from ``(source, target, minute, current)``."""
    n = len(specs)
    return pa.table(
        {
            "source_node_id": [s for s, _, _, _ in specs],
            "target_node_id": [t for _, t, _, _ in specs],
            "rel_type": ["HAS_EMAIL"] * n,
            "updated_at": [T0 + dt.timedelta(minutes=m, microseconds=m * 7) for _, _, m, _ in specs],
            "confidence": [0.5] * n,
            "is_current": [c for _, _, _, c in specs],
            "source_system": ["crm"] * n,
            "source_event_id": [f"e-{s}-{m}" for s, _, m, _ in specs],
            "properties": [[("batch_id", "b0")] if c else [("valid_to", "x")] for _, _, _, c in specs],
        },
        schema=RELATIONSHIPS,
    )


def _new_table(root: Path, files: list[pa.Table]) -> str:
    store = DeltaGraphStore(str(root), DeltaIO())
    store.create()
    for data in files:
        DeltaIO().append(store.relationships_uri, data)
    return store.relationships_uri


def _canonical(table: pa.Table) -> list[str]:
    def cell(value: Any) -> Any:
        if isinstance(value, list):
            return sorted(value)
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return value

    names = sorted(table.column_names)
    return sorted(json.dumps([cell(row[n]) for n in names], default=str) for row in table.to_pylist())


def _read(uri: str) -> pa.Table:
    return DeltaIO().read(uri).cast(RELATIONSHIPS)


def _data_files(uri: str) -> set[str]:
    return {p.name for p in Path(uri).glob("*.parquet")}


class World:
    """The current edge history of each key, to build close-version batches from."""

    def __init__(self, keys: int) -> None:
        self.history = {f"n{i:03d}": [(f"t{i}-0", i, True)] for i in range(keys)}
        self.clock = 1000

    def initial(self, files: int) -> list[pa.Table]:
        names = sorted(self.history)
        return [
            _rows([(n, t, m, c) for n in names[i::files] for t, m, c in self.history[n]])
            for i in range(files)
        ]

    def batch(self, touched: list[str], new: list[str], drop: list[str]) -> tuple[pa.Table, pa.Table]:
        """Close the current version of ``touched`` keys, open new keys, drop ``drop`` entirely."""
        out: list[tuple[str, str, int, bool]] = []
        for name in touched:
            self.clock += 1
            closed = [(t, m, False) for t, m, _ in self.history[name]]
            self.history[name] = [*closed, (f"t-{name}-{self.clock}", self.clock, True)]
            out += [(name, t, m, c) for t, m, c in self.history[name]]
        for name in new:
            if name not in self.history:
                self.clock += 1
                self.history[name] = [(f"t-{name}", self.clock, True)]
                out += [(name, t, m, c) for t, m, c in self.history[name]]
        for name in drop:
            self.history.pop(name, None)
        keys = _rows([(n, "", 0, True) for n in [*touched, *drop]]).select(KEY)
        return keys, _rows(out)


batches = st.lists(
    st.tuples(
        st.lists(st.integers(0, 29), max_size=8, unique=True),
        st.lists(st.integers(30, 40), max_size=3, unique=True),
        st.lists(st.integers(0, 40), max_size=2, unique=True),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches, st.integers(1, 4), st.sampled_from([0, 64, 10_000]))
def test_dv_commits_read_back_as_the_copy_on_write_merge(
    tmp_path_factory: pytest.TempPathFactory,
    plan: list[tuple[list[int], list[int], list[int]]],
    files: int,
    limit: int,
) -> None:
    root = tmp_path_factory.mktemp("dv")
    world = World(30)
    initial = world.initial(files)
    dv_uri = _new_table(root / "dv", initial)
    cow_uri = _new_table(root / "cow", initial)
    for touched, new, drop in plan:
        names = [f"n{i:03d}" for i in touched if f"n{i:03d}" in world.history]
        opened = [f"n{i:03d}" for i in new]
        gone = [f"n{i:03d}" for i in drop if f"n{i:03d}" not in [*names, *opened]]
        keys, rows = world.batch(names, opened, gone)
        before = _data_files(dv_uri)
        version = DeltaTable(dv_uri).version()
        metrics = dvs.replace_keys(dv_uri, keys, rows, {"batch_id": "b"}, inline_limit=limit)
        DeltaIO().replace_keys(cow_uri, keys, rows, {"batch_id": "b"})
        assert metrics["num_target_rows_copied"] == 0
        # Nothing rewritten: every data file there before is still there, plus at most one.
        assert before <= _data_files(dv_uri)
        assert len(_data_files(dv_uri) - before) <= 1
        if rows.num_rows or metrics["num_target_rows_deleted"]:
            assert DeltaTable(dv_uri).version() > version
        assert _canonical(_read(dv_uri)) == _canonical(_read(cow_uri))
        _assert_keyed_reads_agree(dv_uri, cow_uri, [*names, *gone, *sorted(world.history)[::3], "n041"])
    table = DeltaTable(dv_uri)
    assert "deletionVectors" in (table.protocol().reader_features or [])
    # The same rows as the history the batches built, one current version per key.
    expected = _rows([(n, t, m, c) for n, h in world.history.items() for t, m, c in h])
    assert _canonical(_read(dv_uri).select([*KEY, "target_node_id", "is_current"])) == _canonical(
        expected.select([*KEY, "target_node_id", "is_current"])
    )


def _assert_keyed_reads_agree(dv_uri: str, cow_uri: str, names: list[str]) -> None:
    """The store's key-filtered read of the vector table (DuckDB over its files, the hidden
    positions dropped) gives delta-rs's rows of the copy-on-write table."""
    keys = pa.table({"source_node_id": pa.array(names, pa.string())})
    table = DeltaTable(dv_uri)
    hidden = sum(
        len(mask) - sum(mask)
        for batch in pa.RecordBatchReader.from_stream(table.deletion_vectors())
        for mask in batch.column("selection_vector").to_pylist()
    )
    expected = _read(cow_uri)
    wanted = pa.compute.is_in(expected.column("source_node_id"), value_set=keys.column(0))
    reads = (("TRUE", "t.*"), ("t.is_current", "t.source_node_id, t.target_node_id"))
    for (where, select), always in ((r, a) for r in reads for a in (False, True)):
        read = dvs.keyed_rows(table, keys, "source_node_id", where, select, without_vectors=always)
        # delta-rs reads a table with no hidden row itself, unless asked otherwise.
        assert (read is None) == (hidden == 0 and not always)
        if read is None:
            continue
        try:
            got = read.reader.read_all()
        finally:
            read.close()
        rows = expected.filter(wanted)
        if where != "TRUE":
            rows = rows.filter(rows.column("is_current"))
        rows = rows.select(got.column_names)
        assert got.schema == rows.schema
        assert _canonical(got) == _canonical(rows)


def _cdf(uri: str, version: int, last: int | None = None) -> pa.Table:
    last = version if last is None else last
    feed = DeltaTable(uri).load_cdf(starting_version=version, ending_version=last)
    data = pa.RecordBatchReader.from_stream(feed).read_all()
    return data.select([*RELATIONSHIPS.names, "_change_type"])


def _typed(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([*RELATIONSHIPS, pa.field("_change_type", pa.string())]))


def test_the_change_feed_of_a_batch_holds_exactly_the_changed_rows(tmp_path: Path) -> None:
    world = World(30)
    initial = world.initial(3)
    dv_uri = _new_table(tmp_path / "dv", initial)
    cow_uri = _new_table(tmp_path / "cow", initial)
    stored = _read(dv_uri)
    keys, rows = world.batch(["n001", "n002", "n017"], ["n033"], [])
    dvs.replace_keys(dv_uri, keys, rows)
    DeltaIO().replace_keys(cow_uri, keys, rows)
    version = int(DeltaTable(dv_uri).version())
    feed = _typed(_cdf(dv_uri, version))
    replaced = stored.filter(
        pa.compute.is_in(stored.column("source_node_id"), pa.array(["n001", "n002", "n017"]))
    )
    deleted = feed.filter(pa.compute.equal(feed.column("_change_type"), "delete")).drop_columns(
        "_change_type"
    )
    inserted = feed.filter(pa.compute.equal(feed.column("_change_type"), "insert")).drop_columns(
        "_change_type"
    )
    assert set(feed.column("_change_type").to_pylist()) == {"delete", "insert"}
    assert _canonical(deleted) == _canonical(replaced)
    assert _canonical(inserted) == _canonical(rows)
    # The very feed delta-rs's MERGE writes for the same change (unchanged rows it copies
    # are not in it either).
    assert _canonical(feed) == _canonical(_typed(_cdf(cow_uri, int(DeltaTable(cow_uri).version()))))


def test_a_table_under_a_path_with_a_space_takes_vectors(tmp_path: Path) -> None:
    # delta-rs lists such a table's files percent-encoded ("with%20space").
    world = World(30)
    initial = world.initial(3)
    dv_uri = _new_table(tmp_path / "with space", initial)
    cow_uri = _new_table(tmp_path / "cow", initial)
    keys, rows = world.batch(["n001", "n017"], ["n033"], [])
    metrics = dvs.replace_keys(dv_uri, keys, rows)
    DeltaIO().replace_keys(cow_uri, keys, rows)
    assert metrics["num_target_rows_deleted"] > 0
    assert _canonical(_read(dv_uri)) == _canonical(_read(cow_uri))


def test_a_second_writer_is_told_and_its_files_are_orphans(tmp_path: Path) -> None:
    world = World(10)
    uri = _new_table(tmp_path / "t", world.initial(2))
    dvs.enable(uri)
    keys, rows = world.batch(["n001"], [], [])
    pending = dvs.prepare_replace(uri, keys, rows)
    # Another writer takes the version first.
    write_deltalake(uri, _rows([("n099", "x", 5, True)]), mode="append")
    before = _read(uri)
    with pytest.raises(ConflictError, match="another writer committed version"):
        pending.commit()
    assert _canonical(_read(uri)) == _canonical(before)
    assert all(path.exists() for path in pending.files)
    drop_orphans(DeltaIO(), [uri])
    assert not any(path.exists() for path in pending.files)
    assert _canonical(_read(uri)) == _canonical(before)
    # Retried on the new version, the same change commits.
    dvs.replace_keys(uri, keys, rows)
    assert sorted(
        _read(uri)
        .filter(pa.compute.equal(_read(uri).column("source_node_id"), "n001"))
        .column("is_current")
        .to_pylist()
    ) == [False, True]


CRASH = """
import sys, pyarrow as pa
from aag.graph import deletion_vectors as dvs
keys = pa.ipc.open_file(sys.argv[2]).read_all()
rows = pa.ipc.open_file(sys.argv[3]).read_all()
dvs.replace_keys(sys.argv[1], keys, rows, inline_limit=0)
"""


def _ipc(table: pa.Table, path: Path) -> str:
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)
    return str(path)


def test_a_crash_before_the_log_entry_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    world = World(20)
    uri = _new_table(tmp_path / "t", world.initial(2))
    # A first DV commit with vectors in a file, which drop_orphans must keep.
    keys, rows = world.batch(["n003", "n004", "n005"], [], [])
    dvs.replace_keys(uri, keys, rows, inline_limit=0)
    live_vectors = {p.name for p in Path(uri).glob("deletion_vector_*.bin")}
    assert live_vectors
    before, version = _read(uri), DeltaTable(uri).version()
    keys, rows = world.batch(["n003", "n011"], ["n030"], [])
    env = {**os.environ, "AAG_CRASH_AT": "dv-files-written"}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, uri, _ipc(keys, tmp_path / "k"), _ipc(rows, tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr
    assert DeltaTable(uri).version() == version
    assert _canonical(_read(uri)) == _canonical(before)
    left = {p.name for p in Path(uri).rglob("*") if p.is_file() and "_delta_log" not in p.parts}
    drop_orphans(DeltaIO(), [uri])
    kept = {p.name for p in Path(uri).rglob("*") if p.is_file() and "_delta_log" not in p.parts}
    assert len(left - kept) == 3  # the new data, vector and change files and nothing else
    assert live_vectors <= kept
    assert any(name.startswith("cdc-") for name in kept)  # the first commit's feed stays
    assert _canonical(_read(uri)) == _canonical(before)
    # The batch run again commits as if nothing had happened.
    dvs.replace_keys(uri, keys, rows)
    assert sum(_read(uri).column("is_current").to_pylist()) == 21


# -- Delta Lake's own reader -------------------------------------------------------------
@pytest.mark.spark
def test_delta_spark_reads_the_rows_and_the_feed_the_dv_writer_wrote(tmp_path: Path) -> None:
    world = World(40)
    uri = _new_table(tmp_path / "t", world.initial(3))
    start = int(DeltaTable(uri).version()) + 1
    plan = [
        (["n001", "n002", "n010", "n020"], ["n050"], []),
        (["n001", "n030", "n031"], [], ["n005"]),  # n001 again: a file's vector grows
        ([f"n{i:03d}" for i in range(0, 40, 2)], [], []),
    ]
    for step, (touched, new, drop) in enumerate(plan):
        keys, rows = world.batch(touched, new, drop)
        # The last batch's vectors go to a file, the others' inline into the log.
        dvs.replace_keys(uri, keys, rows, inline_limit=0 if step == len(plan) - 1 else dvs.INLINE_LIMIT)
    table = DeltaTable(uri)
    descriptors = [
        json.loads(line)["add"].get("deletionVector")
        for path in sorted(Path(uri, "_delta_log").glob("*.json"))
        for line in path.read_text().splitlines()
        if '"add"' in line
    ]
    kinds = {d["storageType"] for d in descriptors if d}
    assert kinds == {"i", "u"}, kinds
    counts = delta_spark("dump", str(tmp_path / "rows"), f"rel={uri}")
    ours = _read(uri)
    theirs = pq.read_table(tmp_path / "rows" / "rel.parquet").cast(RELATIONSHIPS)
    assert counts["rel"] == ours.num_rows
    assert _canonical(theirs) == _canonical(ours)
    delta_spark("cdf", str(tmp_path / "feed"), f"rel={uri}@{start}")
    spark_feed = pq.read_table(tmp_path / "feed" / "rel.parquet")
    feed = table.load_cdf(starting_version=start)
    ours_feed = pa.RecordBatchReader.from_stream(feed).read_all()
    names = [*RELATIONSHIPS.names, "_change_type", "_commit_version"]
    schema = pa.schema(
        [*RELATIONSHIPS, pa.field("_change_type", pa.string()), pa.field("_commit_version", pa.int64())]
    )
    assert spark_feed.num_rows == ours_feed.num_rows > 0
    assert _canonical(spark_feed.select(names).cast(schema)) == _canonical(
        ours_feed.select(names).cast(schema)
    )


def test_optimize_and_vacuum_keep_live_vectors_and_drop_dead_ones(tmp_path: Path) -> None:
    wh = Warehouse(str(tmp_path / "wh"), deletion_vectors=True)
    wh.init()
    uri = wh.graph.relationships_uri
    world = World(40)
    for data in world.initial(3):
        DeltaIO().append(uri, data)
    for touched in (["n001", "n002", "n010"], [f"n{i:03d}" for i in range(1, 40, 3)]):
        keys, rows = world.batch(touched, [], [])
        dvs.replace_keys(uri, keys, rows, inline_limit=0)
    vectors = set(Path(uri).glob("deletion_vector_*.bin"))
    assert len(vectors) == 2
    # delta-rs writes the table on top: a copy-on-write MERGE and an append.
    keys, rows = world.batch(["n002", "n004"], ["n066"], [])
    DeltaIO().replace_keys(uri, keys, rows)
    DeltaIO().append(uri, _rows([("n099", "t", 5, True)]))
    expected = _canonical(_read(uri))
    assert sum(_read(uri).column("is_current").to_pylist()) == 42
    removed = maintenance.vacuum(wh)
    assert removed[uri] >= 1  # the files the MERGE replaced
    assert set(Path(uri).glob("deletion_vector_*.bin")) <= vectors
    assert _canonical(_read(uri)) == expected
    maintenance.optimize(wh)
    assert _canonical(_read(uri)) == expected
    assert not [
        a
        for a in dvs.live_adds(Path(uri), int(DeltaTable(uri).version())).values()
        if a.get("deletionVector")
    ]
    maintenance.vacuum(wh)
    # Compacted: no file has a vector any more, so no vector file is left.
    assert not list(Path(uri).glob("deletion_vector_*.bin"))
    assert _canonical(_read(uri)) == expected
    # The writer goes on on the compacted table.
    keys, rows = world.batch(["n007"], [], [])
    dvs.replace_keys(uri, keys, rows)
    assert sum(_read(uri).column("is_current").to_pylist()) == 42


def test_the_store_ingests_the_same_graph_with_deletion_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aag.demo import write_demo_files
    from aag.service import AagService

    services = {}
    for name, flag in (("cow", "0"), ("dv", "1")):
        monkeypatch.setenv("AAG_DELETION_VECTORS", flag)
        svc = AagService(str(tmp_path / name))
        assert svc.warehouse.graph.deletion_vectors == (flag == "1")
        svc.init()
        for batch, path in write_demo_files(tmp_path / f"in-{name}"):
            svc.ingest(batch.source_system, batch.source_object, [path])
        services[name] = svc
    cow, dv = (services[n].warehouse.graph.relationships_uri for n in ("cow", "dv"))
    assert "deletionVectors" in (DeltaTable(dv).protocol().reader_features or [])
    assert "deletionVectors" not in (DeltaTable(cow).protocol().reader_features or [])
    assert _canonical(_read(dv)) == _canonical(_read(cow))
    # The copy-on-write store rewrote rows; the vector store replaced versions and rewrote none.
    rewritten = {
        n: sum(s.warehouse.batches().column("edge_rows_rewritten").to_pylist()) for n, s in services.items()
    }
    assert rewritten["cow"] > 0
    assert rewritten["dv"] == 0
    commits = [
        json.loads(line)["commitInfo"]
        for path in sorted(Path(dv, "_delta_log").glob("*.json"))
        for line in path.read_text().splitlines()
        if line.startswith('{"commitInfo"')
    ]
    merges = [
        c
        for c in commits
        if c.get("engineInfo") == "aag deletion-vector writer" and c["operation"] == "MERGE"
    ]
    assert merges
    assert sum(int(c["operationMetrics"]["num_target_rows_deleted"]) for c in merges) > 0
    # The batches handed their stored rows over: the feed's deleted rows came from them,
    # not from reading the touched files again ...
    assert any(
        int(c["operationMetrics"]["num_target_rows_deleted"])
        and c["operationMetrics"]["num_files_read_for_the_feed"] == "0"
        for c in merges
    )
    # ... and the feed is the one delta-rs's MERGE writes, over all the batches.
    assert _canonical(_whole_feed(dv)) == _canonical(_whole_feed(cow))


def _whole_feed(uri: str) -> pa.Table:
    """Every row change the table's change feed records, without commit versions and times."""
    return _typed(_cdf(uri, 0, int(DeltaTable(uri).version())))


def _physical_targets(uri: str) -> set[str]:
    """``target_node_id`` of every row in the table's data files, hidden rows included."""
    return {
        str(v)
        for path in Path(uri).glob("*.parquet")
        for v in pq.read_table(path, columns=["target_node_id"]).column(0).to_pylist()
    }


def test_an_erasure_purges_the_rows_vectors_hide(tmp_path: Path) -> None:
    wh = Warehouse(str(tmp_path / "wh"), deletion_vectors=True)
    wh.init()
    uri = wh.graph.relationships_uri
    world = World(20)
    DeltaIO().append(uri, world.initial(1)[0])
    # n003 gets a new version; n005's rows go (its source record was deleted, say).
    keys, rows = world.batch(["n003"], [], ["n005"])
    dvs.replace_keys(uri, keys, rows)
    # n005's row is hidden in the first file, whose other rows are live.
    assert "t5-0" in _physical_targets(uri)
    assert "t5-0" not in _read(uri).column("target_node_id").to_pylist()
    expected = _canonical(_read(uri))
    assert dvs.purge(uri, {"aag.operation": "erase"}) == 1
    assert _canonical(_read(uri)) == expected
    assert DeltaTable(uri).history(1)[0]["operation"] == "REORG"
    maintenance.vacuum(wh)
    assert "t5-0" not in _physical_targets(uri)
    assert _canonical(_read(uri)) == expected
    assert not list(Path(uri).glob("deletion_vector_*.bin"))
    assert dvs.purge(uri) == 0  # nothing hidden any more: no commit


def test_the_store_scans_read_by_duckdb_give_delta_rs_rows(tmp_path: Path) -> None:
    """The identity scan and the new-node lookup (DuckDB's reader on every local table, the
    nodes' files picked by partition value) return exactly what delta-rs's rows say."""
    store = DeltaGraphStore(str(tmp_path / "silver"), DeltaIO())
    store.create()
    types = ["email", "phone", "city"]
    nodes = pa.table(
        {
            "node_id": [f"{t}-{i}" for t in types for i in range(20)] + ["shared-0"] * 2,
            "node_type": [t for t in types for _ in range(20)] + ["email", "city"],
            "value": [f"v{i}" for i in range(62)],
            "checksum": [None] * 62,
            "created_at": [T0] * 62,
            "properties": [None] * 62,
        }
    ).cast(NODES)
    for half in (nodes.slice(0, 31), nodes.slice(31)):
        DeltaIO().append(store.nodes_uri, half)
    world = World(30)
    for data in world.initial(2):
        DeltaIO().append(store.relationships_uri, data)
    wanted = pa.table({"node_id": ["email-3", "email-19", "phone-4", "city-7", "shared-0", "nope"]})
    try:
        found = store.scan_node_ids(["email", "phone"], wanted)
        got = sorted(_open_scan(found).column("node_id").to_pylist())
    finally:
        store.scans_done()
    assert got == ["email-19", "email-3", "phone-4", "shared-0"]
    for vectors in (False, True):
        if vectors:
            keys, rows = world.batch(["n001", "n004"], [], [])
            dvs.replace_keys(store.relationships_uri, keys, rows, {"batch_id": "b"})
        stored = _read(store.relationships_uri)
        targets = [*stored.column("target_node_id").to_pylist()[::4], "none"]
        ids = pa.table({"id": targets})
        try:
            scan = store.scan_edge_versions("target_node_id", ids, ["HAS_EMAIL"])
            rows_read = _open_scan(scan)
        finally:
            store.scans_done()
        expected = stored.filter(pa.compute.is_in(stored.column("target_node_id"), value_set=ids.column(0)))
        assert rows_read.num_rows == expected.num_rows > 0
        columns = list(rows_read.column_names)
        assert _canonical(rows_read) == _canonical(expected.select(columns))


def _open_scan(scan: Any) -> pa.Table:
    data = scan() if callable(scan) else scan
    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data
