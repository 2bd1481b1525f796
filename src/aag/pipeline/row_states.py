"""What a landed row's state is, and what bronze holds of a chunk's records.

Every landed row of a deferrable object carries its state (:data:`aag.model.ROW_STATES`):
its parsed record time and a digest of its values but that time. A chunk compares its
rows' states with the landed states of its records, to defer rows that only re-send
their record's values (:mod:`aag.pipeline.deferral`) and to tell which rows could be
byte-identical to a landed row (:func:`maybe_landed`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from aag.engine.base import Engine
from aag.engine.dialect import ident, lit
from aag.graph.bronze_reads import LandedBronze
from aag.model import ROW_STATES
from aag.sources import objects_belonging_to
from aag.sources.base import Extractor
from aag.sources.hooks import ExtractorHooks


def enabled() -> bool:
    """Whether deferral is on (``AAG_DEFER`` unset or anything but ``0``)."""
    return os.environ.get("AAG_DEFER", "1") != "0"


def deferrable_class(extractor: Extractor) -> bool:
    """Whether the object's rows can be deferred at all, judged from its settings alone."""
    spec = extractor.spec
    cls = type(extractor)
    return (
        extractor.owner is None
        and bool(spec.time_field)
        and spec.time_format != "yyyymmdd"
        and not any(row.event_time_field for row in spec.attributes)
        and extractor.emits_events
        and extractor.chunkable
        and not extractor.reads
        and extractor.first_wins_key is None
        and extractor.event_key_sql() is None
        and extractor.relevant_sql() is None
        and cls.prepare is Extractor.prepare
        and cls.enrich is ExtractorHooks.enrich
        and cls.record_id_sql is ExtractorHooks.record_id_sql
        and cls.time_sql is ExtractorHooks.time_sql
    )


def deferrable(landed: LandedBronze, extractor: Extractor) -> bool:
    """Whether this batch may defer rows of the extractor's object.

    Besides :func:`deferrable_class`, no object whose rows are about these records (a
    field history) may have a committed batch: its events share the records' keys, so
    equal values of two rows of the record no longer mean that nothing happened between
    them.
    """
    if not (enabled() and deferrable_class(extractor)):
        return False
    spec = extractor.spec
    return all(
        not landed.committed_ids(spec.source_system, other.source_object)
        for other in objects_belonging_to(landed.warehouse.config, spec.source_system, spec.source_object)
    )


def value_digest_sql(extractor: Extractor) -> str:
    """SQL of a row's value digest: every landed field but the record time, unambiguously.

    The object's registry rows are part of it: after a mapping or normaliser change the
    same text may mean other events, so no row is deferred against a row read before.
    """
    mapping = hashlib.sha256(repr(extractor.spec).encode()).hexdigest()[:16]
    parts = [lit(mapping)]
    for name in extractor.fields:
        if name == extractor.spec.time_field:
            continue
        col = ident(name)
        # Length-prefixed, so that no two different rows concatenate to the same text.
        parts.append(f"coalesce(concat(CAST(length({col}) AS VARCHAR), ':', {col}), '-')")
    # md5: a change detector between rows of one record, not a security boundary, and
    # cheaper than sha256. A digest stored by an older release never equals a new one, so
    # such rows are extracted again rather than deferred: slower once, never wrong.
    return f"md5(concat_ws('|', {', '.join(parts)}))"


#: ``_row_number, record_id`` of landed rows.
RECORD_IDS = pa.schema([("_row_number", pa.int64()), ("record_id", pa.string())])


