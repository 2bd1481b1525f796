"""Ingesting a batch: land → extract → edge rules → commit → ledger.

:func:`plan_change` is the engine-neutral heart (field events in, graph change
out) and runs on any :class:`~aag.store.GraphStore`; :func:`ingest_file` adds
what the warehouse needs around it (landing, quarantine, ledger).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from aag.bronze import FORMATS, Chunk, file_format, file_sha256, read_chunks
from aag.delta import now_utc
from aag.engine.base import Engine
from aag.engine.duckdb import local_connection
from aag.errors import AagError
from aag.faults import crash_point
from aag.identity import ID_KEYS, ID_ROWS, IdentitySettings, release_identity, resolve_identity
from aag.relink import warehouse_identity
from aag.rules import FLAT_EDGES, OUT_FLAT, OUT_KEYS, OUT_LOG, OUT_ROWS, apply_edge_rules, release_rule_tables
from aag.sources import day_precision_prefixes, extractor_for
from aag.sources.base import EVENTS_TABLE, NODES_TABLE, Extractor, landed_table
from aag.store import ChangeSql, CommitStats, GraphChange, GraphStore, relationships_stream
from aag.warehouse import Warehouse


@dataclass
class BatchReport:
    """What happened to one input file."""

    file: str
    batch_id: str
    status: str
    rows_landed: int = 0
    #: Rows identical to a row of an earlier committed batch: processed by skipping them,
    #: since their events are already part of the graph.
    rows_unchanged: int = 0
    #: Rows of erased records: dropped before landing, stored nowhere (GDPR erasure holds).
    rows_suppressed: int = 0
    #: Re-sent calls (a Segment message id seen before in the file or in a committed batch,
    #: whatever they carry): landed, processed by dropping them, the first call wins.
    rows_duplicate: int = 0
    rows_processed: int = 0
    rows_quarantined: int = 0
    fields_rejected: int = 0
    field_events: int = 0
    nodes_written: int = 0
    edge_versions_written: int = 0
    edge_rows_rewritten: int = 0
    #: Incoming keys per rule path (skip, absorb, open, close, close_open, full).
    rule_paths: dict[str, int] = field(default_factory=dict)
    #: Identity: records whose cluster was recomputed, SAME_AS links written, links ended.
    identity: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return asdict(self)


#: Engine view of the batch's nodes that the graph does not hold yet.
NEW_NODES = "batch_new_nodes"
#: Engine table of their ids.
NEW_NODE_IDS = "batch_new_node_ids"


@dataclass
class Plan:
    """What a batch will write (left in the engine), and how the edge rules got there."""

    engine: Engine
    replace_keys: pa.Table
    counts: dict[str, int]
    new_versions: int
    paths: dict[str, int]
    #: Engine tables the change is still computed from (dropped on release).
    inputs: tuple[str, ...] = ()
    #: Whether identity added SAME_AS changes (:data:`aag.identity.ID_ROWS`).
    identity: bool = False
    #: Identity counts for the report (empty when identity did not run).
    identity_counts: dict[str, int] = field(default_factory=dict)

    def change(self, metadata: dict[str, Any] | None = None) -> GraphChange:
        """The change as streams out of the engine, each opened when the store reads it."""
        engine = self.engine
        rows = f"SELECT * FROM {OUT_ROWS}"
        if self.identity:
            rows += f" UNION ALL SELECT * FROM {ID_ROWS}"
        keys = f"SELECT * FROM {OUT_KEYS}"
        if self.identity:
            keys += f" UNION ALL SELECT * FROM {ID_KEYS}"
        flat = f"SELECT {', '.join(FLAT_EDGES.names)} FROM {OUT_FLAT}"
        more = [lambda: engine.stream(f"SELECT * FROM {ID_ROWS}")] if self.identity else []
        return GraphChange(
            nodes=lambda: engine.stream(f"SELECT * FROM {NEW_NODES}"),
            replace_keys=self.replace_keys,
            # The lineage maps are built in Arrow as the rows stream out (see unflatten_batch).
            edge_rows=lambda: relationships_stream(engine.stream(flat), *more),
            log_append=lambda: engine.stream(f"SELECT * FROM {OUT_LOG}"),
            counts=self.counts,
            metadata=dict(metadata or {}),
            sql=ChangeSql(
                nodes=f"SELECT * FROM {NEW_NODES}",
                replace_keys=keys,
                edge_rows=rows,
                log_append=f"SELECT * FROM {OUT_LOG}",
            ),
        )

    def release(self) -> None:
        """Drop the engine tables holding the change (and the batch's inputs)."""
        release_identity(self.engine)
        release_rule_tables(self.engine)
        for name in (NEW_NODES, NEW_NODE_IDS, *self.inputs):
            self.engine.drop(name)


def plan_change(
    engine: Engine,
    store: GraphStore,
    events: str = EVENTS_TABLE,
    nodes: str = NODES_TABLE,
    identity: IdentitySettings | None = None,
    day_precision: Sequence[str] = (),
    repeats: str | None = None,
) -> Plan:
    """Decide what a batch of field events changes in the graph.

    Args:
        engine: Engine running the rules.
        store: Current graph.
        events: Engine table of the batch's field events (:data:`aag.model.FIELD_EVENTS`).
        nodes: Engine table of the node rows they refer to (:data:`aag.model.NODES`), one
            per node id.
        identity: Identity rules of the batch's entity type (none: records are not linked).
        day_precision: Event id prefixes of day-precision sources, whose events finer
            same-day events shadow (:func:`aag.rules.apply_edge_rules`).
        repeats: Engine table of the only entities whose keys may carry several of the
            batch's events, if the extraction knows them (:attr:`aag.sources.base.Extracted.repeats`);
            dropped with the plan.

    Returns:
        The plan: counts, rule paths, and the change left in the engine until
        :meth:`Plan.release`, which also drops ``events`` and ``nodes``.
    """
    temp = (
        "incoming",
        "batch_entities",
        "store_rel",
        "existing_rel",
        "store_log",
        "existing_log",
        "store_node_ids",
        *((repeats,) if repeats else ()),
    )
    try:
        engine.view("incoming", f"SELECT * FROM {events}")
        engine.materialize("batch_entities", f"SELECT DISTINCT source_node_id FROM {events}")
        entities = engine.query("SELECT source_node_id FROM batch_entities")
        # Only the touched entities' history enters the rules; the scans stream through.
        engine.register_scan("store_rel", store.scan_relationships(entities))
        engine.materialize(
            "existing_rel",
            "SELECT * FROM store_rel WHERE source_node_id IN (SELECT source_node_id FROM batch_entities)",
        )
        engine.register_scan("store_log", store.scan_edge_events(entities))
        engine.materialize(
            "existing_log",
            "SELECT * FROM store_log WHERE source_node_id IN (SELECT source_node_id FROM batch_entities)",
        )
        store.scans_done()
        result = apply_edge_rules(engine, day_precision, repeats)
        types = [
            str(t) for t in engine.query(f"SELECT DISTINCT node_type FROM {nodes}").column(0).to_pylist()
        ]
        engine.register_scan("store_node_ids", store.scan_node_ids(types))
        engine.materialize(
            NEW_NODE_IDS,
            # NOT EXISTS (ids are never NULL): a hash anti-join on every engine.
            f"SELECT node_id FROM {nodes} n WHERE NOT EXISTS "
            "(SELECT 1 FROM store_node_ids s WHERE s.node_id = n.node_id)",
        )
        # Only the ids are kept: a second copy of the rows (all of them on a first load)
        # would sit in the engine's memory through the commit, where the batch peaks.
        engine.view(NEW_NODES, f"SELECT * FROM {nodes} WHERE node_id IN (SELECT node_id FROM {NEW_NODE_IDS})")
        new_nodes = engine.query(f"SELECT count(*) AS n FROM {NEW_NODE_IDS}").column(0)[0].as_py()
        linked = None
        if identity is not None:
            linked = resolve_identity(
                engine, store, identity, "batch_entities", OUT_FLAT, OUT_KEYS, "existing_rel", NEW_NODE_IDS
            )
            store.scans_done()
        keys_sql = f"SELECT * FROM {OUT_KEYS}"
        if linked is not None:
            keys_sql += f" UNION ALL SELECT * FROM {ID_KEYS}"
        replace_keys = engine.query(keys_sql)
    except BaseException:
        store.scans_done()
        release_identity(engine)
        release_rule_tables(engine)
        for name in (NEW_NODES, NEW_NODE_IDS, *temp, events, nodes):
            engine.drop(name)
        raise
    # The change is still a view over these tables: they live until Plan.release().
    return Plan(
        engine=engine,
        replace_keys=replace_keys,
        counts={
            "nodes": int(new_nodes),
            "edges": result.new_rows + (linked.rows if linked else 0),
            "log": result.log_events,
        },
        new_versions=result.new_versions,
        paths=result.paths,
        inputs=(*temp, events, nodes),
        identity=linked is not None,
        identity_counts={}
        if linked is None
        else {"records_examined": linked.closure, "links_written": linked.rows, "links_ended": linked.keys},
    )


def split_unchanged(
    engine: Engine, rows: pa.Table, landed: pa.RecordBatchReader | None
) -> tuple[pa.Table, pa.Table]:
    """Split landed rows into fresh rows and rows already landed in a committed batch.

    A row whose raw content is byte-identical to an earlier committed row yields exactly
    the events that row did (same values, same times, same event ids), and those are
    already in the graph, so it can skip extraction and the rules. This is what makes a
    no-change full re-sync cheap; a re-sync in another format simply goes the long way.

    Returns:
        The fresh rows, and ``_row_number, record_id`` of the unchanged ones.
    """
    empty_ids = pa.table({"_row_number": pa.array([], pa.int64()), "record_id": pa.array([], pa.string())})
    if landed is None:
        return rows, empty_ids
    engine.register("su_rows", rows)
    engine.register("su_landed", landed)
    try:
        engine.materialize(
            "su_seen",
            "SELECT DISTINCT _row_digest, _record_id "
            "FROM su_landed WHERE _row_digest IN (SELECT _row_digest FROM su_rows)",
        )
        fresh = engine.query(
            "SELECT * FROM su_rows WHERE _row_digest NOT IN (SELECT _row_digest FROM su_seen) "
            "ORDER BY _row_number"
        )
        ids = engine.query(
            "SELECT r._row_number, any_value(s._record_id) AS record_id FROM su_rows r "
            "JOIN su_seen s USING (_row_digest) GROUP BY r._row_number"
        )
    finally:
        for name in ("su_rows", "su_landed", "su_seen"):
            engine.drop(name)
    return fresh.cast(rows.schema), ids.cast(empty_ids.schema)


def register_reads(warehouse: Warehouse, engine: Engine, extractor: Extractor) -> list[str]:
    """Make the landed rows of every object the extractor reads queryable in the engine.

    Each object's rows from committed batches are parsed from their raw text into the
    columns that object's own extractor lands, and registered as
    :func:`~aag.sources.base.landed_table`. Returns the names to drop afterwards.
    """
    config = warehouse.config
    system = extractor.spec.source_system
    names = []
    for obj in extractor.reads:
        reader = extractor_for(config.object(system, obj), config)
        name = landed_table(obj)
        engine.register(name, warehouse.landed_rows(system, reader.spec.source_object, reader.fields))
        names.append(name)
    return names


def suppress_erased(
    warehouse: Warehouse, engine: Engine, extractor: Extractor, rows: pa.Table
) -> tuple[pa.Table, int]:
    """Drop the rows of erased records before anything is written.

    Returns the remaining rows and how many were dropped. The erasure log keeps a
    one-way key per erased record, so a CRM that re-sends an erased contact cannot bring
    it back. Costs nothing while nothing of the object was erased.
    """
    spec = extractor.spec
    erased = warehouse.erased_record_keys(spec.source_system, spec.source_object)
    if erased.num_rows == 0 or rows.num_rows == 0:
        return rows, 0
    ids = extractor.record_ids(engine, rows)
    engine.register("se_rows", rows)
    engine.register("se_ids", ids)
    engine.register("se_erased", erased)
    try:
        prefix = f"{spec.source_system}:{spec.source_object}:".replace("'", "''")
        kept = engine.query(
            "SELECT r.* FROM se_rows r JOIN se_ids i USING (_row_number) "
            f"WHERE i.record_id IS NULL OR sha256(concat('{prefix}', i.record_id)) "
            "NOT IN (SELECT record_key FROM se_erased) ORDER BY r._row_number"
        )
    finally:
        for name in ("se_rows", "se_ids", "se_erased"):
            engine.drop(name)
    return kept.cast(rows.schema), rows.num_rows - kept.num_rows


def drop_resent(warehouse: Warehouse, extractor: Extractor, rows: pa.Table) -> tuple[pa.Table, int]:
    """Drop the rows whose :attr:`~aag.sources.base.Extractor.first_wins_key` is stored already.

    A call delivered twice must not change the profile, even when the second copy differs
    (a client re-sending a message id with new content): the first call a committed batch
    holds wins. Committed bronze rows are streamed, so memory does not grow with history.

    Returns:
        The rows to extract, and how many were dropped.
    """
    key = extractor.first_wins_key
    spec = extractor.spec
    uri = warehouse.bronze_uri(spec.source_system, spec.source_object)
    if key is None or rows.num_rows == 0 or not warehouse.io.exists(uri):
        return rows, 0
    ledger = warehouse.io.read(
        warehouse.ledger_uri,
        "batch_id",
        f"status = 'committed' AND source_system = '{spec.source_system}' "
        f"AND source_object = '{spec.source_object}'",
    )
    committed = ", ".join(f"'{b}'" for b in ledger.column(0).to_pylist())
    if not committed:
        return rows, 0
    # Rows without a record id were quarantined whole and changed nothing: not a first call.
    stored = warehouse.io.reader(
        uri, f"SELECT _raw FROM t WHERE _batch_id IN ({committed}) AND _record_id IS NOT NULL"
    )
    # Reading a key out of stored raw JSON text is a local conversion: Spark SQL has no
    # json_valid, and the stored rows stream from the Delta table into this process anyway.
    con = local_connection()
    con.register("dr_rows", rows)
    con.register("dr_stored", stored)
    path = "'$.\"" + key.replace('"', '\\"').replace("'", "''") + "\"'"
    column = '"' + key.replace('"', '""') + '"'
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dr_keys AS "
            f"SELECT DISTINCT trim({column}) AS k FROM dr_rows WHERE nullif(trim({column}), '') IS NOT NULL"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dr_seen AS SELECT DISTINCT k FROM "
            f"(SELECT trim(json_extract_string(_raw, {path})) AS k FROM dr_stored WHERE json_valid(_raw)) s "
            "WHERE k IN (SELECT k FROM dr_keys)"
        )
        kept: pa.Table = con.sql(
            f"SELECT * FROM dr_rows WHERE nullif(trim({column}), '') IS NULL "
            f"OR trim({column}) NOT IN (SELECT k FROM dr_seen) ORDER BY _row_number"
        ).to_arrow_table()
    finally:
        con.unregister("dr_rows")
        con.unregister("dr_stored")
        con.execute("DROP TABLE IF EXISTS dr_keys")
        con.execute("DROP TABLE IF EXISTS dr_seen")
    return kept.cast(rows.schema), rows.num_rows - kept.num_rows


