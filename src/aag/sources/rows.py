"""Per-row extraction SQL: each landed row parsed, validated and normalised.

:meth:`RowsSql.rows_sql` is the query the rest of an extraction reads (as ``ex_rows``):
one row per landed row with its record id and time, deletion flag, the reason it is
quarantined if it is, every attribute normalised with its own event time and flags, and
the ids derived from them. Countries and phones are normalised through lookup tables the
caller registers (``aag_countries``, and ``aag_phones`` for the pairs of
:meth:`RowsSql.phone_pairs_sql`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aag.config import RegistryRow
from aag.engine.dialect import ident, lit
from aag.ids import uuid_from_hash_sql, value_node_id_sql
from aag.normalize import E164_REGEX_SQL, split_normaliser, sql_normalise
from aag.normalize import sql_collapse as collapse
from aag.rules import ISO_FORMAT
from aag.sources.hooks import ExtractorHooks
from aag.sources.sql import SOURCE_RECORD_NODE

#: Names of the record id and record time, parsed once in the innermost select.
_RID = "_rid"
_RTIME = "_rtime"


class RowsSql(ExtractorHooks):
    """Builds the per-row query (``ex_rows``) from the registry and the hooks."""

    def _collapsed(self, field: str, aliases: Mapping[str, str] | None) -> str:
        """A field whitespace-collapsed: its column in ``aliases`` if computed once, else SQL."""
        return aliases[field] if aliases and field in aliases else collapse(ident(field))

    def _attr_value_sql(
        self, i: int, row: RegistryRow, aliases: Mapping[str, str] | None = None
    ) -> tuple[str, str]:
        name, _ = split_normaliser(row.normaliser)
        raw = ident(row.source_field)
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
        aliases = self._collapsed_aliases()
        rtime = self._record_time()
        is_deleted, deletion_bad = self._deletion_sql(aliases)
        cols = [
            "r._row_number AS _row_number",
            f"{_RID} AS record_id",
            *(f"r.{ident(c)} AS {ident(c)}" for c in carry),
            f"{rtime} AS record_time",
            f"{is_deleted} AS is_deleted",
            f"{self._row_error_sql(ingest_sql, deletion_bad)} AS row_error",
        ]
        for i, link in enumerate(spec.same_as):
            cols.append(f"{sql_normalise(link.normaliser, ident(link.source_field))[0]} AS link{i}")
        event_key = self.event_key_sql()
        if event_key:
            cols.append(f"{event_key} AS event_key")
        cols += self._attribute_columns(aliases, ingest_sql)
        parsed_time = self.time_sql(spec.time_field) if spec.time_field else "CAST(NULL AS TIMESTAMPTZ)"
        hash_parts = ", ".join(
            [f"coalesce(v{i}, '')" for i in range(len(spec.attributes))]
            + [f"coalesce(link{i}, '')" for i in range(len(spec.same_as))]
        )
        select = ",\n    ".join(cols)
        collapsed = "".join(f", {collapse(ident(f))} AS {a}" for f, a in aliases.items())
        return f"""
