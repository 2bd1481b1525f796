"""The edge rules of SPEC §3, written once as SQL for every engine.

For one key K = (source_node_id, rel_type, source_system) the versions are a
pure function of the *set* of field events received for K:

1. sort K's events by event time, then source_event_id (then target, so that
   even pathological ties are deterministic);
2. collapse consecutive events with the same target into one version whose
   ``updated_at`` is the first event time of the run;
3. a removal event (target NULL) ends the run and leaves no current edge;
4. the last run is current.

The stored tables are enough to rebuild K's event set: every version row *is*
its run's first event, a version closed by a removal records that removal in
its properties, and every other event (later events of a run, repeated
removals) is kept in the ``edge_events`` log. A batch therefore recomputes only
the keys it brings a new event for, from that key's full event set, which is
why replays change nothing and batches in any order give the same tables.

The SQL below is the canonical dialect (DuckDB); the Spark engine runs the same
text through sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from aag.engine.base import Engine
from aag.model import FIELD_EVENTS, TS

KEY = "source_node_id, rel_type, source_system"

#: Flat form of a relationships row: the map ``properties`` spread into columns.
FLAT_EDGES = pa.schema(
    [
        pa.field("source_node_id", pa.string()),
        pa.field("target_node_id", pa.string()),
        pa.field("rel_type", pa.string()),
        pa.field("updated_at", TS),
        pa.field("confidence", pa.float32()),
        pa.field("is_current", pa.bool_()),
        pa.field("source_system", pa.string()),
        pa.field("source_event_id", pa.string()),
        pa.field("valid_to", TS),
        pa.field("closed_by", pa.string()),
        pa.field("closed_by_event", pa.string()),
        pa.field("source_field", pa.string()),
        pa.field("batch_id", pa.string()),
    ]
)

_EVENT_COLS = (
    "source_node_id, rel_type, source_system, target_node_id, updated_at, "
    "source_event_id, confidence, source_field, batch_id"
)

# origin: 0 = a version row, 1 = a removal recorded on a version, 2 = the log,
# 3 = this batch. Lower origins win de-duplication so that a re-sent event is
# recognised as known.
_KNOWN_EVENTS = f"""
SELECT {_EVENT_COLS}, 0 AS origin FROM existing_edges
UNION ALL
SELECT source_node_id, rel_type, source_system, CAST(NULL AS VARCHAR) AS target_node_id,
       valid_to AS updated_at, closed_by_event AS source_event_id,
       CAST(NULL AS FLOAT) AS confidence, source_field, CAST(NULL AS VARCHAR) AS batch_id,
       1 AS origin
FROM existing_edges WHERE closed_by = 'removal'
UNION ALL
SELECT {_EVENT_COLS}, 2 AS origin FROM existing_log
"""

SQL_EVENTS = f"""
SELECT * FROM (
    SELECT *, row_number() OVER (
        PARTITION BY {KEY}, updated_at, source_event_id, coalesce(target_node_id, '')
        ORDER BY origin, confidence DESC NULLS LAST, source_field, batch_id) AS dup_rank
    FROM (
        {_KNOWN_EVENTS}
        UNION ALL
        SELECT {_EVENT_COLS}, 3 AS origin FROM incoming
    ) all_events
) ranked
WHERE dup_rank = 1
"""

SQL_CHANGED_KEYS = f"SELECT DISTINCT {KEY} FROM rule_events WHERE origin = 3"

SQL_SEQUENCE = f"""
SELECT *,
    target_node_id IS NOT NULL AND (prev_target IS NULL OR target_node_id <> prev_target)
        AS is_start,
    target_node_id IS NULL AND prev_target IS NOT NULL AS is_close
FROM (
    SELECT e.*,
        lag(e.target_node_id) OVER w AS prev_target,
        row_number() OVER w AS pos
    FROM rule_events e
    JOIN rule_changed_keys k USING ({KEY})
    WINDOW w AS (PARTITION BY e.source_node_id, e.rel_type, e.source_system
                 ORDER BY e.updated_at, e.source_event_id, e.target_node_id NULLS FIRST)
) seq
"""

SQL_VERSIONS = f"""
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence,
    next_at IS NULL AS is_current, source_system, source_event_id,
    next_at AS valid_to,
    CASE WHEN next_at IS NULL THEN NULL
         WHEN next_target IS NULL THEN 'removal' ELSE 'change' END AS closed_by,
    next_event AS closed_by_event, source_field, batch_id
