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
The SQL of this package is the canonical dialect (DuckDB); the Spark engine runs the same
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

Modules: :mod:`~aag.rules.rows` (keys, flat edge rows, lineage maps), :mod:`~aag.rules.keys`
(what is known per key), one module per path (:mod:`~aag.rules.confirm`,
:mod:`~aag.rules.tail`, :mod:`~aag.rules.full`), and :mod:`~aag.rules.apply`, which runs
them in order on an engine.
"""

from __future__ import annotations

from aag.rules.apply import (
    OUT_FLAT,
    OUT_KEYS,
    OUT_LOG,
    OUT_ROWS,
    OUTPUTS,
    SQL_LOG_APPEND,
    SQL_NEW_ROWS,
    SQL_REPLACE_KEYS,
    RuleResult,
    apply_edge_rules,
    release_rule_tables,
)
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
from aag.rules.keys import (
    day_precision_sql,
    known_keys_sql,
    multi_keys_sql,
)
from aag.rules.rows import (
    FLAT_EDGES,
    ISO_FORMAT,
    KEY,
    SQL_FLATTEN,
    flatten_sql,
    unflatten_sql,
)
from aag.rules.tail import (
    SQL_TAIL_CLOSED,
    SQL_TAIL_LOG,
    SQL_TAIL_OPEN,
    classify_sql,
)

__all__ = [
    "FLAT_EDGES",
    "ISO_FORMAT",
    "KEY",
    "OUTPUTS",
    "OUT_FLAT",
    "OUT_KEYS",
    "OUT_LOG",
    "OUT_ROWS",
    "SQL_DIFF_KEYS",
    "SQL_FAST_NONE",
    "SQL_FLATTEN",
    "SQL_FULL_EDGES",
    "SQL_FULL_INCOMING",
    "SQL_FULL_KEYS",
    "SQL_FULL_LOG",
    "SQL_FULL_LOG_APPEND",
    "SQL_FULL_NEW_VERSIONS",
    "SQL_FULL_ROWS",
    "SQL_LOG_APPEND",
    "SQL_NEW_ROWS",
    "SQL_REPLACE_KEYS",
    "SQL_REST",
    "SQL_REST_EDGES",
    "SQL_REST_KEYS",
    "SQL_REST_LOG",
    "SQL_REST_LOG_NONE",
    "SQL_REST_NONE",
    "SQL_SEQUENCE",
    "SQL_TAIL_CLOSED",
    "SQL_TAIL_LOG",
    "SQL_TAIL_OPEN",
    "SQL_VERSIONS",
    "RuleResult",
    "apply_edge_rules",
    "classify_sql",
    "day_precision_sql",
    "events_sql",
    "fast_sql",
    "flatten_sql",
    "known_keys_sql",
    "known_times_sql",
    "multi_keys_sql",
    "release_rule_tables",
    "unflatten_sql",
]
