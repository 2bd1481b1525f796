"""SAP customer master: ``KNA1`` (general data) with e-mail addresses from ``ADR6``.

KNA1 is a record-level source with day precision: ``LAEDA`` (last change, ``YYYYMMDD``)
is the time of every field, read as 00:00:00 UTC that day. A record that was never
changed has a blank ``LAEDA`` (SAP writes blank or ``00000000``); its creation date
``ERDAT`` is used instead. A date that is not a real ``YYYYMMDD`` day quarantines the
row. ``LOEVM = 'X'`` marks the record for deletion, which removes its values.

``NAME1`` and ``NAME2`` together are the customer's name: the registry maps ``NAME1``
to ``full_name`` and this extractor joins ``NAME2`` to it with one space.

ADR6 (e-mail addresses of an address number) has no change time of its own. Ingesting
an ADR6 file only lands its rows in bronze. When KNA1 rows are extracted, the landed
ADR6 rows of each row's address (``ADRNR = ADDRNUMBER``) are joined in, and registry
rows of KNA1 whose ``source_field`` is ``ADR6.<column>`` read that column of the chosen
ADR6 row. The e-mail therefore takes the KNA1 row's time: an ADR6 change becomes
visible with the next KNA1 row of that customer.

Change documents give KNA1 fields their exact time. ``CDHDR`` (headers: who, when) lands
only; ``CDPOS`` items of customer documents (``OBJECTCLAS = 'DEBI'``, ``TABNAME =
'KNA1'``) are joined to their landed header and become field events of the KNA1
record's entity at the header's ``UDATE`` + ``UTIME`` (:class:`SapCdposExtractor`).
Where such an event and KNA1's day-precision event for the same field, day and value
meet, the edge rules let the exact one start the run (:mod:`aag.rules`).
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from aag.config import Config, ObjectSpec, RegistryRow
from aag.engine.base import Engine
from aag.engine.dialect import ident, lit
from aag.sources.base import Extractor, LandingExtractor, landed_table
from aag.sources.history import FieldHistoryExtractor

#: Registry source fields of KNA1 that read a column of the joined ADR6 row.
ADR6_PREFIX = "ADR6."
ADR6_COLUMNS = ("ADDRNUMBER", "PERSNUMBER", "CONSNUMBER", "SMTP_ADDR", "FLGDEFAULT", "DATE_FROM")


def _sap_date(column: str) -> str:
    """A date column as text, NULL when blank or SAP's empty date ``00000000``."""
    return f"nullif(nullif(trim({ident(column)}), ''), '00000000')"


def _valid_date(value: str) -> str:
    """Whether a non-NULL text is a real ``YYYYMMDD`` day (both engines parse strictly)."""
    return f"(regexp_matches({value}, '^[0-9]{{8}}$') AND try_strptime({value}, '%Y%m%d') IS NOT NULL)"


