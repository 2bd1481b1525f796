"""Ingesting a batch: land → extract → edge rules → commit → ledger.

:func:`plan_change` is the engine-neutral heart (field events in, graph change
out) and runs on any :class:`~aag.graph.store.GraphStore`; :func:`ingest_file` adds
what the warehouse needs around it (landing, quarantine, ledger).

- :mod:`aag.pipeline.planning`: the graph change a batch's field events make.
- :mod:`aag.pipeline.rows`: which of a file's rows a batch extracts.
- :mod:`aag.pipeline.batch`: running a file's chunks as one batch, and its ledger row.
"""

from __future__ import annotations

from aag.pipeline.batch import (
    STEPS,
    BatchReport,
    FileProgress,
    already_ingested,
    batch_id_for,
    ingest_file,
)
from aag.pipeline.planning import NEW_NODE_IDS, NEW_NODES, Plan, plan_change
from aag.pipeline.rows import drop_resent, register_reads, split_unchanged, suppress_erased

__all__ = [
    "NEW_NODES",
    "NEW_NODE_IDS",
    "STEPS",
    "BatchReport",
    "FileProgress",
    "Plan",
    "already_ingested",
    "batch_id_for",
    "drop_resent",
    "ingest_file",
    "plan_change",
    "register_reads",
    "split_unchanged",
    "suppress_erased",
]
