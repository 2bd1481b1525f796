"""Run the edge rules on an engine: the steps of the three paths, in order, and their results.

The rows stay in the engine (:data:`OUTPUTS`) for the commit to stream; the caller drops
them with :func:`release_rule_tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aag.engine.base import Engine
from aag.rules.confirm import (
    SQL_FAST_NONE,
    SQL_REST,
    SQL_REST_EDGES,
    SQL_REST_KEYS,
    SQL_REST_LOG,
    SQL_REST_LOG_NONE,
    SQL_REST_NONE,
    fast_sql,
    known_times_sql,
)
from aag.rules.full import (
    SQL_DIFF_KEYS,
    SQL_FULL_EDGES,
    SQL_FULL_INCOMING,
    SQL_FULL_KEYS,
    SQL_FULL_LOG,
    SQL_FULL_LOG_APPEND,
    SQL_FULL_NEW_VERSIONS,
    SQL_FULL_ROWS,
    SQL_SEQUENCE,
    SQL_VERSIONS,
    events_sql,
)
from aag.rules.keys import known_keys_sql, multi_keys_sql
from aag.rules.rows import _EVENT_COLS, _FLAT_COLS, KEY, SQL_FLATTEN, unflatten_sql
from aag.rules.tail import SQL_TAIL_CLOSED, SQL_TAIL_LOG, SQL_TAIL_OPEN, classify_sql

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