def chosen_addresses_sql(source: str = landed_table("ADR6")) -> str:
    """SQL choosing one e-mail row per address number from landed ADR6 rows.

    Landed rows are history: the latest landing of each (address, person, sequence)
    number is the row's current state. Of the rows with an e-mail, the address's own
    (no ``PERSNUMBER``) come before contact persons', then the default (``FLGDEFAULT =
    'X'``), then the latest ``DATE_FROM``, then the lowest ``CONSNUMBER``.
    """
    cols = ", ".join(f"{ident(c)}" for c in ADR6_COLUMNS)
    return f"""
SELECT {cols} FROM (
    SELECT *, row_number() OVER (
        PARTITION BY addr
        ORDER BY CASE WHEN pers = '' THEN 0 ELSE 1 END,
                 CASE WHEN upper(coalesce(trim("FLGDEFAULT"), '')) = 'X' THEN 0 ELSE 1 END,
                 nullif(trim("DATE_FROM"), '') DESC NULLS LAST, cons) AS pick
    FROM (
        SELECT *, row_number() OVER (
            PARTITION BY addr, pers, cons ORDER BY _landed_at DESC, _batch_id DESC, _row_number DESC
        ) AS latest
        FROM (
            SELECT *, trim("ADDRNUMBER") AS addr, coalesce(trim("PERSNUMBER"), '') AS pers,
                coalesce(trim("CONSNUMBER"), '') AS cons
            FROM {source}
        ) l
    ) v
    WHERE latest = 1 AND nullif(trim("SMTP_ADDR"), '') IS NOT NULL
) ranked
WHERE pick = 1
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names


class SapKna1Extractor(Extractor):
    """KNA1 with day-precision times, the ERDAT fallback, NAME1 + NAME2 and ADR6 e-mails."""

    extra_fields = ("NAME2", "ERDAT", "ADRNR")
    reads = ("ADR6",)

    def related_records(self, landed: pa.Table) -> dict[str, list[str]]:
        """The customers' ADR6 address rows (``ADRNR``): their e-mails are theirs too."""
        numbers = {str(v).strip() for v in landed.column("ADRNR").to_pylist() if v and str(v).strip()}
        return {"ADR6": sorted(numbers)} if numbers else {}

    def enrich_sql(self, source: str, columns: list[str]) -> str | None:
        """Effective dates (with SAP date errors), the joined name and the ADR6 columns.

        Reads the landed ADR6 rows as :func:`~aag.sources.base.landed_table` ``("ADR6")``.
        """
        time_field = self.spec.time_field or "LAEDA"
        laeda, erdat = _sap_date(time_field), _sap_date("ERDAT")
        error = (
            "CASE WHEN r._error IS NOT NULL THEN r._error "
            f"WHEN {laeda} IS NOT NULL AND NOT {_valid_date(laeda)} "
            f"THEN concat({lit('invalid SAP date in ' + time_field + ': ')}, {laeda}) "
            f"WHEN {laeda} IS NULL AND {erdat} IS NOT NULL AND NOT {_valid_date(erdat)} "
            f"THEN concat('invalid SAP date in ERDAT: ', {erdat}) "
            f"WHEN {laeda} IS NULL AND {erdat} IS NULL "
            f"THEN {lit('missing SAP date: ' + time_field + ' and ERDAT are both blank')} END"
        )
        name = (
            "nullif(trim(concat_ws(' ', nullif(trim(r.\"NAME1\"), ''), nullif(trim(r.\"NAME2\"), ''))), '')"
        )
        picks = []
        for column in columns:
            if column == "_error":
                picks.append(f"{error} AS _error")
            elif column == time_field:
                # Never changed since creation: the creation day is the last change.
                picks.append(f"coalesce({laeda}, {erdat}) AS {ident(column)}")
            elif column == "NAME1":
                picks.append(f"{name} AS {ident(column)}")
            elif column.startswith(ADR6_PREFIX) and column[len(ADR6_PREFIX) :] in ADR6_COLUMNS:
                picks.append(f"a.{ident(column[len(ADR6_PREFIX) :])} AS {ident(column)}")
            else:
                picks.append(f"r.{ident(column)}")
        return (
            f"SELECT {', '.join(picks)} FROM {source} r "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
            f'LEFT JOIN ({chosen_addresses_sql()}) a ON trim(a."ADDRNUMBER") = trim(r."ADRNR")'
        )

    def enrich(self, engine: Engine, rows: pa.Table) -> pa.Table:
        """Run :meth:`enrich_sql` on a batch of landed rows."""
        engine.register("sap_kna1_rows", rows)
        try:
            joined = engine.query(str(self.enrich_sql("sap_kna1_rows", rows.column_names)))
        finally:
            engine.drop("sap_kna1_rows")
        return joined.select(rows.column_names).cast(rows.schema)


class SapAdr6Extractor(LandingExtractor):
    """ADR6 rows land (for KNA1 to join, :func:`chosen_addresses_sql`) and yield no events.

    A row without an ``ADDRNUMBER`` cannot be joined and is quarantined.
    """

    extra_fields = ADR6_COLUMNS[1:]


# -- change documents -----------------------------------------------------------------------

#: Change document object class of the customer master; its OBJECTID is the KUNNR.
CUSTOMER_CLASS = "DEBI"
#: The table whose field changes map to KNA1's registry rows.
CUSTOMER_TABLE = "KNA1"
#: Column the CDPOS extractor derives from the joined header: ``UDATE || UTIME``.
CHANGED_AT = "_changed_at"
CDHDR_COLUMNS = ("OBJECTCLAS", "CHANGENR", "UDATE", "UTIME", "USERNAME", "TCODE")
CDPOS_COLUMNS = ("OBJECTCLAS", "CHANGENR", "TABNAME", "TABKEY", "FNAME", "CHNGIND", "VALUE_NEW")


def _trimmed(column: str) -> str:
    return f"nullif(trim({ident(column)}), '')"


