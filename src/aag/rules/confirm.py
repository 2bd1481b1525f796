"""The confirm path: events that only confirm their key's current version.

They change no version and only enter the log; the SQL here also hands every other
event, and the stored rows of its key, to the tail and full paths (see :mod:`aag.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aag.rules.keys import _day_columns, day_precision_sql
from aag.rules.rows import _EVENT_COLS, KEY, flatten_sql


def known_times_sql(prefixes: Sequence[str] = ()) -> str:
    """SQL of the times known per key hash, and how many current versions the hash has.

    It reads the stored rows as they are (no lineage map is spread for a current version)
    and aggregates no strings, which is what keeps the confirm path cheap. Keys whose
    hashes collide share one row whose times are the later of theirs: a later bound
    only makes the confirm path refuse an event it could have taken.
    """
    day_edge, fine_edge, day_log, fine_log = _day_columns(prefixes)
    return f"""
SELECT key_hash, max(known_at) AS known_at, max(day_at) AS day_at, max(fine_at) AS fine_at,
    count(current) AS currents
FROM (
    SELECT hash({KEY}) AS key_hash, greatest(updated_at, coalesce(valid_to, updated_at)) AS known_at,
        current, {day_edge} AS day_at, {fine_edge} AS fine_at
    FROM (
        SELECT {KEY}, updated_at, source_event_id,
            CASE WHEN is_current THEN 1 END AS current,
            -- Only a closed version carries these (the map is read only for those rows).
            CASE WHEN NOT is_current THEN CAST(properties['valid_to'] AS TIMESTAMPTZ) END AS valid_to,
            CASE WHEN NOT is_current THEN properties['closed_by'] END AS closed_by,
            CASE WHEN NOT is_current THEN properties['closed_by_event'] END AS closed_by_event
        FROM existing_rel
    ) e
    UNION ALL
    SELECT hash({KEY}), updated_at, NULL, {day_log}, {fine_log}
    FROM existing_log
) k
GROUP BY key_hash
"""


def fast_sql(prefixes: Sequence[str] = ()) -> str:
    """Every incoming event with ``confirmed``: whether the confirm path takes it.

    An event is confirmed when its key has exactly one current version with the same
    target, the event is later than every event known for its key, it is its key's only
    event in the batch, and no known event of its key on its UTC day could shadow it or be
    shadowed by it (the conditions under which :func:`classify_sql` sends a later event
    to the full path). ``currents = 1`` also keeps a (corrupt) key with two current rows
    from duplicating its event in the join.
    """
    coarse = day_precision_sql("i.source_event_id", prefixes)
    finer = f"NOT {coarse}"
    cols = ", ".join(f"i.{c.strip()}" for c in _EVENT_COLS.split(","))
    return f"""
SELECT {cols},
    CASE WHEN c.target_node_id IS NOT NULL AND m.key_hash IS NULL AND i.updated_at > t.known_at
         AND NOT (t.day_at IS NOT NULL AND {finer}
                  AND CAST(i.updated_at AS DATE) = CAST(t.day_at AS DATE))
         AND NOT (t.fine_at IS NOT NULL AND {coarse}
                  AND CAST(i.updated_at AS DATE) = CAST(t.fine_at AS DATE))
    THEN TRUE ELSE FALSE END AS confirmed
FROM (SELECT *, hash({KEY}) AS key_hash FROM incoming) i
LEFT JOIN rule_known_times t ON t.key_hash = i.key_hash
LEFT JOIN rule_multi_keys m ON m.key_hash = i.key_hash
LEFT JOIN (SELECT {KEY}, target_node_id FROM existing_rel WHERE is_current) c
    ON c.source_node_id = i.source_node_id AND c.rel_type = i.rel_type
    AND c.source_system = i.source_system AND c.target_node_id = i.target_node_id
    AND t.currents = 1
"""


#: The incoming events the confirm path leaves to the tail and full paths.
SQL_REST = f"SELECT {_EVENT_COLS} FROM rule_fast WHERE NOT confirmed"
#: Key hashes of those events: the other paths read only the stored rows of these keys
#: (a colliding key's rows come along, which is harmless).
SQL_REST_KEYS = f"SELECT DISTINCT hash({KEY}) AS key_hash FROM rule_rest"
SQL_REST_EDGES = flatten_sql(
    f"(SELECT * FROM existing_rel WHERE hash({KEY}) IN (SELECT key_hash FROM rule_rest_keys)) rest_rel"
)
SQL_REST_LOG = f"SELECT * FROM existing_log WHERE hash({KEY}) IN (SELECT key_hash FROM rule_rest_keys)"

#: When nothing is stored for the batch's keys (an initial load) no event can confirm:
#: the confirm path is a projection and every stored row (none) is read.
SQL_FAST_NONE = f"SELECT {_EVENT_COLS}, FALSE AS confirmed FROM incoming"
SQL_REST_NONE = f"SELECT {_EVENT_COLS} FROM incoming"
SQL_REST_LOG_NONE = "SELECT * FROM existing_log"
