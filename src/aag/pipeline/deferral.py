"""Deferred confirmations: re-sent records whose values did not change.

A CRM's full re-sync sends every record again with a fresh record time although no field
changed. By SPEC §3 each of the row's field events only confirms the version current at
that time (consecutive equal values collapse), yet extracting and planning them costs as
much as the initial load. Such a row is *deferred* instead: it lands in bronze marked
``_deferred`` and nothing else is written.

A row is deferred when

* its object is deferrable (:func:`~aag.pipeline.row_states.deferrable`): one record
  time per row, no field times, no day-precision times, no source rules beyond the
  registry, and no other object (a field history) has fed the same records yet;
* its record appears once in the chunk, with a parseable record time no later than
  the ingest time;
* the latest landed rows of its record (by record time; committed batches and this
  batch's earlier chunks), which must all carry the same values and no quarantine
  entry, carry the row's values (:func:`~aag.pipeline.row_states.value_digest_sql`) at
  an earlier record time.

Every row's parsed record time and value digest land with it, so the next re-sync
compares against bronze alone: it never reads the graph.

A deferred row's events still belong to their keys' event sets. They cannot change a
version as long as no event of the entity arrives at or before the deferred time: they
collapse into the run current then. So a batch that brings an event of an entity at or
before one of its deferred times first re-extracts those deferred rows
(:func:`fold_deferred`) and plans them with its own events; the edge rules then see the
whole event set, as if nothing had been deferred.

Deferral is on unless ``AAG_DEFER=0``; without it every row is extracted, which the
tests use as the reference. The versions are the same either way, but the ``edge_events``
log holds only the events that were extracted: the deferred ones live in bronze until a
batch folds them back. :func:`deferred_events` gives them, so a comparison of two runs
sees the whole event set. Row states land in bronze either way, so rows landed with
deferral off can serve as the base of a later deferral.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from aag.bronze import parse_raw
from aag.config import Config
from aag.engine.base import Engine
from aag.engine.dialect import lit
from aag.graph.bronze_reads import LandedBronze
from aag.graph.warehouse import Warehouse
from aag.ids import uuid_from_hash_sql
from aag.model import FIELD_EVENTS, NODES
from aag.pipeline.row_states import RECORD_IDS, Prior, deferrable_class, landed_states
from aag.sources import extractor_for
from aag.sources.base import EVENTS_TABLE, NODES_TABLE, Extractor
from aag.sources.sql import REPEATS_TABLE


@dataclass
class Split:
    """The rows a chunk extracts, and the state every landed row is stored with."""

    fresh: pa.Table
    #: ``None`` when the object is not deferrable: its rows land without a state.
    states: pa.Table | None
    deferred: pa.Table
    #: Every row's record id (:data:`RECORD_IDS`), when the states were computed.
    ids: pa.Table | None = None

    @property
    def count(self) -> int:
        """How many rows were deferred."""
        return int(self.deferred.num_rows)

    def record_ids(self, engine: Engine, extractor: Extractor) -> pa.Table:
        """``_row_number, record_id`` of the rows to extract (:attr:`fresh`)."""
        if self.ids is None:
            return extractor.record_ids(engine, self.fresh).cast(RECORD_IDS)
        return self.ids.filter(pc.is_in(self.ids.column("_row_number"), self.fresh.column("_row_number")))


def split_deferred(
    engine: Engine,
    landed: LandedBronze,
    extractor: Extractor,
    rows: pa.Table,
    fresh: pa.Table,
    batch_id: str,
    now: pa.Scalar,
    first: bool,
    prior: Prior | None,
) -> Split:
    """Take the deferred rows out of ``fresh`` (rows not landed before).

    Args:
        engine: Engine running the comparison.
        landed: The bronze holding the records' earlier rows.
        extractor: The object's extractor.
        rows: Every landed row of the chunk (their states land with them).
        fresh: The rows that would be extracted.
        batch_id: This batch (its earlier chunks count as landed).
        now: Ingest time: a later record time is never deferred.
        first: Whether this is the batch's first chunk (bronze may still hold rows a
            crashed earlier run of it left: they do not count).
        prior: :func:`prior_states` of ``rows``.

    Returns:
        The rows to extract, every row's state and record id (``None`` when the object
        is not deferrable) and ``_row_number, record_id`` of the deferred ones.
    """
    no_ids = RECORD_IDS.empty_table()
    if prior is None:
        return Split(fresh, None, no_ids)
    states, ids = prior.states, prior.ids
    base = None
    if fresh.num_rows:
        base = prior.base if prior.read else landed_states(landed, extractor, ids, batch_id, first)
    if base is None:
        return Split(fresh, states, no_ids, ids)
    # ``states`` and ``ids`` are columns of one result, row for row.
    found = states.select(["_row_number", "record_time", "value_digest"]).append_column(
        "record_id", ids.column("record_id")
    )
    engine.register("df_found", found)
    engine.register("df_base", base)
    # Most often every row is fresh (a re-sync with later times): no join to find them.
    partial = fresh.num_rows < rows.num_rows
    if partial:
        engine.register("df_fresh", fresh.select(["_row_number"]))
    only_fresh = " AND _row_number IN (SELECT _row_number FROM df_fresh)" if partial else ""
    try:
        now_sql = f"CAST('{now.as_py().isoformat()}' AS TIMESTAMPTZ)"
        deferred = engine.query(
            f"""
