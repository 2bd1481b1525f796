"""The full path: recompute a touched key's versions from its whole event set (SPEC §3).

Used for the keys the tail path cannot settle: several events in one batch, late events,
day-precision events a finer event of their day may shadow (see :mod:`aag.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aag.rules.keys import day_precision_sql
from aag.rules.rows import _EVENT_COLS, KEY

# origin: 0 = a version row, 1 = a removal recorded on a version, 2 = the log,
# 3 = this batch. Lower origins win de-duplication so that a re-sent event is
# recognised as known.
_KNOWN_EVENTS = f"""
SELECT {_EVENT_COLS}, 0 AS origin FROM full_edges
UNION ALL
SELECT source_node_id, rel_type, source_system, CAST(NULL AS VARCHAR) AS target_node_id,
       valid_to AS updated_at, closed_by_event AS source_event_id,
       CAST(NULL AS FLOAT) AS confidence, source_field, CAST(NULL AS VARCHAR) AS batch_id,
       1 AS origin
FROM full_edges WHERE closed_by = 'removal'
UNION ALL
SELECT {_EVENT_COLS}, 2 AS origin FROM full_log
"""

SQL_FULL_KEYS = f"SELECT DISTINCT {KEY} FROM rule_classified WHERE action = 'full'"

SQL_FULL_INCOMING = f"SELECT i.* FROM rule_rest i JOIN rule_full_keys USING ({KEY})"
SQL_FULL_EDGES = f"SELECT e.* FROM existing_edges e JOIN rule_full_keys USING ({KEY})"
SQL_FULL_LOG = f"SELECT l.* FROM rule_rest_log l JOIN rule_full_keys USING ({KEY})"


def events_sql(prefixes: Sequence[str] = ()) -> str:
    """The full path's event set: stored and incoming events, de-duplicated.

    ``shadowed`` marks a day-precision event that a finer event of its key, on the same
    UTC day and with the same target, makes redundant (see the module docstring).
    """
    day = day_precision_sql("source_event_id", prefixes)
    shadowed = (
        f"""{day} AND max(CASE WHEN NOT {day} THEN 1 END) OVER (
            PARTITION BY {KEY}, CAST(updated_at AS DATE), coalesce(target_node_id, '')) IS NOT NULL"""
        if prefixes
        else "FALSE"
    )
    return f"""
SELECT *, {shadowed} AS shadowed FROM (
    SELECT * FROM (
        SELECT *, row_number() OVER (
            PARTITION BY {KEY}, updated_at, source_event_id, coalesce(target_node_id, '')
            ORDER BY origin, confidence DESC NULLS LAST, source_field, batch_id) AS dup_rank
        FROM (
            {_KNOWN_EVENTS}
            UNION ALL
            SELECT {_EVENT_COLS}, 3 AS origin FROM full_incoming
        ) all_events
    ) ranked
    WHERE dup_rank = 1
) deduplicated
"""


SQL_SEQUENCE = """
SELECT *,
    target_node_id IS NOT NULL AND (prev_target IS NULL OR target_node_id <> prev_target)
        AS is_start,
    target_node_id IS NULL AND prev_target IS NOT NULL AS is_close
FROM (
    SELECT e.*,
        lag(e.target_node_id) OVER w AS prev_target,
        row_number() OVER w AS pos
    FROM rule_events e
    WHERE NOT e.shadowed
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

#: Events the full path keeps only in the log: absorbed and shadowed ones it did not read
#: from there (a shadowed event that used to start or close a version moves to the log).
SQL_FULL_LOG_APPEND = f"""
SELECT {_EVENT_COLS} FROM rule_sequence
WHERE NOT is_start AND NOT is_close AND origin <> 2
UNION ALL
SELECT {_EVENT_COLS} FROM rule_events WHERE shadowed AND origin <> 2
"""

_COMPARE = (
    "target_node_id, updated_at, confidence, is_current, source_event_id, valid_to, closed_by, "
    "closed_by_event, source_field, batch_id"
)

# Set differences between the stored and the recomputed versions are one grouping over both
# sides (a row found on one side only), not EXCEPT: Spark 3.5, with adaptive execution off,
# fails to analyse an EXCEPT between two checkpoints of one plan ("conflicting references").


def _sides(cols: str) -> str:
    """The stored (``side`` 2) and recomputed (``side`` 1) rows of the touched keys, stacked."""
    return f"SELECT {cols}, 1 AS side FROM rule_versions UNION ALL SELECT {cols}, 2 AS side FROM full_edges"


#: Full-path keys whose recomputed rows differ from the stored ones.
SQL_DIFF_KEYS = f"""
SELECT DISTINCT {KEY} FROM (
    SELECT {KEY} FROM ({_sides(f"{KEY}, {_COMPARE}")}) s
    GROUP BY {KEY}, {_COMPARE}
    HAVING min(side) = max(side)
) d
"""

SQL_FULL_ROWS = f"SELECT v.* FROM rule_versions v JOIN rule_diff_keys USING ({KEY})"

SQL_FULL_NEW_VERSIONS = f"""
SELECT count(*) FROM (
    SELECT {KEY} FROM ({_sides(f"{KEY}, target_node_id, updated_at")}) s
    GROUP BY {KEY}, target_node_id, updated_at
    HAVING max(side) = 1
) n
"""
