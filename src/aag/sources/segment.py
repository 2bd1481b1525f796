"""Segment ``identifies``: every trait of an identify call is a field event of its own.

An identify call carries ``traits``, a JSON object holding whatever the app knew when
it made the call, stamped with the call's ``timestamp``. Each trait is therefore a
field-level (tier 1) event, and the registry names traits by their JSON path under
``traits`` (``traits.firstName``, ``traits.address.city``).

Segment's presence semantics differ from record-level sources:

* a trait **absent** from a call says nothing about it: no event at all;
* a trait present as JSON ``null`` or ``""`` removes Segment's value (rule 3).

The record is the user: ``user_id`` when the call has one, else ``anon:`` + the
``anonymous_id``. Calls are delivered at least once, so ``message_id`` names the
event: field events get ``segment:identifies:<message_id>:<trait path>`` as their id,
which makes a re-sent call produce the very events already stored (nothing changes).
The first call with a message id wins: repeated message ids within one batch are
extracted once, and a call whose message id a committed batch already holds is dropped
before extraction (:func:`aag.pipeline.drop_resent`), even when its content differs.

Client clocks are wrong. As Segment does, a call that says when it was sent (``sent_at``)
and when it arrived (``received_at``) is dated ``timestamp + (received_at - sent_at)``:
the client's clock error, measured between sending and arrival, is taken out of its
timestamp. Segment's own warehouse tables already store that corrected ``timestamp``
(next to ``original_timestamp``), so a row carrying ``original_timestamp`` is used as is.
The corrected time is what the event-time bounds (SPEC §11) judge.
"""

from __future__ import annotations

import pyarrow as pa

from aag.config import RegistryRow
from aag.engine.base import Engine
from aag.engine.dialect import ident, lit
from aag.engine.duckdb import local_connection
from aag.sources.base import Extracted, Extractor

#: Prefix of registry source fields that name a trait.
TRAITS_PREFIX = "traits."


def _json_path(trait_path: str) -> str:
    """A dotted trait path (``address.city``) as a quoted JSON path (``$."address"."city"``)."""
    keys = trait_path.split(".")
    return "$." + ".".join('"' + key.replace('"', '\\"') + '"' for key in keys)


def _present_column(source_field: str) -> str:
    return f"_present:{source_field}"