WITH cand AS (
    SELECT _row_number, record_id, record_time, value_digest FROM df_found
    WHERE record_time IS NOT NULL{only_fresh}
),
once AS (SELECT record_id FROM cand GROUP BY record_id HAVING count(*) = 1),
base AS (
    SELECT b.record_id, b.record_time, b.value_digest FROM df_base b
    WHERE b.record_id IN (SELECT record_id FROM once)
),
latest AS (SELECT record_id, max(record_time) AS t0, count(*) - count(record_time) AS unknown
           FROM base GROUP BY record_id),
last AS (
    SELECT l.record_id, l.t0, count(*) - count(b.value_digest) AS n, min(b.value_digest) AS digest,
        count(DISTINCT b.value_digest) AS digests
    FROM latest l JOIN base b ON b.record_id = l.record_id AND b.record_time = l.t0
    WHERE l.unknown = 0
    GROUP BY l.record_id, l.t0
)
SELECT c._row_number, c.record_id FROM cand c JOIN last l ON l.record_id = c.record_id
WHERE l.n = 0 AND l.digests = 1 AND c.value_digest = l.digest
    AND c.record_time > l.t0 AND c.record_time <= {now_sql}
"""  # noqa: S608 - the ingest time is an ISO literal
        ).cast(RECORD_IDS)
    finally:
        for name in ("df_fresh", "df_found", "df_base"):
            engine.drop(name)
    if deferred.num_rows == 0:
        return Split(fresh, states, no_ids, ids)
    # Set apart in Arrow: the chunk's rows are already here, and a filter copies less
    # than a query that hands every field back.
    out = deferred.column("_row_number")
    kept = fresh.filter(pc.invert(pc.is_in(fresh.column("_row_number"), out)))
    flags = pc.is_in(states.column("_row_number"), out)
    states = states.set_column(states.schema.get_field_index("deferred"), "deferred", flags)
    return Split(kept, states, deferred, ids)


def _extract_landed(engine: Engine, extractor: Extractor, rows: pa.Table) -> Iterator[int]:
    """Extract landed rows (:data:`~aag.graph.bronze_reads.RAW_ROWS`) batch by batch.

    Each batch's rows get their own batch id and ingest time, so their events are the
    very events they would have been. After each batch's extraction (its events and
    nodes in :data:`EVENTS_TABLE` and :data:`NODES_TABLE`) this yields its row count.
    """
    for batch in sorted(set(rows.column("_batch_id").to_pylist())):
        part = rows.filter(pc.equal(rows.column("_batch_id"), batch))
        parsed = parse_raw(part.select(["_row_number", "_raw"]), extractor.fields)
        extractor.extract(engine, parsed, str(batch), part.column("_landed_at")[0])
        yield part.num_rows


def deferred_events(engine: Engine, warehouse: Warehouse) -> pa.Table:
    """The field events of every deferred row (:data:`aag.model.FIELD_EVENTS`), re-extracted.

    With :meth:`~aag.graph.store.GraphStore.edge_events` and the version rows they make the
    whole event set the graph encodes, whatever was deferred: what comparing two runs
    needs. A folded row's events may be stored already; callers de-duplicate.
    """
    config = warehouse.config
    landed = LandedBronze(warehouse)
    events = ", ".join(FIELD_EVENTS.names)
    since = datetime(1900, 1, 1, tzinfo=UTC)
    out = [FIELD_EVENTS.empty_table()]
    for spec in config.objects:
        extractor = extractor_for(spec, config)
        if not deferrable_class(extractor):
            continue
        pointers = landed.deferred(spec.source_system, spec.source_object, None, since)
        if pointers is None or pointers.num_rows == 0:
            continue
        wanted = pointers.select(["_batch_id", "_row_number"])
        rows = landed.rows_at(spec.source_system, spec.source_object, wanted)
        try:
            for _ in _extract_landed(engine, extractor, rows):
                out.append(engine.query(f"SELECT {events} FROM {EVENTS_TABLE}").cast(FIELD_EVENTS))  # noqa: S608 - internal table names
        finally:
            extractor.close()
            for name in (EVENTS_TABLE, NODES_TABLE, REPEATS_TABLE):
                engine.drop(name)
    return pa.concat_tables(out)


def _keep(engine: Engine, events: str, nodes: str, name: str, folded: int) -> None:
    """Copy the engine's batch events and nodes to ``<name>_events`` and ``<name>_nodes``."""
    engine.materialize(f"{name}_events", f"SELECT {events} FROM {EVENTS_TABLE}")  # noqa: S608 - internal table names
    engine.materialize(f"{name}_nodes", f"SELECT {nodes}, {folded} AS _folded FROM {NODES_TABLE}")  # noqa: S608 - internal table names