FROM (
    SELECT *,
        lead(updated_at) OVER w AS next_at,
        lead(source_event_id) OVER w AS next_event,
        lead(target_node_id) OVER w AS next_target
    FROM rule_sequence
    WHERE is_start OR is_close
    WINDOW w AS (PARTITION BY {KEY} ORDER BY pos)
) b
WHERE is_start
"""

SQL_LOG_APPEND = f"""
SELECT {_EVENT_COLS} FROM rule_sequence
WHERE NOT is_start AND NOT is_close AND origin <> 2
"""

_COMPARE = (
    "target_node_id, updated_at, confidence, is_current, source_event_id, valid_to, closed_by, "
    "closed_by_event, source_field, batch_id"
)

SQL_DIFF_KEYS = f"""
SELECT DISTINCT {KEY} FROM (
    (SELECT {KEY}, {_COMPARE} FROM rule_versions
     EXCEPT
     SELECT e.source_node_id, e.rel_type, e.source_system, {", ".join("e." + c for c in _COMPARE.split(", "))}
     FROM existing_edges e JOIN rule_changed_keys USING ({KEY}))
    UNION ALL
    (SELECT e.source_node_id, e.rel_type, e.source_system, {", ".join("e." + c for c in _COMPARE.split(", "))}
     FROM existing_edges e JOIN rule_changed_keys USING ({KEY})
     EXCEPT
     SELECT {KEY}, {_COMPARE} FROM rule_versions)
) d
"""

SQL_NEW_ROWS = f"""
SELECT v.* FROM rule_versions v JOIN rule_diff_keys USING ({KEY})
"""

SQL_NEW_VERSIONS_COUNT = f"""
SELECT count(*) FROM (
    SELECT {KEY}, target_node_id, updated_at FROM rule_versions
    EXCEPT
    SELECT {KEY}, target_node_id, updated_at FROM existing_edges
) n
"""


@dataclass
class RuleResult:
    """What one batch does to the edge tables.

    Attributes:
        replace_keys: Keys whose stored rows must all be replaced.
        new_rows: The rows (flat edges) that replace them.
        log_append: Absorbed events to append to the ``edge_events`` log.
        new_versions: Versions (key, target, start time) that did not exist before.
    """

    replace_keys: pa.Table
    new_rows: pa.Table
    log_append: pa.Table
    new_versions: int


def apply_edge_rules(
    engine: Engine, incoming: pa.Table, existing_edges: pa.Table, existing_log: pa.Table
) -> RuleResult:
    """Run the edge rules for one batch of field events.

    Args:
        engine: Where to run the SQL.
        incoming: The batch's field events (:data:`aag.model.FIELD_EVENTS`).
        existing_edges: Stored flat edge rows (:data:`FLAT_EDGES`) of at least every key
            in ``incoming`` (more is harmless).
        existing_log: Stored absorbed events of at least those keys.

    Returns:
        The keys to replace, their new rows, and log events to append.
    """
    engine.register("incoming", incoming.cast(FIELD_EVENTS))
    engine.register("existing_edges", existing_edges.cast(FLAT_EDGES))
    engine.register("existing_log", existing_log.cast(FIELD_EVENTS))
    try:
        engine.materialize("rule_events", SQL_EVENTS)
        engine.materialize("rule_changed_keys", SQL_CHANGED_KEYS)
        engine.materialize("rule_sequence", SQL_SEQUENCE)
        engine.materialize("rule_versions", SQL_VERSIONS)
        engine.materialize("rule_diff_keys", SQL_DIFF_KEYS)
        replace_keys = engine.query("SELECT * FROM rule_diff_keys")
        new_rows = engine.query(SQL_NEW_ROWS)
        log_append = engine.query(SQL_LOG_APPEND)
        new_versions = int(engine.scalar(SQL_NEW_VERSIONS_COUNT) or 0)  # type: ignore[call-overload]
    finally:
        for name in (
            "rule_diff_keys",
            "rule_versions",
            "rule_sequence",
            "rule_changed_keys",
            "rule_events",
            "incoming",
            "existing_edges",
            "existing_log",
        ):
            engine.drop(name)
    return RuleResult(
        replace_keys=replace_keys,
        new_rows=new_rows.select(FLAT_EDGES.names).cast(FLAT_EDGES),
        log_append=log_append.select(FIELD_EVENTS.names).cast(FIELD_EVENTS),
        new_versions=new_versions,
    )


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of a schema."""
    return schema.empty_table()


def format_ts(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Timestamps as ISO 8601 UTC strings with microseconds (``...T09:05:00.000000Z``)."""
    return pc.strftime(values, format="%Y-%m-%dT%H:%M:%S.%fZ")