def _valid_change_time(date: str, time: str) -> str:
    """Whether non-NULL ``UDATE`` and ``UTIME`` texts form a real second (strictly parsed)."""
    return (
        f"(regexp_matches({date}, '^[0-9]{{8}}$') AND regexp_matches({time}, '^[0-9]{{6}}$') "
        f"AND try_strptime(concat({date}, {time}), '%Y%m%d%H%M%S') IS NOT NULL)"
    )


def latest_headers_sql(source: str = landed_table("CDHDR")) -> str:
    """SQL of the landed customer change document headers, the latest landing of each."""
    key = 'trim("OBJECTCLAS"), trim("OBJECTID"), trim("CHANGENR")'
    return f"""
SELECT cls, oid, nr, udate, utime FROM (
    SELECT trim("OBJECTCLAS") AS cls, trim("OBJECTID") AS oid, trim("CHANGENR") AS nr,
        {_trimmed("UDATE")} AS udate, {_trimmed("UTIME")} AS utime,
        row_number() OVER (
            PARTITION BY {key} ORDER BY _landed_at DESC, _batch_id DESC, _row_number DESC
        ) AS latest
    FROM {source}
    WHERE trim("OBJECTCLAS") = {lit(CUSTOMER_CLASS)}
) h
WHERE latest = 1
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names


class SapCdhdrExtractor(LandingExtractor):
    """CDHDR (change document headers) land for CDPOS to join and yield no events.

    Only customer documents (``OBJECTCLAS = 'DEBI'``) matter; headers of other object
    classes are processed and kept in bronze only. A customer header needs its
    ``OBJECTID`` (the KUNNR), ``CHANGENR`` and a valid ``UDATE`` + ``UTIME``, or it is
    quarantined.
    """

    belongs_to = CUSTOMER_TABLE
    extra_fields = CDHDR_COLUMNS

    def relevant_sql(self) -> str | None:
        """Customer master documents only."""
        return f'trim("OBJECTCLAS") = {lit(CUSTOMER_CLASS)}'

    def record_id_sql(self) -> str:
        """The KUNNR of a customer document (NULL for other classes: their ids are not KUNNRs)."""
        return f"CASE WHEN {self.relevant_sql()} THEN {super().record_id_sql()} END"

    def row_error_sql(self) -> str:
        """Customer headers that cannot date their items (id, number or time missing or invalid)."""
        udate, utime = _trimmed("UDATE"), _trimmed("UTIME")
        return (
            "CASE WHEN _error IS NOT NULL THEN _error "
            f"WHEN NOT coalesce({self.relevant_sql()}, FALSE) THEN NULL "
            f"WHEN record_id IS NULL THEN {lit('missing record id (' + self.spec.id_field + ')')} "
            f"WHEN {_trimmed('CHANGENR')} IS NULL THEN 'missing change number (CHANGENR)' "
            f"WHEN {udate} IS NULL OR {utime} IS NULL "
            "THEN 'missing change time: UDATE and UTIME are both needed' "
            f"WHEN NOT {_valid_change_time(udate, utime)} "
            f"THEN concat('invalid change time: UDATE ', {udate}, ', UTIME ', {utime}) END"
        )


class SapCdposExtractor(FieldHistoryExtractor):
    """CDPOS items of customer change documents: exact-time field events of KNA1 records.

    ``CDHDR`` lands first: each item is joined to the latest landed header of its
    document (``OBJECTCLAS``, ``OBJECTID``, ``CHANGENR``), whose ``UDATE`` + ``UTIME``
    (UTC, seconds) is the change time. An item of a customer document
    (``OBJECTCLAS = 'DEBI'``, ``TABNAME = 'KNA1'``) without a landed header is
    quarantined; items of other classes or tables are processed and yield nothing.
    ``FNAME`` is mapped by the KNA1 registry rows, ``VALUE_NEW`` is the new value.

    The name is ``NAME1`` and ``NAME2`` joined (as in KNA1): a document gives the full
    name only when it changes both, since an item does not say the other part. A
    document that changes one of them yields no name event, so KNA1's own (day) time
    stands for that change.
    """

    belongs_to = CUSTOMER_TABLE
    reads = ("CDHDR",)
    # NAME1 and NAME2 items of one document make one name event (change_sql): a document
    # cut by a chunk boundary would lose it.
    chunkable = False
    field_column = "FNAME"
    value_column = "VALUE_NEW"
    extra_fields = CDPOS_COLUMNS

    def __init__(self, spec: ObjectSpec, config: Config) -> None:
        super().__init__(spec, config)
        # The time comes from the header, joined into CHANGED_AT (see time_sql).
        self.spec = replace(self.spec, time_field=CHANGED_AT, time_format="iso8601")

    def relevant_sql(self) -> str | None:
        """Items of customer master documents that change KNA1."""
        return f'(trim("OBJECTCLAS") = {lit(CUSTOMER_CLASS)} AND trim("TABNAME") = {lit(CUSTOMER_TABLE)})'

    def record_id_sql(self) -> str:
        """The KUNNR of a customer item (NULL for others: their ids are not KUNNRs)."""
        return f"CASE WHEN {self.relevant_sql()} THEN {super().record_id_sql()} END"

    def time_sql(self, column: str) -> str:
        """The header's ``UDATE || UTIME`` as a UTC instant."""
        if column == CHANGED_AT:
            return f"CAST(try_strptime({_trimmed(column)}, '%Y%m%d%H%M%S') AS TIMESTAMPTZ)"
        return super().time_sql(column)

    def event_key_sql(self) -> str | None:
        """The document and, for a deletion flag item, that field (its events remove all)."""
        deleted = self.spec.deleted_field
        suffix = "''"
        if deleted:
            suffix = f"CASE WHEN {self.changes_sql(deleted)} THEN {lit(':' + deleted)} ELSE '' END"
        return f'concat(trim("OBJECTCLAS"), \':\', trim("OBJECTID"), \':\', trim("CHANGENR"), {suffix})'

    def history_rows_sql(self, source: str, columns: list[str]) -> tuple[str, list[str]]:
        """Items joined to their landed header: its time, or why there is none."""
        picks = [f"r.{ident(c)}" for c in columns if c != "_error"]
        valid = _valid_change_time("h.udate", "h.utime")
        document = 'concat(trim(r."OBJECTID"), \' \', trim(r."CHANGENR"))'
        error = (
            "CASE WHEN r._error IS NOT NULL THEN r._error "
            f"WHEN NOT coalesce({self.relevant_sql()}, FALSE) THEN NULL "
            # The base check names a missing id; a header cannot be looked up without one.
            f"WHEN {_trimmed('OBJECTID')} IS NULL THEN NULL "
            f"WHEN {_trimmed('CHANGENR')} IS NULL THEN 'missing change number (CHANGENR)' "
            f"WHEN h.nr IS NULL THEN concat('no landed CDHDR header for change document DEBI ', "
            f"{document}, ' (ingest CDHDR before CDPOS)') "
            f"WHEN h.udate IS NULL OR h.utime IS NULL OR NOT {valid} THEN concat("
            "'invalid change time in the CDHDR header: UDATE ', coalesce(h.udate, ''), "
            "', UTIME ', coalesce(h.utime, '')) END"
        )
        sql = f"""
SELECT {", ".join(picks)}, {error} AS _error,
    CASE WHEN h.udate IS NOT NULL AND h.utime IS NOT NULL AND {valid}
         THEN concat(h.udate, h.utime) END AS {ident(CHANGED_AT)}
FROM {source} r
LEFT JOIN ({latest_headers_sql()}) h
    ON h.cls = trim(r."OBJECTCLAS") AND h.oid = trim(r."OBJECTID") AND h.nr = trim(r."CHANGENR")
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
        return sql, [*(c for c in columns if c != "_error"), "_error", CHANGED_AT]

    def change_sql(self, row: RegistryRow) -> tuple[str, str]:
        """``NAME1`` items carry the full name when their document also changes ``NAME2``."""
        if row.source_field != "NAME1":
            return super().change_sql(row)
        document = 'PARTITION BY trim("OBJECTCLAS"), trim("OBJECTID"), trim("CHANGENR")'
        name1, name2 = self.changes_sql("NAME1"), self.changes_sql("NAME2")
        value = ident(self.value_column)
        other = f"max(CASE WHEN {name2} THEN coalesce({value}, '') END) OVER ({document})"
        both = f"({name1} AND ({other}) IS NOT NULL)"
        joined = f"nullif(trim(concat_ws(' ', {_trimmed(self.value_column)}, nullif(trim({other}), ''))), '')"
        return f"CASE WHEN {both} THEN {joined} END", both
