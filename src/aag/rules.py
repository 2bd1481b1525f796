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

Three paths compute this, and they agree by construction:

* the **confirm path** takes the events that only confirm their key's current
  version: the same target, later than every event known for the key, the key's
  only event in the batch, and no day-precision subtlety (below). SPEC §3 collapses
  such an event into the current version, so it changes no version and only enters
  the log. This is a full re-sync in which the source re-sends every record with a
  fresh record time but no changed field. The check needs only the key's current
  target and a few times aggregated per key hash (a hash collision merges two keys'
  times into a later, more cautious bound, so it can only send an event on to the
  other paths), and the events it takes never reach them;
* the **tail path** handles the keys that get exactly one event later than every
  event known for them (or an exact repeat of the current version's own event):
  the overwhelmingly common case of a sync. It needs only per-key aggregates, so a
  batch costs in proportion to its own size, whatever the history holds;
* the **full path** recomputes every other touched key (several events in one
  batch, late events) from its whole event set.

The tests hold all three to a plain-Python model of SPEC §3 under random batch orders.
The SQL below is the canonical dialect (DuckDB); the Spark engine runs the same
text through sqlglot.

**Day-precision events.** Some sources only know the day a record changed (SAP
``KNA1.LAEDA``): their events stand at 00:00:00 UTC of that day, which is earlier
than any change that really happened on it. When the same key also has a finer
event on that UTC day carrying the same value (or also removing it), e.g. the
exact time of an SAP change document, the day-precision event is *shadowed*: it
stays in the event set (and in the log) but starts and closes nothing, so the run
starts at the exact time. Whether an event is shadowed depends only on the set of
events of its key, so the rules stay order-independent. The caller names the
day-precision events by their id prefix (``sap:KNA1:``, see
:func:`apply_edge_rules`); with no prefixes nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from aag.engine.base import Engine
from aag.model import TS

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
_FLAT_COLS = ", ".join(FLAT_EDGES.names)


def flatten_sql(source: str) -> str:
    """SQL reading relationships rows from ``source`` with ``properties`` spread into columns."""
    return f"""
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
       source_system, source_event_id,
       CAST(properties['valid_to'] AS TIMESTAMPTZ) AS valid_to,
       properties['closed_by'] AS closed_by,
       properties['closed_by_event'] AS closed_by_event,
       properties['source_field'] AS source_field,
       properties['batch_id'] AS batch_id
FROM {source}
"""


#: Stored relationships rows (``existing_rel``), flat.
SQL_FLATTEN = flatten_sql("existing_rel")

#: Event times written into ``properties`` (ISO 8601 UTC, microseconds).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def unflatten_sql(flat_sql: str) -> str:
    """Wrap SQL returning flat edges so it returns relationships rows (lineage in a map).

    :func:`aag.store.unflatten_batch` builds the same rows from flat Arrow batches.
    """
    return f"""
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
    source_system, source_event_id,
    CASE WHEN valid_to IS NULL
         THEN MAP(['source_field', 'batch_id'], [source_field, batch_id])
         ELSE MAP(['valid_to', 'closed_by', 'closed_by_event', 'source_field', 'batch_id'],
                  [strftime(valid_to, '{ISO_FORMAT}'), closed_by, closed_by_event, source_field,
                   batch_id])
    END AS properties
FROM ({flat_sql}) flat
"""


# -- keys and what is known of them ---------------------------------------------------


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
    tests = [f"substr({column}, 1, {len(p)}) = '{p.replace(chr(39), chr(39) * 2)}'" for p in prefixes]
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


# -- confirm path ---------------------------------------------------------------------


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


# -- tail path ------------------------------------------------------------------------


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

# -- full path ------------------------------------------------------------------------

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

#: Full-path keys whose recomputed rows differ from the stored ones.
SQL_DIFF_KEYS = f"""
SELECT DISTINCT {KEY} FROM (
    (SELECT {KEY}, {_COMPARE} FROM rule_versions
     EXCEPT
     SELECT {KEY}, {_COMPARE} FROM full_edges)
    UNION ALL
    (SELECT {KEY}, {_COMPARE} FROM full_edges
     EXCEPT
     SELECT {KEY}, {_COMPARE} FROM rule_versions)
) d
"""

SQL_FULL_ROWS = f"SELECT v.* FROM rule_versions v JOIN rule_diff_keys USING ({KEY})"

SQL_FULL_NEW_VERSIONS = f"""
SELECT count(*) FROM (
    SELECT {KEY}, target_node_id, updated_at FROM rule_versions
    EXCEPT
    SELECT {KEY}, target_node_id, updated_at FROM full_edges
) n
"""

# -- results ------------------------------------------------------------------------------

#: Keys whose stored rows are replaced: the tail path's closed keys and the full path's
#: changed keys that have stored rows. Keys new to the graph need no delete marker.
SQL_REPLACE_KEYS = f"""
SELECT {KEY} FROM rule_classified WHERE action IN ('close', 'close_open')
UNION ALL
SELECT d.source_node_id, d.rel_type, d.source_system FROM rule_diff_keys d
WHERE EXISTS (SELECT 1 FROM full_edges f WHERE f.source_node_id = d.source_node_id
              AND f.rel_type = d.rel_type AND f.source_system = d.source_system)
"""

SQL_NEW_ROWS = f"""
SELECT {_FLAT_COLS} FROM rule_tail_open
UNION ALL
SELECT {_FLAT_COLS} FROM rule_tail_closed
UNION ALL
SELECT {_FLAT_COLS} FROM rule_full_rows
"""

SQL_LOG_APPEND = f"""
SELECT {_EVENT_COLS} FROM rule_fast WHERE confirmed
UNION ALL
{SQL_TAIL_LOG}
UNION ALL
{SQL_FULL_LOG_APPEND}
"""


def _first_steps(prefixes: Sequence[str] = (), repeats: str | None = None) -> tuple[tuple[str, str], ...]:
    """The steps (engine table, SQL; both materialised) telling whether anything is known."""
    return (
        ("rule_multi_keys", multi_keys_sql(repeats)),
        ("rule_known_times", known_times_sql(prefixes)),
    )


def _steps(prefixes: Sequence[str] = (), known: bool = True) -> tuple[tuple[str, str, bool], ...]:
    """The other rule steps in order: (engine table, SQL, whether to materialise it).

    ``known``: whether anything is stored for the batch's keys. If not (an initial load),
    the confirm path and the tail path's classification are cheap projections of the
    incoming events, so they stay views instead of copies of the batch.
    """
    confirm = (
        (
            ("rule_fast", fast_sql(prefixes), True),
            ("rule_rest", SQL_REST, False),
            ("rule_rest_keys", SQL_REST_KEYS, True),
            ("existing_edges", SQL_REST_EDGES, True),
            ("rule_rest_log", SQL_REST_LOG, False),
        )
        if known
        else (
            ("rule_fast", SQL_FAST_NONE, False),
            ("rule_rest", SQL_REST_NONE, False),
            ("rule_rest_keys", "SELECT 1 AS key_hash WHERE FALSE", False),
            ("existing_edges", SQL_FLATTEN, True),
            ("rule_rest_log", SQL_REST_LOG_NONE, False),
        )
    )
    return (
        *confirm,
        ("rule_known_keys", known_keys_sql(prefixes), True),
        ("rule_classified", classify_sql(prefixes), known),
        ("rule_tail_open", SQL_TAIL_OPEN, False),
        ("rule_tail_closed", SQL_TAIL_CLOSED, False),
        ("rule_full_keys", SQL_FULL_KEYS, True),
        ("full_incoming", SQL_FULL_INCOMING, True),
        ("full_edges", SQL_FULL_EDGES, True),
        ("full_log", SQL_FULL_LOG, True),
        ("rule_events", events_sql(prefixes), True),
        ("rule_sequence", SQL_SEQUENCE, True),
        ("rule_versions", SQL_VERSIONS, True),
        ("rule_diff_keys", SQL_DIFF_KEYS, True),
        ("rule_full_rows", SQL_FULL_ROWS, False),
    )


#: Engine tables of the rule steps (the same whatever the prefixes and what is known).
_STEP_NAMES: tuple[str, ...] = (
    *(name for name, _ in _first_steps()),
    *(name for name, _, _ in _steps()),
)


def _anything_known(engine: Engine) -> bool:
    counts = engine.query(
        "SELECT (SELECT count(*) FROM rule_known_times) AS k, (SELECT count(*) FROM rule_multi_keys) AS m"
    ).to_pylist()[0]
    return bool(counts["k"] or counts["m"])


def release_rule_tables(engine: Engine) -> None:
    """Drop the outputs of :func:`apply_edge_rules` and the steps they are views over."""
    for name in OUTPUTS:
        engine.drop(name)
    for name in reversed(_STEP_NAMES):
        engine.drop(name)


#: Engine tables :func:`apply_edge_rules` leaves for the commit (the caller drops them).
OUT_ROWS = "rule_out_rows"
#: The same rows flat (:data:`FLAT_EDGES`), for a commit that builds the lineage maps itself.
OUT_FLAT = "rule_out_flat"
OUT_KEYS = "rule_out_keys"
OUT_LOG = "rule_out_log"
OUTPUTS = (OUT_ROWS, OUT_FLAT, OUT_KEYS, OUT_LOG)


@dataclass
class RuleResult:
    """What one batch does to the edge tables.

    The rows themselves stay in the engine (:data:`OUTPUTS`) so that a commit can
    stream them instead of holding them all in memory.

    Attributes:
        replace_keys: Stored keys whose rows are all replaced (table :data:`OUT_KEYS`).
        new_rows: Relationships rows to write (table :data:`OUT_ROWS`): the complete row
            set of every replaced key, plus the rows of keys new to the graph.
        log_events: Absorbed events for the ``edge_events`` log (table :data:`OUT_LOG`).
        new_versions: Versions (key, target, start time) that did not exist before.
        paths: How many incoming keys each path handled (``confirm``, ``skip``, ``absorb``,
            ``open``, ``close``, ``close_open``, ``full``).
    """

    replace_keys: int
    new_rows: int
    log_events: int
    new_versions: int
    paths: dict[str, int]


def apply_edge_rules(
    engine: Engine, day_precision: Sequence[str] = (), repeats: str | None = None
) -> RuleResult:
    """Run the edge rules for one batch of field events.

    The caller makes three tables queryable in the engine first:

    * ``incoming``: the batch's field events (:data:`aag.model.FIELD_EVENTS`);
    * ``existing_rel``: stored relationships rows of at least every key in ``incoming``
      (more is harmless);
    * ``existing_log``: stored absorbed events of at least those keys.

    Args:
        engine: Where to run the SQL.
        day_precision: Event id prefixes of sources whose times are days (``sap:KNA1:``);
            their events are shadowed by finer same-day events (module docstring).
        repeats: Engine table of the only entities whose keys may have several incoming
            events, if known (:func:`multi_keys_sql`).

    Returns:
        Counts and paths; the rows are left in the engine as :data:`OUTPUTS` (a view over
        the rule steps, which stay until :func:`release_rule_tables`).
    """
    try:
        for name, sql in _first_steps(day_precision, repeats):
            engine.materialize(name, sql)
        for name, sql, materialise in _steps(day_precision, _anything_known(engine)):
            if materialise:
                engine.materialize(name, sql)
            else:
                engine.view(name, sql)
        paths = {
            str(row["action"]): int(row["n"])
            for row in engine.query(
                "SELECT action, count(*) AS n FROM rule_classified WHERE action <> 'full' "
                "GROUP BY action UNION ALL SELECT 'full', count(*) FROM rule_full_keys "
                "UNION ALL SELECT 'confirm', count(*) FROM rule_fast WHERE confirmed"
            ).to_pylist()
            if row["n"]
        }
        engine.materialize(OUT_KEYS, SQL_REPLACE_KEYS)
        # A view: on a re-sync it is the confirmed events, already a table of their own.
        engine.view(OUT_LOG, SQL_LOG_APPEND)
        # The rows stay a view: the commit computes them while it writes, so building the
        # lineage maps overlaps with Parquet encoding instead of preceding it.
        engine.view(OUT_ROWS, unflatten_sql(SQL_NEW_ROWS))
        engine.view(OUT_FLAT, SQL_NEW_ROWS)
        # The tail path's openings are known from the path counts: counting them again
        # would classify every incoming event twice more (it is a view on a first load).
        opened = paths.get("open", 0) + paths.get("close_open", 0)
        counts = engine.query(
            f"SELECT (SELECT count(*) FROM {OUT_KEYS}) AS k, (SELECT count(*) FROM {OUT_LOG}) AS l,"
            f" {opened} + (SELECT count(*) FROM rule_tail_closed) + (SELECT count(*) FROM rule_full_rows)"
            f" AS r, {opened} + ({SQL_FULL_NEW_VERSIONS}) AS v"
        ).to_pylist()[0]
    except BaseException:
        for name in OUTPUTS:
            engine.drop(name)
        for name in reversed(_STEP_NAMES):
            engine.drop(name)
        raise
    return RuleResult(
        replace_keys=int(counts["k"]),
        new_rows=int(counts["r"]),
        log_events=int(counts["l"]),
        new_versions=int(counts["v"]),
        paths=paths,
    )