SELECT y.*, {", ".join(self._derived_columns(event_key is not None))}
FROM (
  SELECT *, md5(concat_ws('|', CAST(is_deleted AS VARCHAR), {hash_parts or "''"})) AS row_hash,
      {self._reference_hashes_sql()}sha256({self.entity_key_sql()}) AS entity_hash,
      strftime(record_time, '{ISO_FORMAT}') AS rt_iso
  FROM (
    SELECT {select}
    FROM (SELECT *, {self.record_id_sql()} AS {_RID}, {parsed_time} AS {_RTIME}{collapsed}
          FROM batch_rows) r
    {self._joins(aliases)}
  ) x
) y
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def _collapsed_aliases(self) -> dict[str, str]:
        """Column name of each field's whitespace-collapsed text (attributes, deletion flag)."""
        fields = [row.source_field for row in self.spec.attributes]
        if self.spec.deleted_field:
            fields.append(self.spec.deleted_field)
        return {f: f"_aag_w{k}" for k, f in enumerate(dict.fromkeys(fields))}

    def _record_time(self) -> str:
        """The parsed record time by name, or a typed NULL when the object has none."""
        return _RTIME if self.spec.time_field else "CAST(NULL AS TIMESTAMPTZ)"

    def _deletion_sql(self, aliases: Mapping[str, str]) -> tuple[str, str]:
        """SQL of the row's deletion flag (``is_deleted``), and whether the flag is invalid."""
        spec = self.spec
        if not spec.deleted_field:
            return "FALSE", "FALSE"
        value, bad = sql_normalise(
            spec.deleted_normaliser, ident(spec.deleted_field), aliases[spec.deleted_field]
        )
        return f"coalesce({value} = 'true', FALSE)", bad

    def _row_error_sql(self, ingest_sql: str, deletion_bad: str) -> str:
        """SQL of the reason a whole row is quarantined (NULL: the row is used).

        The first failing check names it: a landing error, then (for rows about this
        object's records) the record id, the record time, the deletion flag, and whether
        the row has any event time at all.
        """
        spec = self.spec
        checks = ["WHEN r._error IS NOT NULL THEN r._error"]
        relevant = self.relevant_sql()
        if relevant:
            checks.append(f"WHEN NOT coalesce({relevant}, FALSE) THEN NULL")
        raw_id = f"nullif(trim(CAST(r.{ident(spec.id_field)} AS VARCHAR)), '')"
        checks.append(
            f"WHEN {_RID} IS NULL THEN CASE WHEN {raw_id} IS NULL "
            f"THEN {lit('missing record id (' + spec.id_field + ')')} "
            f"ELSE {lit('invalid record id (' + spec.id_field + ')')} END"
        )
        if spec.time_field:
            raw_t = ident(spec.time_field)
            checks.append(
                f"WHEN nullif(trim({raw_t}), '') IS NULL THEN "
                f"{lit('missing record time (' + spec.time_field + ')')}"
            )
            checks.append(
                f"WHEN {_RTIME} IS NULL THEN "
                f"concat({lit('unparseable record time (' + spec.time_field + '): ')}, {raw_t})"
            )
            checks.append(
                f"WHEN {self.out_of_range_sql(_RTIME, ingest_sql)} THEN "
                f"{self.out_of_range_reason_sql(_RTIME, spec.time_field)}"
            )
        if spec.deleted_field:
            checks.append(
                f"WHEN {deletion_bad} THEN concat("
                f"{lit('invalid deletion flag (' + spec.deleted_field + '): ')}, "
                f"{ident(spec.deleted_field)})"
            )
        if not spec.time_field:
            field_times = [self.time_sql(r.event_time_field) for r in spec.attributes if r.event_time_field]
            any_time = f"coalesce({', '.join(field_times)})" if field_times else "NULL"
            checks.append(
                f"WHEN {any_time} IS NULL THEN "
                f"{lit('no event time: the object has no record time and no field time is set')}"
            )
        return "CASE " + " ".join(checks) + " END"

    def _attribute_columns(self, aliases: Mapping[str, str], ingest_sql: str) -> list[str]:
        """Per attribute ``i``: value ``v<i>``, ``bad<i>``, ``has<i>`` if optional, time ``t<i>``.

        ``tbad<i>`` rejects the field's time, ``tfar<i>`` (fields with their own time) says
        that time is out of range.
        """
        rtime = self._record_time()
        cols = []
        for i, row in enumerate(self.spec.attributes):
            value, bad = self._attr_value_sql(i, row, aliases)
            cols.append(f"{value} AS v{i}")
            cols.append(f"{bad} AS bad{i}")
            present = self.present_sql(row)
            if present:
                cols.append(f"{present} AS has{i}")
            if row.event_time_field:
                ft_raw = f"nullif(trim({ident(row.event_time_field)}), '')"
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
        return cols

    def _derived_columns(self, keyed: bool) -> list[str]:
        """Ids and event ids of a row, computed once per row here, not once per use.

        Entity, source-record and link node ids, the record version's event id ``e_rt``,
        and per attribute its target node ``n<i>``, source event key ``k<i>`` (when the
        source has one) and own-time event id ``e<i>``.
        """
        spec = self.spec
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
            if keyed:
                derived.append(
                    f"CASE WHEN event_key IS NOT NULL THEN "
                    f"concat({prefix}, event_key, ':', {lit(row.source_field)}) END AS k{i}"
                )
            if row.event_time_field:
                stamp = f"strftime(t{i}, '{ISO_FORMAT}')"
                derived.append(
                    f"concat({prefix}, record_id, ':', {stamp}, ':', substr(row_hash, 1, 12)) AS e{i}"
                )
        return derived

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
            text = f"nullif({collapse(ident(row.source_field))}, '')"
            compact = rf"regexp_replace({text}, '[\s().\-/]', '', 'g')"
            joins = self._country_joins()
            parts.append(
                f"SELECT DISTINCT {text} AS raw, {self._region_sql(row)} AS region "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"FROM batch_rows r {joins} WHERE {text} IS NOT NULL AND NOT "
                f"(regexp_matches({compact}, '{E164_REGEX_SQL}') AND strpos({text}, '(0)') = 0)"
            )
        return " UNION ".join(parts) if parts else None