class SegmentIdentifiesExtractor(Extractor):
    """Segment ``identifies`` calls: one event per trait present, keyed by ``message_id``."""

    extra_fields = ("traits", "anonymous_id", "message_id", "sent_at", "received_at", "original_timestamp")
    first_wins_key = "message_id"

    def record_id_sql(self) -> str:
        """``user_id``, else ``anon:<anonymous_id>`` (NULL when the call has neither)."""
        user = f"nullif(trim({ident(self.spec.id_field)}), '')"
        anon = "nullif(trim(anonymous_id), '')"
        return f"coalesce({user}, CASE WHEN {anon} IS NOT NULL THEN concat('anon:', {anon}) END)"

    def time_sql(self, column: str) -> str:
        """The call's ``timestamp`` corrected for client clock skew (see the module doc)."""
        own = super().time_sql(column)
        if column != self.spec.time_field:
            return own
        skew = f"({super().time_sql('received_at')} - {super().time_sql('sent_at')})"
        return (
            f"CASE WHEN nullif(trim(original_timestamp), '') IS NOT NULL THEN {own} "
            f"ELSE coalesce({own} + {skew}, {own}) END"
        )

    def present_sql(self, row: RegistryRow) -> str | None:
        """A trait takes part only when the call carries it (its value may still be null)."""
        return ident(_present_column(row.source_field))

    def links_can_be_removed(self) -> bool:
        """A ``user_id`` that is no Salesforce id links nothing, and says nothing either."""
        return False

    def event_key_sql(self) -> str | None:
        """The call's ``message_id``."""
        return "nullif(trim(message_id), '')"

    def prepare(self, rows: pa.Table) -> pa.Table:
        """Check ``traits`` and spread the mapped traits into columns with a presence flag.

        This is row-local parsing of landed text, done on the Arrow side (like reading the
        file), so every engine extracts from the same columns.
        """
        traits = [row for row in self.spec.attributes if row.source_field.startswith(TRAITS_PREFIX)]
        keep = [c for c in rows.column_names if c != "_error" and c not in {r.source_field for r in traits}]
        picks = [ident(c) for c in keep]
        for row in traits:
            path = lit(_json_path(row.source_field.removeprefix(TRAITS_PREFIX)))
            # json_extract gives SQL NULL for an absent key and JSON null for a null value.
            picks.append(f"json_extract_string(obj, {path}) AS {ident(row.source_field)}")
            present = ident(_present_column(row.source_field))
            picks.append(f"coalesce(json_extract(obj, {path}) IS NOT NULL, FALSE) AS {present}")
        user = f"nullif(trim({ident(self.spec.id_field)}), '')"
        con = local_connection()
        con.register("segment_rows", rows)
        try:
            prepared: pa.Table = con.sql(
                f"""
                SELECT {", ".join(picks)},
                    CASE WHEN _error IS NOT NULL THEN _error
                         WHEN {user} IS NULL AND nullif(trim(anonymous_id), '') IS NULL THEN
                             'missing record id: neither user_id nor anonymous_id is set'
                         {self._skew_errors_sql()}
                         WHEN t IS NULL OR kind = 'NULL' THEN NULL
                         WHEN kind IS NULL THEN
                             concat('traits must be a JSON object, got unparseable text: ', left(t, 200))
                         WHEN kind <> 'OBJECT' THEN concat(
                             'traits must be a JSON object, got ',
                             CASE WHEN kind IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN 'a number'
                                  WHEN kind = 'VARCHAR' THEN 'a string'
                                  WHEN kind = 'BOOLEAN' THEN 'a boolean'
                                  WHEN kind = 'ARRAY' THEN 'an array'
                                  ELSE lower(kind) END,
                             ': ', left(t, 200))
                    END AS _error
                FROM (
                    -- Only a valid object is parsed further: the JSON functions raise on bad text.
                    SELECT *, CASE WHEN kind = 'OBJECT' THEN t END AS obj FROM (
                        SELECT *, json_type(valid) AS kind FROM (
                            SELECT *, CASE WHEN json_valid(t) THEN t END AS valid
                            FROM (SELECT *, nullif(trim(traits), '') AS t FROM segment_rows) a
                        ) b
                    ) c
                ) d
                ORDER BY _row_number
                """  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
            ).to_arrow_table()
        finally:
            con.unregister("segment_rows")
        return prepared

    @staticmethod
    def _skew_errors_sql() -> str:
        """CASE branches rejecting a call whose skew correction cannot be computed.

        A call with ``sent_at`` (and no ``original_timestamp``) is corrected, so its
        ``sent_at`` and ``received_at`` must both be times: one unreadable would silently
        leave the skew in. Without ``sent_at`` neither is used, and neither is checked.
        """
        sent = "nullif(trim(sent_at), '')"
        corrected = f"{sent} IS NOT NULL AND nullif(trim(original_timestamp), '') IS NULL"
        return " ".join(
            f"WHEN {corrected} AND try_cast(nullif(trim({column}), '') AS TIMESTAMPTZ) IS NULL "
            f"THEN concat({lit(message)}, coalesce(left({column}, 100), 'NULL'))"
            for column, message in (
                ("sent_at", "unparseable sent_at: "),
                ("received_at", "sent_at is set, so received_at must be a time to correct the clock skew: "),
            )
        )

    def dedupe_sql(self, source: str) -> str:
        """The first copy of every message (rows without a ``message_id`` are all kept).

        Within one batch here; across the whole landed history in the declarative pipeline.
        """
        return f"""
SELECT * EXCLUDE (_copy) FROM (
    SELECT *, row_number() OVER (PARTITION BY trim(message_id) ORDER BY _row_number) AS _copy
    FROM {source}
) s
WHERE nullif(trim(message_id), '') IS NULL OR _copy = 1
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def extract(self, engine: Engine, rows: pa.Table, batch_id: str, now: pa.Scalar) -> Extracted:
        """Extract the first copy of every message; repeated copies count as processed.

        A copy of a message already in the batch would repeat its events exactly (same
        message, same ids), so it is dropped before extraction rather than quarantined:
        at-least-once delivery is normal, not an error. When a file comes in chunks, the
        message ids of the earlier chunks are kept (in DuckDB, one table per file), so a
        copy in a later chunk is dropped exactly as in a one-piece read.
        """
        con = local_connection()
        seen = self._seen_table()
        con.register("segment_batch", rows)
        try:
            con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {seen} (message_id VARCHAR)")
            first: pa.Table = con.sql(
                f"SELECT * FROM ({self.dedupe_sql('segment_batch')}) d "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"WHERE nullif(trim(message_id), '') IS NULL "
                f"OR trim(message_id) NOT IN (SELECT message_id FROM {seen}) ORDER BY _row_number"
            ).to_arrow_table()
            con.execute(
                f"INSERT INTO {seen} SELECT DISTINCT trim(message_id) FROM segment_batch "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                "WHERE nullif(trim(message_id), '') IS NOT NULL"
            )
        finally:
            con.unregister("segment_batch")
        extracted = super().extract(engine, first.cast(rows.schema), batch_id, now)
        extracted.rows_landed = rows.num_rows
        extracted.duplicates = rows.num_rows - first.num_rows
        return extracted

    def _seen_table(self) -> str:
        return f"segment_seen_{id(self)}"

    def close(self) -> None:
        """Drop the message ids kept for the file's chunks."""
        local_connection().execute(f"DROP TABLE IF EXISTS {self._seen_table()}")
