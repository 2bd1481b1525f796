"""Running a file as one batch: land → extract → edge rules → commit → ledger.

The file is read in chunks; each chunk goes through :func:`_ingest_chunk`, and the
batch's ledger row, written after the last one, makes the file count as ingested.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from aag.bronze import FORMATS, Chunk, file_format, file_sha256, read_chunks
from aag.engine.base import Engine
from aag.engine.dialect import lit
from aag.errors import AagError
from aag.graph.bronze_reads import LandedBronze
from aag.graph.delta import now_utc
from aag.graph.ledger import LedgerEntry
from aag.graph.store import GraphStore
from aag.graph.warehouse import Warehouse
from aag.identity.relink import warehouse_identity
from aag.pipeline.deferral import fold_deferred, split_deferred
from aag.pipeline.row_states import maybe_landed, prior_states
from aag.pipeline.rows import drop_resent, register_reads, split_unchanged, suppress_erased
from aag.pipeline.run import BatchRun
from aag.sources import extractor_for
from aag.sources.base import Extractor


@dataclass
class BatchReport:
    """What happened to one input file."""

    file: str
    batch_id: str
    status: str
    rows_landed: int = 0
    #: Rows identical to a row of an earlier committed batch, or deferred (below):
    #: processed by skipping them, since their events are already part of the graph.
    rows_unchanged: int = 0
    #: Of those, rows that re-sent their record's values with a later record time: landed
    #: but not extracted, since their events only confirm (see aag.pipeline.deferral).
    rows_deferred: int = 0
    #: Deferred rows of earlier batches that this batch's events reached (re-extracted).
    rows_folded: int = 0
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
        warehouse.ledger_uri, "file_name", f"status = 'committed' AND batch_id = {lit(legacy_id)}"
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


def read_ahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The same chunks, the next one read on another thread while the caller works on this one.

    The readers parse in DuckDB, which releases the GIL, so reading overlaps the batch's
    own queries and writes. At most two chunks are held at once.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aag-read")
    try:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk
    finally:
        # The reader is idle once the pool is: only then may it be closed.
        pool.shutdown(wait=True)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


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
    run = BatchRun(engine, graph, warehouse, config, warehouse_identity(warehouse, spec.entity_type))
    try:
        chunks = read_ahead(
            read_chunks(
                path,
                extractor.fields,
                chunk_rows=chunk_rows if extractor.chunkable else 1 << 62,
                chunk_bytes=None if extractor.chunkable else 1 << 62,
                row_bytes=max_row_bytes,
            )
        )
        # Landed rows of other objects the extraction joins, registered before anything is
        # written, so that a missing object fails the batch cleanly. Only committed batches
        # are read, so they are the same for every chunk of this batch.
        landed = LandedBronze(warehouse)
        reads = register_reads(landed, engine, extractor)
        for number, chunk in enumerate(chunks, start=1):
            if number > 1:
                step(STEPS[0])
            _ingest_chunk(
                warehouse,
                landed,
                engine,
                run,
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
    applied = run.applied
    report.nodes_written = applied.nodes_written
    report.edge_versions_written = applied.new_versions
    report.edge_rows_rewritten = applied.edge_rows_rewritten
    report.rule_paths = dict(applied.paths)
    report.identity = dict(applied.identity)
    run.finish(
        [
            LedgerEntry(
                batch_id=batch_id,
                source_system=spec.source_system,
                source_object=spec.source_object,
                file_name=path.name,
                file_sha256=digest,
                rows_landed=report.rows_landed,
                rows_unchanged=report.rows_unchanged,
                rows_suppressed=report.rows_suppressed,
                rows_processed=report.rows_processed,
                rows_quarantined=report.rows_quarantined,
                fields_rejected=report.fields_rejected,
                field_events=report.field_events,
                nodes_written=report.nodes_written,
                edge_versions_written=report.edge_versions_written,
                edge_rows_rewritten=report.edge_rows_rewritten,
                started_at=now.as_py(),
                finished_at=now_utc().as_py(),
            )
        ]
    )
    return report


def _ingest_chunk(
    warehouse: Warehouse,
    landed: LandedBronze,
    engine: Engine,
    run: BatchRun,
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
    prior = prior_states(engine, landed, extractor, rows, batch_id, first)
    maybe = maybe_landed(engine, prior, rows)
    earlier = landed.digests(spec.source_system, spec.source_object, maybe) if maybe.num_rows else None
    fresh, unchanged_ids = split_unchanged(engine, rows, earlier)
    # Rows that only re-send their record's values with a later record time (a full
    # re-sync) land without being extracted; their events join a later batch if needed.
    split = split_deferred(engine, landed, extractor, rows, fresh, batch_id, now, first, prior)
    fresh = split.fresh
    step(STEPS[1])
    record_ids = pa.concat_tables(
        [split.record_ids(engine, extractor).cast(unchanged_ids.schema), unchanged_ids, split.deferred]
    )
    # Re-sent calls land (bronze keeps what was received) but are not extracted.
    fresh, resent = drop_resent(landed, extractor, fresh)
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
            split.states,
        )
        extracted = extractor.extract(engine, fresh, batch_id, now)
        # Deferred rows of the batch's entities that its events could reorder are planned
        # with them; the keys may then carry several events each.
        folded = fold_deferred(
            engine, landed, warehouse.config, spec.source_system, None if first else batch_id
        )
        # Only the raw text (held by the landing) is needed from here on.
        rows_total = rows.num_rows
        del fresh, rows
        quarantined = None
        if extracted.quarantine.num_rows or first:
            quarantined = pool.submit(warehouse.write_quarantine, batch_id, extracted.quarantine, first)
        step(STEPS[2])
        run.apply(
            {"aag.batch_id": batch_id, "aag.file": path.name},
            repeats=None if folded else extracted.repeats,
            before_commit=lambda: step(STEPS[3]),
        )
        landing.result()
        if quarantined is not None:
            quarantined.result()
    rows_unchanged = unchanged_ids.num_rows + split.count
    if extracted.rows_landed + rows_unchanged + resent != rows_total:  # pragma: no cover
        raise AagError(f"{path}: row accounting broken")
    totals.rows_landed += rows_total
    totals.rows_unchanged += rows_unchanged
    totals.rows_deferred += split.count
    totals.rows_folded += folded
    totals.rows_suppressed += suppressed
    totals.rows_processed += extracted.rows_processed + rows_unchanged + resent
    totals.rows_duplicate += extracted.duplicates + resent
    totals.rows_quarantined += extracted.rows_quarantined
    totals.fields_rejected += extracted.fields_rejected
    totals.field_events += extracted.events