def fold_deferred(
    engine: Engine, landed: LandedBronze, config: Config, source_system: str, batch_id: str | None = None
) -> int:
    """Add the deferred rows this batch's events could reorder to the batch's events.

    An entity's deferred rows are re-extracted (under their own batch ids and ingest
    times, so their events are the very events they would have been) when one of the
    batch's events of that entity is at or before the deferred row's record time. Their
    events and nodes are added to :data:`EVENTS_TABLE` and :data:`NODES_TABLE`.

    Args:
        engine: Engine holding the batch's events and nodes.
        landed: The bronze holding the deferred rows.
        config: The registry (which objects of the system can have deferred rows).
        source_system: The batch's source system (keys never cross systems).
        batch_id: This batch, when its earlier chunks may have deferred rows too.

    Returns:
        How many deferred rows were added (0 leaves both tables untouched).
    """
    specs = [
        spec
        for spec in config.objects
        if spec.source_system == source_system
        and landed.exists(spec.source_system, spec.source_object)
        and deferrable_class(extractor_for(spec, config))
    ]
    if not specs:
        return 0
    engine.materialize(
        "fd_touched",
        f"SELECT source_node_id, min(updated_at) AS t_min FROM {EVENTS_TABLE} GROUP BY source_node_id",  # noqa: S608 - internal table names
    )
    events = ", ".join(FIELD_EVENTS.names)
    nodes = ", ".join(NODES.names)
    parts: list[str] = []
    added = 0
    try:
        # Deferred rows earlier than every event of the batch cannot matter (the usual
        # sync): they are not even read.
        since = engine.query("SELECT min(t_min) AS t FROM fd_touched").column(0)[0].as_py()
        for spec in specs if since is not None else []:
            pointers = landed.deferred(spec.source_system, spec.source_object, batch_id, since)
            if pointers is None or pointers.num_rows == 0:
                continue
            prefix = lit(f"{spec.entity_type}|{spec.source_system}|{spec.source_object}|")
            engine.register("fd_deferred", pointers)
            try:
                wanted = engine.query(
                    "SELECT d._batch_id, d._row_number FROM fd_deferred d JOIN fd_touched t "  # noqa: S608 - the entity key prefix via dialect.lit
                    f"ON t.source_node_id = {uuid_from_hash_sql(f'sha256(concat({prefix}, d._record_id))')} "
                    "WHERE d._record_time >= t.t_min"
                )
            finally:
                engine.drop("fd_deferred")
            if wanted.num_rows == 0:
                continue
            if not parts:
                # The batch's own events and nodes, set aside while the extractor writes
                # the deferred rows' into the same tables.
                _keep(engine, events, nodes, "fd_0", 0)
                parts.append("fd_0")
            extractor = extractor_for(spec, config)
            rows = landed.rows_at(spec.source_system, spec.source_object, wanted)
            for count in _extract_landed(engine, extractor, rows):
                name = f"fd_{len(parts)}"
                _keep(engine, events, nodes, name, 1)
                parts.append(name)
                added += count
            extractor.close()
        if parts:
            union = " UNION ALL ".join(f"SELECT * FROM {p}_events" for p in parts)  # noqa: S608 - internal table names
            engine.materialize(EVENTS_TABLE, f"SELECT DISTINCT {events} FROM ({union}) e")  # noqa: S608 - internal table names
            union = " UNION ALL ".join(f"SELECT * FROM {p}_nodes" for p in parts)  # noqa: S608 - internal table names
            # One row per node id: the batch's own row where it has one.
            engine.materialize(
                NODES_TABLE,
                f"SELECT {nodes} FROM (SELECT *, row_number() OVER (PARTITION BY node_id "  # noqa: S608 - internal table names
                f"ORDER BY _folded, created_at) AS _k FROM ({union}) u) n WHERE _k = 1",
            )
    finally:
        engine.drop("fd_touched")
        for name in parts:
            engine.drop(f"{name}_events")
            engine.drop(f"{name}_nodes")
    return added


__all__ = [
    "Split",
    "deferred_events",
    "fold_deferred",
    "split_deferred",
]
