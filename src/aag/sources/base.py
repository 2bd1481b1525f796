"""Extractor base class: landed bronze rows → field events.

An extractor turns one batch of rows of one source object into

* field events (one per entity × attribute, with the field's own event time),
* candidate value and entity nodes,
* quarantine rows for what cannot be used (whole rows, or single fields).

The work is SQL generated from the registry (canonical dialect), so the same
extraction runs on every engine. Subclasses override small hooks (how the
record id is read, extra rows) where a source has its own rules; a source that
fits the registry needs no class at all (:class:`GenericExtractor`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from aag.config import EARLIEST_EVENT_TIME, Config, ObjectSpec, RegistryRow
from aag.engine.base import Engine
from aag.ids import uuid_from_hash_sql, value_node_id_sql
from aag.model import QUARANTINE
from aag.normalize import (
    E164_REGEX_SQL,
    country_table,
    normalise_phones,
    split_normaliser,
    sql_normalise,
)
from aag.normalize import sql_collapse as collapse
from aag.rules import ISO_FORMAT

#: rel_type and node type of the identity edge every record gets.
SOURCE_RECORD_REL = "HAS_SOURCE_RECORD"
SOURCE_RECORD_NODE = "source_record"
#: rel_type of a ``same_as`` field: the record names another object's record.
REFERS_TO_RECORD_REL = "REFERS_TO_RECORD"


def q(identifier: str) -> str:
    """Quote an identifier for the canonical dialect."""
    return '"' + identifier.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


#: Engine tables an extraction leaves behind for the rules (dropped by the caller).
EVENTS_TABLE = "batch_events"
NODES_TABLE = "batch_nodes"
#: Engine table (``source_node_id``) of the entities that more than one row of the batch
#: is about; only their keys can carry more than one event (see :attr:`Extracted.repeats`).
REPEATS_TABLE = "batch_repeats"
#: Fields of one event in the per-row list :meth:`Extractor.events_sql` unnests.
_EVENT_ENTRY = (
    "keep",
    "rel_type",
    "target_node_id",
    "updated_at",
    "source_event_id",
    "confidence",
    "source_field",
)


def landed_table(source_object: str) -> str:
    """Engine table holding the landed rows of an object another extractor reads.

    See :attr:`Extractor.reads`: the pipeline registers the rows under this name before
    extraction, e.g. ``landed_adr6`` for SAP ``ADR6``.
    """
    return "landed_" + re.sub(r"\W", "_", source_object.lower())


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


class Extractor:
    """Registry-driven extraction for one source object; subclass to add source rules."""

    #: Source columns the extractor needs besides the registry's fields (landed as strings).
    extra_fields: ClassVar[tuple[str, ...]] = ()
    #: Other objects of the same system whose landed (bronze) rows the extraction joins.
    #: The pipeline registers each one's committed rows, parsed into that object's
    #: extractor :attr:`fields`, as :func:`landed_table` before :meth:`extract`.
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
        return sql_normalise(self.spec.id_normaliser, q(self.spec.id_field))[0]

    def time_sql(self, column: str) -> str:
        """SQL parsing a raw time column into a UTC timestamp (NULL if unparseable)."""
        raw = f"nullif(trim({q(column)}), '')"
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

        The declarative pipeline (:mod:`aag.lakeflow`) runs this where :meth:`enrich` would
        run on a batch: same columns out as in.
        """
        return None

    def dedupe_sql(self, source: str) -> str | None:
        """Canonical SQL keeping only the rows of ``source`` to extract (``None``: all of them)."""
        return None

    # -- SQL building ----------------------------------------------------------------
    def _collapsed(self, field: str, aliases: Mapping[str, str] | None) -> str:
        """A field whitespace-collapsed: its column in ``aliases`` if computed once, else SQL."""
        return aliases[field] if aliases and field in aliases else collapse(q(field))

    def _attr_value_sql(
        self, i: int, row: RegistryRow, aliases: Mapping[str, str] | None = None
    ) -> tuple[str, str]:
        name, _ = split_normaliser(row.normaliser)
        raw = q(row.source_field)
        collapsed = self._collapsed(row.source_field, aliases)
        if name == "country":
            text = f"nullif({collapsed}, '')"
            return f"c{i}.alpha2", f"({text} IS NOT NULL AND c{i}.alpha2 IS NULL)"
        if name == "phone":
            text = f"nullif({collapsed}, '')"
            compact = rf"regexp_replace({text}, '[\s().\-/]', '', 'g')"
            fast = f"(regexp_matches({compact}, '{E164_REGEX_SQL}') AND strpos({text}, '(0)') = 0)"
            value = f"CASE WHEN {fast} THEN {compact} ELSE p{i}.e164 END"
            return value, f"({text} IS NOT NULL AND ({value}) IS NULL)"
        return sql_normalise(row.normaliser, raw, collapsed if aliases else None)

    def _region_sql(self, row: RegistryRow) -> str:
        """Region for parsing a phone: the record's own country if mapped, else the default."""
        _, param = split_normaliser(row.normaliser)
        # Several country fields (Segment's flat and nested address traits): the first set.
        countries = [
            f"c{i}.alpha2"
            for i, other in enumerate(self.spec.attributes)
            if split_normaliser(other.normaliser)[0] == "country"
        ]
        if countries:
            return f"coalesce({', '.join([*countries, lit(param) if param else 'NULL'])})"
        return lit(param) if param else "CAST(NULL AS VARCHAR)"

    def _country_joins(self, aliases: Mapping[str, str] | None = None) -> str:
        """Lookups of every country attribute (``c<i>.alpha2``)."""
        return "\n".join(
            f"LEFT JOIN aag_countries c{i} ON c{i}.key = upper({self._collapsed(row.source_field, aliases)})"
            for i, row in enumerate(self.spec.attributes)
            if split_normaliser(row.normaliser)[0] == "country"
        )

    def _joins(self, aliases: Mapping[str, str] | None = None) -> str:
        """Country lookups, then phone lookups (a phone's region may come from a country)."""
        phones = [
            f"LEFT JOIN aag_phones p{i} ON p{i}.raw = {self._collapsed(row.source_field, aliases)} "
            f"AND p{i}.region IS NOT DISTINCT FROM {self._region_sql(row)}"
            for i, row in enumerate(self.spec.attributes)
            if split_normaliser(row.normaliser)[0] == "phone"
        ]
        return "\n".join([self._country_joins(aliases), *phones])

    def rows_sql(self, carry: tuple[str, ...] = (), ingest_sql: str = 'r."_landed_at"') -> str:
        """One row per landed row: id, time, deletion, row error, every attribute normalised.

        Args:
            carry: Further columns of the landed rows to pass through unchanged (the
                declarative pipeline carries each row's ``_batch_id``).
            ingest_sql: SQL of the rows' ingest time, which bounds their event times
                (:meth:`out_of_range_sql`): by default each landed row's ``_landed_at``.
        """
        spec = self.spec
        # The id and the record time are parsed once (in the innermost select) and used
        # by name below: they appear in every field's event. So is every field's
        # whitespace-collapsed text, which several expressions of a field start from.
        fields = [row.source_field for row in spec.attributes]
        if spec.deleted_field:
            fields.append(spec.deleted_field)
        aliases = {f: f"_aag_w{k}" for k, f in enumerate(dict.fromkeys(fields))}
        rid = "_rid"
        cols = [
            "r._row_number AS _row_number",
            f"{rid} AS record_id",
            *(f"r.{q(c)} AS {q(c)}" for c in carry),
        ]
        if spec.time_field:
            raw_t = q(spec.time_field)
            rtime = "_rtime"
            cols.append(f"{rtime} AS record_time")
        else:
            raw_t = rtime = "CAST(NULL AS TIMESTAMPTZ)"
            cols.append(f"{rtime} AS record_time")
        if spec.deleted_field:
            del_val, del_bad = sql_normalise(
                spec.deleted_normaliser, q(spec.deleted_field), aliases[spec.deleted_field]
            )
            cols.append(f"coalesce({del_val} = 'true', FALSE) AS is_deleted")
        else:
            del_bad = "FALSE"
            cols.append("FALSE AS is_deleted")
        checks = ["WHEN r._error IS NOT NULL THEN r._error"]
        relevant = self.relevant_sql()
        if relevant:
            checks.append(f"WHEN NOT coalesce({relevant}, FALSE) THEN NULL")
        raw_id = f"nullif(trim(CAST(r.{q(spec.id_field)} AS VARCHAR)), '')"
        checks.append(
            f"WHEN {rid} IS NULL THEN CASE WHEN {raw_id} IS NULL "
            f"THEN {lit('missing record id (' + spec.id_field + ')')} "
            f"ELSE {lit('invalid record id (' + spec.id_field + ')')} END"
        )
        if spec.time_field:
            checks.append(
                f"WHEN nullif(trim({raw_t}), '') IS NULL THEN "
                f"{lit('missing record time (' + spec.time_field + ')')}"
            )
            checks.append(
                f"WHEN {rtime} IS NULL THEN "
                f"concat({lit('unparseable record time (' + spec.time_field + '): ')}, {raw_t})"
            )
            checks.append(
                f"WHEN {self.out_of_range_sql(rtime, ingest_sql)} THEN "
                f"{self.out_of_range_reason_sql(rtime, spec.time_field)}"
            )
        if spec.deleted_field:
            checks.append(
                f"WHEN {del_bad} THEN concat("
                f"{lit('invalid deletion flag (' + spec.deleted_field + '): ')}, "
                f"{q(spec.deleted_field)})"
            )
        if not spec.time_field:
            field_times = [self.time_sql(r.event_time_field) for r in spec.attributes if r.event_time_field]
            any_time = f"coalesce({', '.join(field_times)})" if field_times else "NULL"
            checks.append(
                f"WHEN {any_time} IS NULL THEN "
                f"{lit('no event time: the object has no record time and no field time is set')}"
            )
        cols.append("CASE " + " ".join(checks) + " END AS row_error")
        for i, link in enumerate(spec.same_as):
            cols.append(f"{sql_normalise(link.normaliser, q(link.source_field))[0]} AS link{i}")
        event_key = self.event_key_sql()
        if event_key:
            cols.append(f"{event_key} AS event_key")
        for i, row in enumerate(spec.attributes):
            value, bad = self._attr_value_sql(i, row, aliases)
            cols.append(f"{value} AS v{i}")
            cols.append(f"{bad} AS bad{i}")
            present = self.present_sql(row)
            if present:
                cols.append(f"{present} AS has{i}")
            if row.event_time_field:
                ft_raw = f"nullif(trim({q(row.event_time_field)}), '')"
                ft = self.time_sql(row.event_time_field)
                cols.append(f"coalesce({ft}, {rtime}) AS t{i}")
                # A field time out of range rejects that field (the record time is checked
                # with the row).
                far = self.out_of_range_sql(ft, ingest_sql)
                cols.append(f"{far} AS tfar{i}")
                # A field without its own time and without a record time has no event time.
                cols.append(
                    f"(({ft_raw} IS NOT NULL AND {ft} IS NULL) OR coalesce({ft}, {rtime}) IS NULL "
                    f"OR {far}) AS tbad{i}"
                )
            else:
                cols.append(f"{rtime} AS t{i}")
                cols.append("FALSE AS tbad{i}".replace("{i}", str(i)))
        parsed_time = self.time_sql(spec.time_field) if spec.time_field else "CAST(NULL AS TIMESTAMPTZ)"
        hash_parts = ", ".join(
            [f"coalesce(v{i}, '')" for i in range(len(spec.attributes))]
            + [f"coalesce(link{i}, '')" for i in range(len(spec.same_as))]
        )
        select = ",\n    ".join(cols)
        collapsed = "".join(f", {collapse(q(f))} AS {a}" for f, a in aliases.items())
        # Ids and event ids are computed once per row here, not once per use below.
        prefix = lit(spec.source_system + ":" + spec.source_object + ":")
        derived = [
            f"{uuid_from_hash_sql('entity_hash')} AS entity_id",
            f"concat({prefix}, record_id) AS ident_value",
            f"{value_node_id_sql(lit(SOURCE_RECORD_NODE), f'concat({prefix}, record_id)')} AS ident_node",
        ]
        for i, link in enumerate(spec.same_as):
            system, obj = link.attribute.split(".", 1)
            value = f"concat({lit(system + ':' + obj + ':')}, link{i})"
            derived.append(f"CASE WHEN link{i} IS NOT NULL THEN {value} END AS link_value{i}")
            derived.append(
                f"CASE WHEN link{i} IS NOT NULL THEN {value_node_id_sql(lit(SOURCE_RECORD_NODE), value)} END "
                f"AS link_node{i}"
            )
        # Fields stamped with the record time share one event id: the record version.
        derived.append(f"concat({prefix}, record_id, ':', rt_iso, ':', substr(row_hash, 1, 12)) AS e_rt")
        for i, row in enumerate(spec.attributes):
            derived.append(f"{self._target_node_sql(i, row)} AS n{i}")
            if event_key:
                derived.append(
                    f"CASE WHEN event_key IS NOT NULL THEN "
                    f"concat({prefix}, event_key, ':', {lit(row.source_field)}) END AS k{i}"
                )
            if row.event_time_field:
                stamp = f"strftime(t{i}, '{ISO_FORMAT}')"
                derived.append(
                    f"concat({prefix}, record_id, ':', {stamp}, ':', substr(row_hash, 1, 12)) AS e{i}"
                )
        return f"""
SELECT y.*, {", ".join(derived)}
FROM (
  SELECT *, md5(concat_ws('|', CAST(is_deleted AS VARCHAR), {hash_parts or "''"})) AS row_hash,
      {self._reference_hashes_sql()}sha256({self.entity_key_sql()}) AS entity_hash,
      strftime(record_time, '{ISO_FORMAT}') AS rt_iso
  FROM (
    SELECT {select}
    FROM (SELECT *, {self.record_id_sql()} AS _rid, {parsed_time} AS _rtime{collapsed}
          FROM batch_rows) r
    {self._joins(aliases)}
  ) x
) y
"""

    def _reference_key_sql(self, row: RegistryRow, value: str) -> str:
        """The entity key (:func:`aag.ids.entity_key`) of the record a reference points at."""
        system, _, obj = row.attribute.partition(".")
        return f"concat({lit(row.node_type + '|' + system + '|' + obj + '|')}, {value})"

    def _reference_hashes_sql(self) -> str:
        """``rh<i>``: the hashed entity key of every reference (sliced into a UUID later)."""
        return "".join(
            f"sha256({self._reference_key_sql(row, f'v{i}')}) AS rh{i}, "
            for i, row in enumerate(self.spec.attributes)
            if row.role == "reference"
        )

    def _target_node_sql(self, i: int, row: RegistryRow) -> str:
        """Node id of a field's target: a content-addressed value, or a referenced entity."""
        if row.role == "reference":
            return uuid_from_hash_sql(f"rh{i}")
        return value_node_id_sql(lit(row.node_type), f"v{i}")

    def phone_pairs_sql(self) -> str | None:
        """Distinct (raw phone, region) pairs that need ``phonenumbers`` (not already E.164)."""
        parts = []
        for row in self.spec.attributes:
            if split_normaliser(row.normaliser)[0] != "phone":
                continue
            text = f"nullif({collapse(q(row.source_field))}, '')"
            compact = rf"regexp_replace({text}, '[\s().\-/]', '', 'g')"
            joins = self._country_joins()
            parts.append(
                f"SELECT DISTINCT {text} AS raw, {self._region_sql(row)} AS region "
                f"FROM batch_rows r {joins} WHERE {text} IS NOT NULL AND NOT "
                f"(regexp_matches({compact}, '{E164_REGEX_SQL}') AND strpos({text}, '(0)') = 0)"
            )
        return " UNION ".join(parts) if parts else None

    def events_sql(self, batch_id: str, batch_sql: str | None = None) -> str:
        """Field events of the valid rows: one per attribute (and identity link) of a row.

        The events of a row come out together (one ``UNNEST`` of a list with an entry per
        attribute, rather than a ``UNION ALL`` branch per attribute), so the edges are
        written grouped by entity: runs of one entity id and one event id per row group,
        which Parquet stores several times smaller and writes faster.

        Args:
            batch_id: The batch every row belongs to.
            batch_sql: Instead, SQL giving each row's batch (a column carried by
                :meth:`rows_sql`), for inputs holding many batches.
        """
        spec = self.spec
        entries = self._event_entries()
        if not entries:
            return self._no_events_sql()
        batch = batch_sql or lit(batch_id)
        structs = ", ".join(
            "{" + ", ".join(f"'{n}': {v}" for n, v in zip(_EVENT_ENTRY, entry, strict=True)) + "}"
            for entry in entries
        )
        return (
            f"SELECT source_node_id, e.rel_type AS rel_type, {lit(spec.source_system)} AS source_system, "
            "e.target_node_id AS target_node_id, e.updated_at AS updated_at, "
            "e.source_event_id AS source_event_id, e.confidence AS confidence, "
            "e.source_field AS source_field, batch_id\n"
            f"FROM (SELECT entity_id AS source_node_id, {batch} AS batch_id, unnest([{structs}]) AS e\n"
            "      FROM ex_rows WHERE row_error IS NULL) u\n"
            "WHERE e.keep"
        )

    def _event_entries(self) -> list[tuple[str, ...]]:
        """SQL per event a row may yield, one value per :data:`_EVENT_ENTRY` name."""
        spec = self.spec
        entries: list[tuple[str, ...]] = []
        keyed = self.event_key_sql() is not None
        for i, row in enumerate(spec.attributes):
            event_id = f"e{i}" if row.event_time_field else "e_rt"
            if keyed:
                event_id = f"coalesce(k{i}, {event_id})"
            present = f" AND has{i}" if self.present_sql(row) else ""
            entries.append(
                (
                    f"NOT bad{i} AND NOT tbad{i}{present}",
                    lit(row.rel_type),
                    f"CASE WHEN is_deleted OR v{i} IS NULL THEN NULL ELSE n{i} END",
                    f"t{i}",
                    event_id,
                    f"CAST({row.confidence} AS FLOAT)",
                    lit(row.source_field),
                )
            )
        if self.owner is None:
            # The identity edge starts when the record is first seen: its record time, or
            # for purely field-level objects the earliest field time. It ends when the
            # source deletes the record (and a restored record opens a new version), so a
            # deleted record links nothing and leaves the identity map and the profiles.
            # (Rows about another object's records leave the identity edges to that object.)
            # (Only times that are usable: a rejected field time must not date the record.)
            field_times = (
                ", ".join(f"CASE WHEN NOT tbad{i} THEN t{i} END" for i in range(len(spec.attributes)))
                or "NULL"
            )
            seen = f"coalesce(record_time, least({field_times}))"
            entries.append(
                (
                    "TRUE",
                    lit(SOURCE_RECORD_REL),
                    "CASE WHEN is_deleted THEN NULL ELSE ident_node END",
                    seen,
                    "ident_value",
                    "CAST(1.0 AS FLOAT)",
                    lit(spec.id_field),
                )
            )
            # A same_as field is a record-level fact like any other: emptied, it removes the
            # link (unless the source says an empty link means nothing).
            for i, link in enumerate(spec.same_as):
                only = "TRUE" if self.links_can_be_removed() else f"link_node{i} IS NOT NULL"
                entries.append(
                    (
                        only,
                        lit(REFERS_TO_RECORD_REL),
                        f"CASE WHEN is_deleted THEN NULL ELSE link_node{i} END",
                        seen,
                        "e_rt",
                        "CAST(1.0 AS FLOAT)",
                        lit(link.source_field),
                    )
                )
        return entries

    @property
    def one_event_per_key_per_row(self) -> bool:
        """Whether a row yields at most one event per key (its events' rel_types differ).

        Then only an entity with several rows in a batch can have a key with several
        events (a record sent twice, a history row per change).
        """
        rels = [entry[1] for entry in self._event_entries()]
        return len(set(rels)) == len(rels)

    def _no_events_sql(self) -> str:
        """An empty query with the field-event columns."""
        return (
            "SELECT CAST(NULL AS VARCHAR) AS source_node_id, CAST(NULL AS VARCHAR) AS rel_type, "
            "CAST(NULL AS VARCHAR) AS source_system, CAST(NULL AS VARCHAR) AS target_node_id, "
            "CAST(NULL AS TIMESTAMPTZ) AS updated_at, CAST(NULL AS VARCHAR) AS source_event_id, "
            "CAST(NULL AS FLOAT) AS confidence, CAST(NULL AS VARCHAR) AS source_field, "
            "CAST(NULL AS VARCHAR) AS batch_id FROM ex_rows WHERE FALSE"
        )

    def _has_event_sql(self) -> str:
        """SQL telling whether an ``ex_rows`` row yields at least one attribute event."""
        tests = [
            f"(NOT bad{i} AND NOT tbad{i}{' AND has' + str(i) if self.present_sql(row) else ''})"
            for i, row in enumerate(self.spec.attributes)
        ]
        return "(" + " OR ".join(tests) + ")" if tests else "FALSE"

    def nodes_sql(self, now_sql: str) -> str:
        """Candidate nodes (:data:`aag.model.NODES` rows), one per node id.

        Value nodes of every value, the source-record nodes of the identity map, and the
        entity nodes (with the record they were first seen as in ``properties``).
        """
        spec = self.spec
        values = []
        for i, row in enumerate(spec.attributes):
            if row.role == "reference":
                continue
            values.append(
                f"SELECT n{i} AS node_id, {lit(row.node_type)} AS node_type, v{i} AS value "
                f"FROM ex_rows WHERE row_error IS NULL AND v{i} IS NOT NULL AND NOT is_deleted"
            )
        if self.owner is None:
            values.append(
                f"SELECT ident_node, {lit(SOURCE_RECORD_NODE)}, ident_value FROM ex_rows "
                "WHERE row_error IS NULL"
            )
        for i in range(len(spec.same_as)):
            values.append(
                f"SELECT link_node{i}, {lit(SOURCE_RECORD_NODE)}, link_value{i} FROM ex_rows "
                f"WHERE row_error IS NULL AND link_node{i} IS NOT NULL AND NOT is_deleted"
            )
        # Rows about another object's records write that record's entity node exactly as
        # its own rows do, and only when they say something about it.
        record = self.record_object
        entity_rows = "row_error IS NULL" + (f" AND {self._has_event_sql()}" if self.owner else "")
        distinct_values = (
            f"SELECT node_id, node_type, value, sha256(value) AS checksum, {now_sql} AS created_at, "
            "CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS properties "
            f"FROM (SELECT DISTINCT * FROM ({' UNION ALL '.join(values)}) v) d\nUNION ALL\n"
            if values
            else ""
        )
        # Value nodes are content-addressed: equal ids are equal rows, so DISTINCT suffices.
        return f"""
{distinct_values}SELECT entity_id AS node_id, {lit(record.entity_type)} AS node_type,
    CAST(NULL AS VARCHAR) AS value, CAST(NULL AS VARCHAR) AS checksum, {now_sql} AS created_at,
    MAP(['source_system', 'source_object', 'source_record_id'],
        [{lit(record.source_system)}, {lit(record.source_object)}, min(record_id)]) AS properties
FROM ex_rows WHERE {entity_rows}
GROUP BY entity_id{self._referenced_nodes_sql(now_sql)}
"""

    def _referenced_nodes_sql(self, now_sql: str) -> str:
        """Entity nodes that references point at, as the target object's extractor makes them.

        The row is the one the target's own records produce (same id, type and record
        properties), so whichever batch lands first writes the same node. Entities of this
        batch's own records are left to the branch above: one row per node id.
        """
        refs = [
            f"SELECT n{i} AS node_id, {lit(row.node_type)} AS node_type, "
            f"{lit(row.attribute.partition('.')[0])} AS source_system, "
            f"{lit(row.attribute.partition('.')[2])} AS source_object, v{i} AS record_id "
            f"FROM ex_rows WHERE row_error IS NULL AND v{i} IS NOT NULL AND NOT is_deleted"
            for i, row in enumerate(self.spec.attributes)
            if row.role == "reference"
        ]
        if not refs:
            return ""
        # Equal ids come from equal keys (type|system|object|id), so min() picks the one value.
        return f"""
UNION ALL
SELECT node_id, min(node_type), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), {now_sql},
    MAP(['source_system', 'source_object', 'source_record_id'],
        [min(source_system), min(source_object), min(record_id)])
FROM ({" UNION ALL ".join(refs)}) r
WHERE NOT EXISTS (SELECT 1 FROM ex_rows x WHERE x.row_error IS NULL AND x.entity_id = r.node_id)
GROUP BY node_id"""

    def quarantine_sql(self, batch_id: str, now_sql: str, batch_sql: str | None = None) -> str:
        """Quarantine rows (:data:`aag.model.QUARANTINE`) with reason and raw content.

        ``batch_sql``: SQL over the landed row ``r`` giving its batch, instead of ``batch_id``.
        """
        spec = self.spec
        return f"""
SELECT {lit(spec.source_system)} AS source_system, {lit(spec.source_object)} AS source_object,
    {batch_sql or lit(batch_id)} AS batch_id, CAST(f._row_number AS BIGINT) AS row_number, f.record_id,
    f.level, f.source_field, f.reason, r._raw AS raw, {now_sql} AS quarantined_at
FROM ({self._findings_sql()}) f JOIN batch_rows r ON r._row_number = f._row_number
"""

    def _findings_sql(self) -> str:
        parts = [
            "SELECT _row_number, record_id, 'row' AS level, CAST(NULL AS VARCHAR) AS source_field, "
            "row_error AS reason FROM ex_rows WHERE row_error IS NOT NULL"
        ]
        for i, row in enumerate(self.spec.attributes):
            name, _ = split_normaliser(row.normaliser)
            parts.append(
                f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "
                f"concat({lit('invalid ' + name + ' value in ' + row.source_field + ': ')}, "
                f"b.{q(row.source_field)}) "
                f"FROM ex_rows JOIN batch_rows b USING (_row_number) WHERE row_error IS NULL AND bad{i}"
            )
            if row.event_time_field:
                parts.append(
                    f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "
                    f"concat({lit('unparseable or missing field time (' + row.event_time_field + '): ')}, "
                    f"coalesce(b.{q(row.event_time_field)}, 'NULL')) "
                    f"FROM ex_rows JOIN batch_rows b USING (_row_number) "
                    f"WHERE row_error IS NULL AND NOT bad{i} AND tbad{i} AND NOT tfar{i}"
                )
                parts.append(
                    f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "
                    # The field's own time is set when it is out of range: t<i> is that time.
                    f"{self.out_of_range_reason_sql(f't{i}', row.event_time_field)} "
                    f"FROM ex_rows JOIN batch_rows b USING (_row_number) "
                    f"WHERE row_error IS NULL AND NOT bad{i} AND tfar{i}"
                )
        return "\nUNION ALL\n".join(parts)

    # -- running -------------------------------------------------------------------------
    def record_ids(self, engine: Engine, rows: pa.Table) -> pa.Table:
        """``_row_number, record_id``: each landed row's canonical record id (NULL if missing)."""
        engine.register("id_rows", rows)
        try:
            return engine.query(f"SELECT _row_number, {self.record_id_sql()} AS record_id FROM id_rows")
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
                "SELECT coalesce(sum(CASE WHEN row_error IS NOT NULL THEN 1 ELSE 0 END), 0) AS bad, "
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


class GenericExtractor(Extractor):
    """Extraction driven by registry rows alone.

    Record id, record time, deletion flag, and attributes with optional field-level
    time columns: everything a simple source needs.
    """
