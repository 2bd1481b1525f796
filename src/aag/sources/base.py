"""Extractor base class: landed bronze rows → field events.

An extractor turns one batch of rows of one source object into

* field events (one per entity × attribute, with the field's own event time),
* candidate value and entity nodes,
* quarantine rows for what cannot be used (whole rows, or single fields).

The work is SQL generated from the registry (canonical dialect), so the same
extraction runs on every engine. Subclasses override small hooks (how the
record id is read, extra rows) where a source has its own rules; a source that
fits the registry needs no class at all (:class:`GenericExtractor`).

The class is built in layers, one module each: the settings and hooks a source
overrides (:mod:`aag.sources.hooks`), the per-row query (:mod:`aag.sources.rows`), the
event, node and quarantine queries over it (:mod:`aag.sources.events`); this module runs
them on an engine. Quoting and shared names are in :mod:`aag.sources.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from aag.engine.base import Engine
from aag.engine.dialect import lit
from aag.model import FIELD_EVENTS, NODES, QUARANTINE
from aag.normalize import country_table, normalise_phones
from aag.sources.events import EventsSql
from aag.sources.sql import (
    EVENTS_TABLE,
    NODES_TABLE,
    REFERS_TO_RECORD_REL,
    REPEATS_TABLE,
    SOURCE_RECORD_NODE,
    SOURCE_RECORD_REL,
    landed_table,
)


def register_no_events(engine: Engine) -> None:
    """Leave empty :data:`EVENTS_TABLE` and :data:`NODES_TABLE` in the engine (nothing extracted)."""
    engine.register(EVENTS_TABLE, FIELD_EVENTS.empty_table())
    engine.register(NODES_TABLE, NODES.empty_table())


@dataclass
class Extracted:
    """What one batch of rows yields.

    Field events (:data:`aag.model.FIELD_EVENTS`) and candidate nodes (one per node id,
    :data:`aag.model.NODES`) stay in the engine as :data:`EVENTS_TABLE` and
    :data:`NODES_TABLE`, so the rules read them without another copy.
    """

    events: int
    quarantine: pa.Table
    rows_landed: int
    rows_quarantined: int
    fields_rejected: int
    #: :data:`REPEATS_TABLE` when the extraction left it in the engine: it then holds every
    #: entity whose keys may carry more than one event of this batch, which spares the
    #: rules grouping every event by key to find them. None: any key may.
    repeats: str | None = None
    #: Rows dropped before extraction as copies of an event already seen (counted landed).
    duplicates: int = 0

    @property
    def rows_processed(self) -> int:
        """Rows that produced field events (landed minus quarantined)."""
        return self.rows_landed - self.rows_quarantined


class Extractor(EventsSql):
    """Registry-driven extraction for one source object; subclass to add source rules."""

    # -- running -------------------------------------------------------------------------
    def record_ids(self, engine: Engine, rows: pa.Table) -> pa.Table:
        """``_row_number, record_id``: each landed row's canonical record id (NULL if missing)."""
        engine.register("id_rows", rows)
        try:
            return engine.query(f"SELECT _row_number, {self.record_id_sql()} AS record_id FROM id_rows")  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
        finally:
            engine.drop("id_rows")

    def extract(self, engine: Engine, rows: pa.Table, batch_id: str, now: pa.Scalar) -> Extracted:
        """Run the extraction for one batch.

        Args:
            engine: Engine to run on.
            rows: Landed rows: ``_row_number``, ``_raw``, ``_error`` and one string
                column per registry field of the object.
            batch_id: The batch these rows belong to.
            now: Ingestion time stamped on new nodes and quarantine rows.

        Returns:
            Counts and quarantine rows; events and candidate nodes stay in the engine as
            :data:`EVENTS_TABLE` and :data:`NODES_TABLE`.
        """
        if rows.num_rows == 0:
            # Every row of the chunk was unchanged or deferred (a re-sync): no events, and
            # none of the ~dozen statements below would find anything.
            register_no_events(engine)
            return Extracted(
                events=0,
                quarantine=QUARANTINE.empty_table(),
                rows_landed=0,
                rows_quarantined=0,
                fields_rejected=0,
            )
        rows = self.enrich(engine, self.prepare(rows))
        engine.register("batch_rows", rows)
        engine.register("aag_countries", country_table())
        try:
            pairs_sql = self.phone_pairs_sql()
            pairs: list[tuple[str, str | None]] = []
            if pairs_sql:
                found = engine.query(pairs_sql)
                pairs = list(
                    zip(found.column("raw").to_pylist(), found.column("region").to_pylist(), strict=True)
                )
            engine.register("aag_phones", normalise_phones(pairs))
            now_sql = f"CAST('{now.as_py().isoformat()}' AS TIMESTAMPTZ)"
            engine.materialize("ex_rows", self.rows_sql(ingest_sql=now_sql))
            engine.materialize(EVENTS_TABLE, self.events_sql(batch_id))
            repeats = None
            if self.one_event_per_key_per_row:
                engine.materialize(
                    REPEATS_TABLE,
                    "SELECT entity_id AS source_node_id FROM ex_rows WHERE row_error IS NULL "
                    "GROUP BY entity_id HAVING count(*) > 1",
                )
                repeats = REPEATS_TABLE
            engine.materialize(NODES_TABLE, self.nodes_sql(now_sql))
            flags = " OR ".join(f"bad{i} OR tbad{i}" for i in range(len(self.spec.attributes))) or "FALSE"
            counts = engine.query(
                "SELECT coalesce(sum(CASE WHEN row_error IS NOT NULL THEN 1 ELSE 0 END), 0) AS bad, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"coalesce(sum(CASE WHEN row_error IS NULL AND ({flags}) THEN 1 ELSE 0 END), 0) AS flagged, "
                f"(SELECT count(*) FROM {EVENTS_TABLE}) AS events FROM ex_rows"
            ).to_pylist()[0]
            # Clean input (the usual case) skips the findings query: it joins the landed
            # rows once per field to quote the bad value.
            quarantine = (
                engine.query(self.quarantine_sql(batch_id, now_sql))
                if counts["bad"] or counts["flagged"]
                else QUARANTINE.empty_table()
            )
        finally:
            for name in ("batch_rows", "aag_countries", "aag_phones", "ex_rows"):
                engine.drop(name)
        return Extracted(
            events=int(counts["events"]),
            quarantine=quarantine.cast(QUARANTINE),
            rows_landed=rows.num_rows,
            rows_quarantined=int(counts["bad"]),
            fields_rejected=sum(1 for v in quarantine.column("level").to_pylist() if v == "field"),
            repeats=repeats,
        )

    def prepare(self, rows: pa.Table) -> pa.Table:
        """Source-specific fix-ups of the landed rows before extraction (none by default)."""
        return rows

    def close(self) -> None:
        """Release what the extractor kept across the chunks of one file (nothing by default).

        One extractor serves every chunk of a file; the pipeline calls this when the file
        is done, also after a failure.
        """


