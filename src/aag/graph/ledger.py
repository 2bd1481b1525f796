"""The batch-log seam: which batches are committed, and their ledger rows.

A batch counts as ingested once its ledger row is written, after its graph change
committed. The warehouse keeps the ledger as a Delta table beside silver
(:class:`~aag.graph.warehouse.Warehouse`); on Databricks it is a catalog table
(:class:`~aag.databricks.store.SparkTableBatchLog`). The orchestrator
(:class:`~aag.pipeline.run.BatchRun`) only sees this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow as pa

from aag.model import LEDGER


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row (:data:`aag.model.LEDGER`).

    Counts a writer does not know are ``None`` (the Databricks job plans several
    pipeline batches together, so it knows each batch's field events but not what each
    one wrote).
    """

    batch_id: str
    source_system: str
    source_object: str
    started_at: datetime
    finished_at: datetime
    status: str = "committed"
    file_name: str | None = None
    file_sha256: str | None = None
    rows_landed: int | None = None
    rows_unchanged: int | None = None
    rows_suppressed: int | None = None
    rows_processed: int | None = None
    rows_quarantined: int | None = None
    fields_rejected: int | None = None
    field_events: int | None = None
    nodes_written: int | None = None
    edge_versions_written: int | None = None
    edge_rows_rewritten: int | None = None


def ledger_table(entries: Sequence[LedgerEntry]) -> pa.Table:
    """The entries as rows of :data:`aag.model.LEDGER`."""
    return pa.Table.from_pylist([asdict(e) for e in entries], schema=LEDGER)


class BatchLog(ABC):
    """Where a writer learns which batches are done and records the ones it finishes."""

    @abstractmethod
    def committed_batches(self, batch_ids: list[str]) -> set[str]:
        """Which of these batches the ledger records as committed."""

    @abstractmethod
    def record_batches(self, entries: Sequence[LedgerEntry]) -> None:
        """Append the entries in one commit (the last write of their batches)."""