def batch_id_for(source_system: str, source_object: str, file_digest: str, fmt: str | None = None) -> str:
    """Batch id: the same file content, in the same format, for the same object is the same batch.

    The format is part of the key because the same bytes mean different things to
    different readers (an empty ``.jsonl`` is no empty ``.csv``; JSON text named
    ``.parquet`` is no Parquet file): each file is judged by its own reader. Without
    ``fmt`` it is the id ledgers written before the format was part of the key used.
    """
    key = (
        f"{source_system}/{source_object}/{file_digest}"
        if fmt is None
        else (f"{source_system}/{source_object}/{fmt}/{file_digest}")
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def already_ingested(warehouse: Warehouse, batch_id: str, legacy_id: str, fmt: str) -> bool:
    """Whether the ledger records this batch as committed.

    A ledger row under the legacy id (content only, see :func:`batch_id_for`) counts only
    when the file it recorded was of the same format, so old ledgers stay valid without
    a migration and a same-bytes file of another format is still read.
    """
    if warehouse.committed_batches([batch_id]):
        return True
    if not warehouse.committed_batches([legacy_id]):
        return False
    found = warehouse.io.read(
        warehouse.ledger_uri, "file_name", f"status = 'committed' AND batch_id = '{legacy_id}'"
    )
    return any(FORMATS.get(Path(str(name)).suffix.lower()) == fmt for name in found.column(0).to_pylist())


#: The steps of one batch, in order (for progress reporting). A file read in chunks goes
#: through the middle three once per chunk.
STEPS = ("reading", "extracting", "applying edge rules", "committing")


@dataclass(frozen=True)
class FileProgress:
    """How far the ingestion of one file is.

    Attributes:
        chunk: Number of the chunk being processed (1-based; 0 while the file is hashed).
        done: Position in the file, in ``unit``.
        total: Size of the file, in ``unit``.
        unit: ``bytes`` or ``rows``.
        rows: Rows landed so far.
    """

    chunk: int
    done: int
    total: int
    unit: str
    rows: int


def _add_counts(target: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        target[key] = target.get(key, 0) + int(value)


def ingest_file(
    warehouse: Warehouse,
    engine: Engine,
    source_system: str,
    source_object: str,
    path: Path,
    on_step: Callable[[str], None] | None = None,
    graph: GraphStore | None = None,
    on_progress: Callable[[FileProgress], None] | None = None,
    chunk_rows: int | None = None,
    max_row_bytes: int | None = None,
) -> BatchReport:
    """Land and process one file as one batch (a re-landed identical file is a no-op).

    The file is read and processed in chunks (:func:`aag.bronze.read_chunks`), so memory
    stays bounded whatever its size. Each chunk lands, is extracted and has its graph
    change committed before the next is read; the batch's single ledger row, written
    after the last chunk, is what makes the file count as ingested. Every write of a chunk
    is idempotent for the batch (see docs/reliability.md), so re-running a file after a
    crash anywhere converges to the tables of an uninterrupted run, and the chunked result
    equals a one-piece run's (the edge rules are a function of each key's event set).

    Args:
        warehouse: Target warehouse.
        engine: Compute engine.
        source_system: Source system of the file.
        source_object: Source object of the file.
        path: The file.
        on_step: Called with each of :data:`STEPS` as it starts.
        graph: Where the graph lives (default: the warehouse's Delta tables). Bronze,
            quarantine and the ledger stay in the warehouse either way.
        on_progress: Called as the file is hashed and after every chunk.
        chunk_rows: Rows per chunk (default ``$AAG_CHUNK_ROWS``, else
            :data:`aag.bronze.DEFAULT_CHUNK_ROWS`).
        max_row_bytes: The row size limit: a longer row is quarantined (default
            ``$AAG_MAX_ROW_BYTES``, else :data:`aag.bronze.DEFAULT_MAX_ROW_BYTES`).

    Raises:
        InputError: If the file cannot be read at all (nothing is written).
    """
    step = on_step or (lambda _: None)
    progress = on_progress or (lambda _: None)
    graph = graph or warehouse.graph
    started = time.perf_counter()
    config = warehouse.config
    spec = config.object(source_system, source_object)
    size = path.stat().st_size if path.is_file() else 0
    digest = file_sha256(path, lambda done: progress(FileProgress(0, done, size, "bytes", 0)))
    fmt = file_format(path)
    batch_id = batch_id_for(spec.source_system, spec.source_object, digest, fmt)
    if already_ingested(
        warehouse, batch_id, batch_id_for(spec.source_system, spec.source_object, digest), fmt
    ):
        return BatchReport(file=str(path), batch_id=batch_id, status="already ingested")
    step(STEPS[0])
    extractor = extractor_for(spec, config)
    # The report sums the chunks' counts; it is returned only once every chunk committed.
    totals = BatchReport(file=str(path), batch_id=batch_id, status="committed")
    now = now_utc()
    reads: list[str] = []
    try:
        chunks = read_chunks(
            path,
            extractor.fields,
            chunk_rows=chunk_rows if extractor.chunkable else 1 << 62,
            chunk_bytes=None if extractor.chunkable else 1 << 62,
            row_bytes=max_row_bytes,
        )
        # Landed rows of other objects the extraction joins, registered before anything is
        # written, so that a missing object fails the batch cleanly. Only committed batches
        # are read, so they are the same for every chunk of this batch.
        reads = register_reads(warehouse, engine, extractor)
        for number, chunk in enumerate(chunks, start=1):
            if number > 1:
                step(STEPS[0])
            _ingest_chunk(
                warehouse,
                engine,
                graph,
                extractor,
                chunk,
                batch_id,
                path,
                now,
                totals,
                first=number == 1,
                step=step,
            )
            progress(FileProgress(number, chunk.done, chunk.total, chunk.unit, totals.rows_landed))
    finally:
        for name in reads:
            engine.drop(name)
        extractor.close()
    report = totals
    report.seconds = round(time.perf_counter() - started, 3)
    crash_point("before-ledger")
    warehouse.record_batch(
        {
            "batch_id": batch_id,
            "source_system": spec.source_system,
            "source_object": spec.source_object,
            "file_name": path.name,
            "file_sha256": digest,
            "status": "committed",
            "rows_landed": report.rows_landed,
            "rows_unchanged": report.rows_unchanged,
            "rows_suppressed": report.rows_suppressed,
            "rows_processed": report.rows_processed,
            "rows_quarantined": report.rows_quarantined,
            "fields_rejected": report.fields_rejected,
            "field_events": report.field_events,
            "nodes_written": report.nodes_written,
            "edge_versions_written": report.edge_versions_written,
            "edge_rows_rewritten": report.edge_rows_rewritten,
            "started_at": now.as_py(),
            "finished_at": now_utc().as_py(),
        }
    )
    crash_point("ledger-written")
    return report


def _ingest_chunk(
    warehouse: Warehouse,
    engine: Engine,
    graph: GraphStore,
    extractor: Extractor,
    chunk: Chunk,
    batch_id: str,
    path: Path,
    now: pa.Scalar,
    totals: BatchReport,
    first: bool,
    step: Callable[[str], None],
) -> None:
    """Land, extract, plan and commit one chunk of a batch; add its counts to ``totals``.

    The first chunk *replaces* the batch's bronze and quarantine rows (clearing what a
    crashed earlier run of the same file left), later chunks append to them: a re-run
    always starts at the first chunk, so the batch's rows end up written exactly once.
    """
    spec = extractor.spec
    rows, suppressed = suppress_erased(warehouse, engine, extractor, chunk.rows)
    fresh, unchanged_ids = split_unchanged(
        engine, rows, warehouse.landed_digests(spec.source_system, spec.source_object)
    )
    step(STEPS[1])
    record_ids = pa.concat_tables(
        [extractor.record_ids(engine, fresh).cast(unchanged_ids.schema), unchanged_ids]
    )
    # Re-sent calls land (bronze keeps what was received) but are not extracted.
    fresh, resent = drop_resent(warehouse, extractor, fresh)
    # Bronze, quarantine and the graph are independent Delta tables. Bronze lands on a
    # second thread while the chunk is extracted and planned (delta-rs and DuckDB release
    # the GIL; phone parsing does not, so the landing fills that time). Every write is
    # idempotent for this batch id, so a crash between them converges on re-run; the
    # ledger row, written after the last chunk, is what makes the batch count as ingested.
    with ThreadPoolExecutor(max_workers=2) as pool:
        landing = pool.submit(
            warehouse.land,
            spec.source_system,
            spec.source_object,
            batch_id,
            rows.select(["_row_number", "_raw", "_row_digest"]),
            record_ids,
            path.name,
            now,
            first,
        )
        extracted = extractor.extract(engine, fresh, batch_id, now)
        # Only the raw text (held by the landing) is needed from here on.
        rows_total = rows.num_rows
        del fresh, rows
        quarantined = None
        if extracted.quarantine.num_rows or first:
            quarantined = pool.submit(warehouse.write_quarantine, batch_id, extracted.quarantine, first)
        step(STEPS[2])
        plan = plan_change(
            engine,
            graph,
            identity=warehouse_identity(warehouse, spec.entity_type),
            day_precision=day_precision_prefixes(warehouse.config),
            repeats=extracted.repeats,
        )
        step(STEPS[3])
        try:
            stats: CommitStats = graph.commit(plan.change({"aag.batch_id": batch_id, "aag.file": path.name}))
        finally:
            plan.release()
        landing.result()
        if quarantined is not None:
            quarantined.result()
    rows_unchanged = unchanged_ids.num_rows
    if extracted.rows_landed + rows_unchanged + resent != rows_total:  # pragma: no cover
        raise AagError(f"{path}: row accounting broken")
    totals.rows_landed += rows_total
    totals.rows_unchanged += rows_unchanged
    totals.rows_suppressed += suppressed
    totals.rows_processed += extracted.rows_processed + rows_unchanged + resent
    totals.rows_duplicate += extracted.duplicates + resent
    totals.rows_quarantined += extracted.rows_quarantined
    totals.fields_rejected += extracted.fields_rejected
    totals.field_events += extracted.events
    totals.nodes_written += stats.nodes_written
    totals.edge_versions_written += plan.new_versions
    totals.edge_rows_rewritten += stats.edge_rows_rewritten
    _add_counts(totals.rule_paths, plan.paths)
    _add_counts(totals.identity, plan.identity_counts)
