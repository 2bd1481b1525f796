"""What an extraction yields from its rows: field events, candidate nodes, quarantine.

Each query reads ``ex_rows`` (:meth:`aag.sources.rows.RowsSql.rows_sql`): the field
events of the valid rows (one per attribute, identity edge and ``same_as`` link), the
value, source-record and entity nodes they point at, and the quarantine rows with the
reason each row or field was rejected.
"""

from __future__ import annotations

from aag.engine.dialect import ident, lit
from aag.normalize import split_normaliser
from aag.sources.rows import RowsSql
from aag.sources.sql import REFERS_TO_RECORD_REL, SOURCE_RECORD_NODE, SOURCE_RECORD_REL

#: Fields of one event in the per-row list :meth:`EventsSql.events_sql` unnests.
_EVENT_ENTRY = (
    "keep",
    "rel_type",
    "target_node_id",
    "updated_at",
    "source_event_id",
    "confidence",
    "source_field",
)


class EventsSql(RowsSql):
    """Builds the event, node and quarantine queries over ``ex_rows``."""

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
            f"SELECT source_node_id, e.rel_type AS rel_type, {lit(spec.source_system)} AS source_system, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
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
                f"SELECT n{i} AS node_id, {lit(row.node_type)} AS node_type, v{i} AS value "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"FROM ex_rows WHERE row_error IS NULL AND v{i} IS NOT NULL AND NOT is_deleted"
            )
        if self.owner is None:
            values.append(
                f"SELECT ident_node, {lit(SOURCE_RECORD_NODE)}, ident_value FROM ex_rows "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                "WHERE row_error IS NULL"
            )
        for i in range(len(spec.same_as)):
            values.append(
                f"SELECT link_node{i}, {lit(SOURCE_RECORD_NODE)}, link_value{i} FROM ex_rows "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"WHERE row_error IS NULL AND link_node{i} IS NOT NULL AND NOT is_deleted"
            )
        # Rows about another object's records write that record's entity node exactly as
        # its own rows do, and only when they say something about it.
        record = self.record_object
        entity_rows = "row_error IS NULL" + (f" AND {self._has_event_sql()}" if self.owner else "")
        distinct_values = (
            f"SELECT node_id, node_type, value, sha256(value) AS checksum, {now_sql} AS created_at, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
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
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def _referenced_nodes_sql(self, now_sql: str) -> str:
        """Entity nodes that references point at, as the target object's extractor makes them.

        The row is the one the target's own records produce (same id, type and record
        properties), so whichever batch lands first writes the same node. Entities of this
        batch's own records are left to the branch above: one row per node id.
        """
        refs = [
            f"SELECT n{i} AS node_id, {lit(row.node_type)} AS node_type, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
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
GROUP BY node_id"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

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
"""  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def _findings_sql(self) -> str:
        parts = [
            "SELECT _row_number, record_id, 'row' AS level, CAST(NULL AS VARCHAR) AS source_field, "
            "row_error AS reason FROM ex_rows WHERE row_error IS NOT NULL"
        ]
        for i, row in enumerate(self.spec.attributes):
            name, _ = split_normaliser(row.normaliser)
            parts.append(
                f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                f"concat({lit('invalid ' + name + ' value in ' + row.source_field + ': ')}, "
                f"b.{ident(row.source_field)}) "
                f"FROM ex_rows JOIN batch_rows b USING (_row_number) WHERE row_error IS NULL AND bad{i}"
            )
            if row.event_time_field:
                parts.append(
                    f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                    f"concat({lit('unparseable or missing field time (' + row.event_time_field + '): ')}, "
                    f"coalesce(b.{ident(row.event_time_field)}, 'NULL')) "
                    f"FROM ex_rows JOIN batch_rows b USING (_row_number) "
                    f"WHERE row_error IS NULL AND NOT bad{i} AND tbad{i} AND NOT tfar{i}"
                )
                parts.append(
                    f"SELECT _row_number, record_id, 'field', {lit(row.source_field)}, "  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names
                    # The field's own time is set when it is out of range: t<i> is that time.
                    f"{self.out_of_range_reason_sql(f't{i}', row.event_time_field)} "
                    f"FROM ex_rows JOIN batch_rows b USING (_row_number) "
                    f"WHERE row_error IS NULL AND NOT bad{i} AND tfar{i}"
                )
        return "\nUNION ALL\n".join(parts)
