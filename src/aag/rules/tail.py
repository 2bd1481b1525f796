"""The tail path: keys with one event later than all they know, from per-key aggregates.

It classifies every event the confirm path left over; what it cannot settle goes to the
full path (see :mod:`aag.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aag.rules.keys import day_precision_sql
from aag.rules.rows import _EVENT_COLS, KEY


def classify_sql(prefixes: Sequence[str] = ()) -> str:
    """Classify every incoming event by its key.

    The actions are skip (exact repeat of the current version's event), absorb (log only),
    open (new version), close (end the current version), close_open (both), or full
    (recompute from the whole event set). A finer event on the day of a known
    day-precision event of its key may shadow that event, which only the full path sees.
    """
    coarse = day_precision_sql("i.source_event_id", prefixes)
    finer = f"NOT {coarse}"
    # A day-precision event later than everything known can still be shadowed by a known
    # finer event of its day (the latest finer event is then on that day).
    return f"""
SELECT i.*, k.known_at, k.cur_target, k.cur_at, k.cur_event,
    CASE
        WHEN m.key_hash IS NOT NULL THEN 'full'
        WHEN k.cur_target IS NOT NULL AND i.target_node_id = k.cur_target
             AND i.updated_at = k.cur_at AND i.source_event_id = k.cur_event THEN 'skip'
        WHEN k.known_at IS NOT NULL AND i.updated_at <= k.known_at THEN 'full'
        WHEN k.day_at IS NOT NULL AND {finer}
             AND CAST(i.updated_at AS DATE) = CAST(k.day_at AS DATE) THEN 'full'
        WHEN k.fine_at IS NOT NULL AND {coarse}
             AND CAST(i.updated_at AS DATE) = CAST(k.fine_at AS DATE) THEN 'full'
        WHEN k.cur_target IS NULL AND i.target_node_id IS NULL THEN 'absorb'
        WHEN k.cur_target IS NULL THEN 'open'
        WHEN i.target_node_id IS NULL THEN 'close'
        WHEN i.target_node_id = k.cur_target THEN 'absorb'
        ELSE 'close_open'
    END AS action
FROM rule_rest i
LEFT JOIN rule_known_keys k USING ({KEY})
LEFT JOIN rule_multi_keys m
    ON m.key_hash = hash(i.source_node_id, i.rel_type, i.source_system)
"""


#: Version rows the tail path opens (current, nothing after them).
SQL_TAIL_OPEN = """
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, TRUE AS is_current,
    source_system, source_event_id, CAST(NULL AS TIMESTAMPTZ) AS valid_to,
    CAST(NULL AS VARCHAR) AS closed_by, CAST(NULL AS VARCHAR) AS closed_by_event,
    source_field, batch_id
FROM rule_classified WHERE action IN ('open', 'close_open')
"""

#: Stored rows of the keys whose current version the tail path closes, with that
#: version closed (the key's other rows are re-emitted unchanged).
SQL_TAIL_CLOSED = f"""
SELECT e.source_node_id, e.target_node_id, e.rel_type, e.updated_at, e.confidence,
    CASE WHEN e.is_current THEN FALSE ELSE e.is_current END AS is_current,
    e.source_system, e.source_event_id,
    CASE WHEN e.is_current THEN c.updated_at ELSE e.valid_to END AS valid_to,
    CASE WHEN NOT e.is_current THEN e.closed_by
         WHEN c.target_node_id IS NULL THEN 'removal' ELSE 'change' END AS closed_by,
    CASE WHEN e.is_current THEN c.source_event_id ELSE e.closed_by_event END AS closed_by_event,
    e.source_field, e.batch_id
FROM existing_edges e
JOIN rule_classified c USING ({KEY})
WHERE c.action IN ('close', 'close_open')
"""

#: Events the tail path keeps only in the log.
SQL_TAIL_LOG = f"""
SELECT {_EVENT_COLS} FROM rule_classified WHERE action = 'absorb'
"""
