"""Ingesting a batch: land → extract → edge rules → commit → ledger.

:func:`plan_change` is the engine-neutral heart (field events in, graph change
out) and runs on any :class:`~aag.graph.store.GraphStore`; :class:`BatchRun` is the one
orchestrator every writer uses (plan → commit → ledger rows through a
:class:`~aag.graph.ledger.BatchLog`); :func:`ingest_file` adds what a file needs around
it (chunks, landing, quarantine).

- :mod:`aag.pipeline.planning`: the graph change a batch's field events make.
- :mod:`aag.pipeline.run`: the orchestrator, used by ``aag ingest``, the serving intake
  and the Databricks job task.
- :mod:`aag.pipeline.rows`: which of a file's rows a batch extracts.
- :mod:`aag.pipeline.row_states` and :mod:`aag.pipeline.deferral`: rows that only re-send
  their record's values land without being extracted.
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
from aag.pipeline.run import Applied, BatchRun

__all__ = [
    "NEW_NODES",
    "NEW_NODE_IDS",
    "STEPS",
    "Applied",
    "BatchReport",
    "BatchRun",
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