class LandingExtractor(Extractor):
    """Rows that only land, for another object's extraction to join: they yield no events.

    A row :meth:`row_error_sql` finds a reason for is quarantined; every other row is
    processed by being kept in bronze (SAP ADR6 e-mails for KNA1, CDHDR headers for CDPOS).
    """

    emits_events = False

    def row_error_sql(self) -> str:
        """SQL over a landed row and its ``record_id``: why it is quarantined (NULL: it lands).

        By default a landing error or a missing record id (a row that cannot be joined).
        """
        missing = lit("missing record id (" + self.spec.id_field + ")")
        return f"CASE WHEN _error IS NOT NULL THEN _error WHEN record_id IS NULL THEN {missing} END"

    def checked_rows_sql(self) -> str:
        """``_row_number, record_id, row_error`` of every row of ``batch_rows``.

        What :meth:`quarantine_sql` reads as ``ex_rows`` (the declarative pipeline runs it too).
        """
        return (
            f"SELECT _row_number, record_id, {self.row_error_sql()} AS row_error "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
            f"FROM (SELECT *, {self.record_id_sql()} AS record_id FROM batch_rows) r"
        )

    def extract(self, engine: Engine, rows: pa.Table, batch_id: str, now: pa.Scalar) -> Extracted:
        """Quarantine the rows :meth:`row_error_sql` rejects; emit no events."""
        now_sql = f"CAST('{now.as_py().isoformat()}' AS TIMESTAMPTZ)"
        engine.register("batch_rows", rows)
        try:
            engine.materialize("ex_rows", self.checked_rows_sql())
            quarantine = engine.query(self.quarantine_sql(batch_id, now_sql))
        finally:
            engine.drop("batch_rows")
            engine.drop("ex_rows")
        register_no_events(engine)
        return Extracted(
            events=0,
            quarantine=quarantine.cast(QUARANTINE),
            rows_landed=rows.num_rows,
            rows_quarantined=quarantine.num_rows,
            fields_rejected=0,
        )


class GenericExtractor(Extractor):
    """Extraction driven by registry rows alone.

    Record id, record time, deletion flag, and attributes with optional field-level
    time columns: everything a simple source needs.
    """


__all__ = [
    "EVENTS_TABLE",
    "NODES_TABLE",
    "REFERS_TO_RECORD_REL",
    "REPEATS_TABLE",
    "SOURCE_RECORD_NODE",
    "SOURCE_RECORD_REL",
    "Extracted",
    "Extractor",
    "GenericExtractor",
    "LandingExtractor",
    "landed_table",
    "register_no_events",
]
