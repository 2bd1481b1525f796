"""What a source object declares to its extractor: class settings and SQL hooks.

:class:`ExtractorHooks` holds the object's spec and the defaults every registry-driven
source shares (how the record id and times are read, the entity key, which rows and fields
count). A source with its own rules overrides these small hooks in a subclass of
:class:`aag.sources.base.Extractor`; the SQL building (:mod:`aag.sources.rows`,
:mod:`aag.sources.events`) calls them.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from aag.config import EARLIEST_EVENT_TIME, Config, ObjectSpec, RegistryRow
from aag.engine.base import Engine
from aag.engine.dialect import ident, lit
from aag.normalize import sql_normalise
from aag.rules import ISO_FORMAT


class ExtractorHooks:
    """Settings and overridable SQL hooks of one source object's extraction."""

    #: Source columns the extractor needs besides the registry's fields (landed as strings).
    extra_fields: ClassVar[tuple[str, ...]] = ()
    #: Other objects of the same system whose landed (bronze) rows the extraction joins.
    #: The pipeline registers each one's committed rows, parsed into that object's
    #: extractor :attr:`fields`, as :func:`~aag.sources.sql.landed_table` before
    #: :meth:`~aag.sources.base.Extractor.extract`.
    reads: ClassVar[tuple[str, ...]] = ()
    #: Another object of the same system whose records this object's rows are about (a
    #: field history, change documents). A row's record id is then that object's record
    #: id: its events go to that record's entity, it adds no source-record edge of its
    #: own, and erasing the record erases these rows too.
    belongs_to: ClassVar[str | None] = None
    #: Whether the object's rows yield field events (SAP ADR6 only lands, for KNA1 to join).
    emits_events: ClassVar[bool] = True
    #: Whether a file may be extracted chunk by chunk (:func:`aag.pipeline.ingest_file`).
    #: Extraction that combines several rows of one file (SAP change document items of one
    #: document) would see a different set of rows per chunk, so such files go in one piece.
    chunkable: ClassVar[bool] = True
    #: Landed column naming a call that is delivered at least once (Segment's message id):
    #: a row whose value a committed batch already holds is a re-send, dropped before
    #: extraction whatever it carries, so the first call stored wins.
    first_wins_key: ClassVar[str | None] = None

    def __init__(self, spec: ObjectSpec, config: Config) -> None:
        self.spec = spec
        self.config = config
        #: The object named by :attr:`belongs_to` (``None`` when rows are records of their own).
        self.owner: ObjectSpec | None = (
            config.object(spec.source_system, self.belongs_to) if self.belongs_to else None
        )

    @property
    def record_object(self) -> ObjectSpec:
        """The object whose records the rows are: :attr:`owner`, else this object."""
        return self.owner or self.spec

    @property
    def fields(self) -> tuple[str, ...]:
        """Every source column landed rows carry for this extractor."""
        return tuple(dict.fromkeys((*self.spec.fields, *self.extra_fields)))

    # -- hooks ---------------------------------------------------------------------
    def record_id_sql(self) -> str:
        """SQL for the canonical record id (the id row's normaliser; NULL when missing)."""
        return sql_normalise(self.spec.id_normaliser, ident(self.spec.id_field))[0]

    def time_sql(self, column: str) -> str:
        """SQL parsing a raw time column into a UTC timestamp (NULL if unparseable)."""
        raw = f"nullif(trim({ident(column)}), '')"
        if self.spec.time_format == "yyyymmdd":
            return f"CAST(try_strptime({raw}, '%Y%m%d') AS TIMESTAMPTZ)"
        return f"try_cast({raw} AS TIMESTAMPTZ)"

    def out_of_range_sql(self, time: str, ingest: str) -> str:
        """SQL telling whether an event time is out of range (SPEC §11).

        Before 1900-01-01, or later than the ingest time plus the source's tolerance
        (:meth:`aag.config.Config.future_tolerance`): such a time would win its field until
        the clock caught up, so it is bad input. NULL (no time) is not out of range.

        Args:
            time: SQL of the parsed event time.
            ingest: SQL of the time the row was ingested.
        """
        seconds = int(self.config.future_tolerance(self.spec.source_system).total_seconds())
        earliest = EARLIEST_EVENT_TIME.strftime("%Y-%m-%d %H:%M:%S+00")
        return (
            f"coalesce({time} < CAST('{earliest}' AS TIMESTAMPTZ) "
            f"OR {time} > {ingest} + INTERVAL {seconds} SECOND, FALSE)"
        )

    def out_of_range_reason_sql(self, time: str, field: str) -> str:
        """SQL for the quarantine reason of an out-of-range ``time`` read from ``field``."""
        hours = self.config.future_tolerance(self.spec.source_system).total_seconds() / 3600
        earliest = EARLIEST_EVENT_TIME.strftime("%Y-%m-%d")
        return (
            f"concat({lit('event time out of range (' + field + '): ')}, strftime({time}, '{ISO_FORMAT}'), "
            f"CASE WHEN {time} < CAST('{earliest} 00:00:00+00' AS TIMESTAMPTZ) "
            f"THEN {lit(' is before ' + earliest)} "
            f"ELSE {lit(f' is more than {hours:g} h after its ingest time')} END)"
        )

    def entity_key_sql(self) -> str:
        """SQL for the entity key of a row: one entity per source record.

        Records are never merged by sharing a key; identity (:mod:`aag.identity`) links
        records into one customer through the identifiers they share.
        """
        spec = self.record_object
        prefix = f"{spec.entity_type}|{spec.source_system}|{spec.source_object}|"
        return f"concat({lit(prefix)}, record_id)"

    def relevant_sql(self) -> str | None:
        """SQL telling whether a row is about this object's records at all (``None``: all are).

        A row that is not (a change document of another SAP object class) is processed
        and yields nothing: it needs no record id or time and is never quarantined.
        """
        return None

    def present_sql(self, row: RegistryRow) -> str | None:
        """SQL telling whether a row says anything about a field (``None``: it always does).

        Record-level sources send every field, so an empty one is a removal. A source that
        may leave a field out (Segment traits) says nothing about it then: no event.
        """
        return None

    def related_records(self, landed: pa.Table) -> dict[str, list[str]]:
        """Record ids of other objects (of the same system) that belong to these records.

        Erasure removes them with the records. ``landed`` holds the records' landed rows
        (:attr:`fields` columns). Default: none.
        """
        return {}

    def links_can_be_removed(self) -> bool:
        """Whether an empty ``same_as`` field removes the link (record-level sources: yes)."""
        return True

    def event_key_sql(self) -> str | None:
        """SQL for the source's own id of the event a row records, if it has one.

        Field events then get ``system:Object:<key>:<source field>`` as their id instead
        of one derived from the row's content, so a re-sent event is recognisably the same.
        """
        return None

    def enrich(self, engine: Engine, rows: pa.Table) -> pa.Table:
        """Source rules that need the engine (e.g. joins with :attr:`reads`); none by default."""
        return rows

    def enrich_sql(self, source: str, columns: list[str]) -> str | None:
        """The rules of :meth:`enrich` as canonical SQL over ``source`` (``None``: nothing to do).

        The declarative pipeline (:mod:`aag.databricks.lakeflow`) runs this where :meth:`enrich` would
        run on a batch, so it gives the columns :meth:`enrich` does (the landed ones, unless
        the rows are pivoted into another object's, as a field history's are).
        """
        return None

    def dedupe_sql(self, source: str) -> str | None:
        """Canonical SQL keeping only the rows of ``source`` to extract (``None``: all of them)."""
        return None
