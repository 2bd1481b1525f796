"""Crash points for the fault tests.

``AAG_CRASH_AT=<point>`` (or ``<point>:<n>`` for the n-th time) makes the process
kill itself with SIGKILL when it reaches that point: no cleanup, no flush, exactly
what a power cut or an OOM kill does. The points sit between the writes of one
batch, where a crash leaves the tables of the warehouse at different versions; the
fault suite (``tests/faults``) proves that re-running the batch converges to the
same tables as a run that never crashed. Unset (always, outside those tests), a
crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

#: Every crash point, in the order one batch reaches them.
POINTS = (
    "bronze-landed",
    "quarantine-written",
    "nodes-committed",
    "log-committed",
    "edges-committed",
    "before-ledger",
    "ledger-written",
)

#: Crash points of ``aag build``: after dbt built the working copy of the gold tables,
#: and after the exports were written but before anything was published.
BUILD_POINTS = (
    "gold-models-built",
    "gold-exported",
)

_lock = threading.Lock()
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here (SIGKILL) if ``AAG_CRASH_AT`` names this point."""
    spec = os.environ.get("AAG_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
