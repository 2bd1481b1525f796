"""What the rules know per key: repeated keys, day-precision events, stored times.

The confirm and tail paths decide from these aggregates alone (see :mod:`aag.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aag.engine.dialect import lit
from aag.rules.rows import KEY


# Keys that bring more than one event in this batch (usually few or none), found by a
# 64-bit hash of the key: grouping one integer is much cheaper than three strings, and a
# collision only sends an innocent key down the exact full path.
def multi_keys_sql(repeats: str | None = None) -> str:
    """SQL of the keys with more than one incoming event.

    Args:
        repeats: Engine table (``source_node_id``) holding every entity whose keys may
            carry more than one event, when the caller knows it (an extraction whose rows
            each yield one event per key: only entities with several rows qualify). The
            grouping then runs over their events only, not over every event of the batch.
    """
    where = f"WHERE source_node_id IN (SELECT source_node_id FROM {repeats}) " if repeats else ""
    return f"SELECT hash({KEY}) AS key_hash FROM incoming {where}GROUP BY key_hash HAVING count(*) > 1"


def day_precision_sql(column: str, prefixes: Sequence[str]) -> str:
    """SQL telling whether the event id in ``column`` names a day-precision event.

    Args:
        column: Column holding a ``source_event_id``.
        prefixes: Event id prefixes of day-precision sources (``sap:KNA1:``).
    """
    if not prefixes:
        return "FALSE"
    tests = [f"substr({column}, 1, {len(p)}) = {lit(p)}" for p in prefixes]
    return "(" + " OR ".join(tests) + ")"


def _day_columns(prefixes: Sequence[str]) -> tuple[str, str, str, str]:
    """Expressions of ``day_at`` and ``fine_at`` over flat edge rows and over log rows.

    ``day_at`` is the time of a day-precision event; ``fine_at`` that of a finer (not
    day-precision) event, which may shadow an incoming day-precision event of its day.
    Without day-precision sources nothing is shadowed. Returns (day over edges, fine over
    edges, day over the log, fine over the log).
    """
    on_start = day_precision_sql("source_event_id", prefixes)
    on_close = day_precision_sql("closed_by_event", prefixes)
    # A removal is later than the start it closes, so it is the later one if both are.
    day_edge = (
        f"CASE WHEN closed_by = 'removal' AND {on_close} THEN valid_to WHEN {on_start} THEN updated_at END"
    )
    day_log = f"CASE WHEN {on_start} THEN updated_at END"
    fine_edge, fine_log = "CAST(NULL AS TIMESTAMPTZ)", "CAST(NULL AS TIMESTAMPTZ)"
    if prefixes:
        fine_edge = (
            f"CASE WHEN closed_by = 'removal' AND NOT {on_close} THEN valid_to "
            f"WHEN NOT {on_start} THEN updated_at END"
        )
        fine_log = f"CASE WHEN NOT {on_start} THEN updated_at END"
    return day_edge, fine_edge, day_log, fine_log


def known_keys_sql(prefixes: Sequence[str] = ()) -> str:
    """SQL of what is known per key the confirm path left over.

    That is the latest event time anywhere in its history, its current version (if any),
    and the time of its latest day-precision event (``day_at``).
    """
    day_edge, fine_edge, day_log, fine_log = _day_columns(prefixes)
    return f"""
SELECT {KEY}, max(known_at) AS known_at,
    max(cur_target) AS cur_target, max(cur_at) AS cur_at, max(cur_event) AS cur_event,
    max(day_at) AS day_at, max(fine_at) AS fine_at
FROM (
    SELECT {KEY}, greatest(updated_at, coalesce(valid_to, updated_at)) AS known_at,
        CASE WHEN is_current THEN target_node_id END AS cur_target,
        CASE WHEN is_current THEN updated_at END AS cur_at,
        CASE WHEN is_current THEN source_event_id END AS cur_event,
        {day_edge} AS day_at, {fine_edge} AS fine_at
    FROM existing_edges
    UNION ALL
    SELECT {KEY}, updated_at, NULL, NULL, NULL, {day_log}, {fine_log}
    FROM rule_rest_log
) k
GROUP BY {KEY}
"""