def row_states(engine: Engine, extractor: Extractor, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Each landed row's state (:data:`aag.model.ROW_STATES`, not deferred) and record id.

    Rows with a landing error, no record id or no parseable record time get a NULL time
    and digest: they never serve as the base of a later deferral. The record ids
    (:data:`RECORD_IDS`, NULL where missing) are those :meth:`Extractor.record_ids` gives,
    computed in the same pass.
    """
    spec = extractor.spec
    engine.register("df_rows", rows)
    try:
        time = extractor.time_sql(spec.time_field or "")
        found = engine.query(
            "SELECT _row_number, record_id, CASE WHEN ok THEN t END AS record_time, "  # noqa: S608 - config names via dialect.ident/lit
            "CASE WHEN ok THEN digest END AS value_digest, FALSE AS deferred FROM ("
            "SELECT *, _error IS NULL AND record_id IS NOT NULL AND t IS NOT NULL AS ok FROM ("
            f"SELECT _row_number, _error, {extractor.record_id_sql()} AS record_id, {time} AS t, "
            f"{value_digest_sql(extractor)} AS digest FROM df_rows) r) s"
        )
    finally:
        engine.drop("df_rows")
    return found.select(ROW_STATES.names).cast(ROW_STATES), found.select(RECORD_IDS.names).cast(RECORD_IDS)


@dataclass
class Prior:
    """A chunk's row states and, when read ahead, the landed states of its records."""

    #: Every row's state (:func:`row_states`).
    states: pa.Table
    #: Every row's record id (:data:`RECORD_IDS`).
    ids: pa.Table
    #: :meth:`LandedBronze.states` of the chunk's records (``None``: nothing to compare).
    base: pa.Table | None = None
    #: Whether :attr:`base` was read ahead; if not, :func:`split_deferred` reads it.
    read: bool = False


def prior_states(
    engine: Engine, landed: LandedBronze, extractor: Extractor, rows: pa.Table, batch_id: str, first: bool
) -> Prior | None:
    """The chunk's row states (``None`` when the object is not deferrable).

    A small chunk also reads its records' landed states now (a keyed read, cheap), so
    :func:`maybe_landed` can tell which rows could be byte-identical to landed ones. A large
    chunk leaves them to :func:`split_deferred`, which reads every record's once per batch.
    """
    if not deferrable_class(extractor):
        return None
    states, ids = row_states(engine, extractor, rows)
    prior = Prior(states, ids)
    spec = extractor.spec
    if landed.keyed_states(spec.source_system, spec.source_object, rows.num_rows):
        prior.base = landed_states(landed, extractor, ids, batch_id, first)
        prior.read = True
    return prior


def landed_states(
    landed: LandedBronze, extractor: Extractor, ids: pa.Table, batch_id: str, first: bool
) -> pa.Table | None:
    """:meth:`LandedBronze.states` of the records in ``ids`` (``None``: this batch defers nothing)."""
    spec = extractor.spec
    if not deferrable(landed, extractor):
        return None
    return landed.states(
        spec.source_system, spec.source_object, None if first else batch_id, ids.column("record_id")
    )


def maybe_landed(engine: Engine, prior: Prior | None, rows: pa.Table) -> pa.Table:
    """``_row_digest`` of the rows that may be byte-identical to a landed row.

    Such a row parses to its landed twin's record time. So a row with a parsed time that
    no landed row of its record carries is none; without read-ahead states (or a usable
    time) every row may be.
    """
    if prior is None or prior.base is None:
        return rows.select(["_row_digest"])
    engine.register("ml_found", prior.states.append_column("record_id", prior.ids.column("record_id")))
    engine.register("ml_base", prior.base)
    try:
        maybe = engine.query(
            "SELECT _row_number FROM ml_found f WHERE f.record_id IS NULL OR f.record_time IS NULL "
            "OR EXISTS (SELECT 1 FROM ml_base b WHERE b.record_id = f.record_id "
            "AND (b.record_time IS NULL OR b.record_time = f.record_time))"
        )
    finally:
        for name in ("ml_found", "ml_base"):
            engine.drop(name)
    picked = pc.is_in(rows.column("_row_number"), maybe.column("_row_number"))
    return rows.select(["_row_digest"]).filter(picked)


__all__ = [
    "RECORD_IDS",
    "Prior",
    "deferrable",
    "deferrable_class",
    "enabled",
    "landed_states",
    "maybe_landed",
    "prior_states",
    "row_states",
    "value_digest_sql",
]
