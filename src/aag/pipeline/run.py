"""The one batch orchestrator: field events → edge rules → graph commit → ledger rows.

Every writer goes through :class:`BatchRun`: ``aag ingest`` and the serving intake (via
:func:`aag.pipeline.batch.ingest_file`, once per chunk of a file) and the Databricks
job task (:func:`aag.databricks.job.commit_pending`, once per group of pipeline
batches). What differs between them stays outside: where the field events come from,
the graph store, and the batch log (:class:`~aag.graph.ledger.BatchLog`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aag.config import Config
from aag.engine.base import Engine
from aag.faults import crash_point
from aag.graph.ledger import BatchLog, LedgerEntry
from aag.graph.store import CommitStats, GraphStore
from aag.identity import IdentitySettings
from aag.pipeline.planning import empty_change, plan_change
from aag.sources import day_precision_prefixes
from aag.sources.base import EVENTS_TABLE, NODES_TABLE


@dataclass
class Applied:
    """What the batch's commits wrote so far (summed over :meth:`BatchRun.apply` calls)."""

    new_versions: int = 0
    nodes_written: int = 0
    edge_rows_rewritten: int = 0
    #: Incoming keys per rule path (skip, absorb, open, close, close_open, full).
    paths: dict[str, int] = field(default_factory=dict)
    #: Identity: records whose cluster was recomputed, SAME_AS links written, links ended.
    identity: dict[str, int] = field(default_factory=dict)

    def add(
        self, new_versions: int, stats: CommitStats, paths: dict[str, int], identity: dict[str, int]
    ) -> None:
        """Add one commit's figures."""
        self.new_versions += new_versions
        self.nodes_written += stats.nodes_written
        self.edge_rows_rewritten += stats.edge_rows_rewritten
        for target, counts in ((self.paths, paths), (self.identity, identity)):
            for key, value in counts.items():
                target[key] = target.get(key, 0) + int(value)


class BatchRun:
    """One batch (or several planned together) from field events to ledger rows.

    Call :meth:`apply` each time the engine holds field events of the batch (as
    :data:`~aag.sources.base.EVENTS_TABLE` and :data:`~aag.sources.base.NODES_TABLE`),
    then :meth:`finish` once: the ledger rows are what make the batches count as
    committed, so a crash before them leaves the batches to be run again (every commit
    is idempotent for its batch).

    Args:
        engine: Engine running the edge rules and identity.
        graph: Where the graph lives.
        log: Where the batches' ledger rows go.
        config: Registry and identity rules (the day-precision sources come from it).
        identity: Identity rules of the batch's entity type (none: records are not linked).
    """

    def __init__(
        self,
        engine: Engine,
        graph: GraphStore,
        log: BatchLog,
        config: Config,
        identity: IdentitySettings | None,
    ) -> None:
        self.engine = engine
        self.graph = graph
        self.log = log
        self.identity = identity
        self.day_precision = day_precision_prefixes(config)
        self.applied = Applied()

    def apply(
        self,
        metadata: dict[str, Any],
        repeats: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> CommitStats:
        """Plan the change the engine's field events make and commit it to the graph.

        Args:
            metadata: Commit metadata (batch ids, file name) for the graph's history.
            repeats: Engine table of the only entities whose keys may carry several
                events (:attr:`aag.sources.base.Extracted.repeats`), if known.
            before_commit: Called between planning and committing (progress reports).

        Returns:
            What the store wrote; the figures are also added to :attr:`applied`.
        """
        if self._nothing_to_plan():
            # A chunk whose rows were all unchanged or deferred: no rule, identity or
            # node scan can find anything, so the empty change goes straight to the
            # store (which writes nothing but passes its commit steps).
            for name in (EVENTS_TABLE, NODES_TABLE, *((repeats,) if repeats else ())):
                self.engine.drop(name)
            if before_commit is not None:
                before_commit()
            stats = self.graph.commit(empty_change(metadata))
            self.applied.add(0, stats, {}, {})
            return stats
        plan = plan_change(
            self.engine,
            self.graph,
            EVENTS_TABLE,
            NODES_TABLE,
            identity=self.identity,
            day_precision=self.day_precision,
            repeats=repeats,
        )
        if before_commit is not None:
            before_commit()
        try:
            stats = self.graph.commit(plan.change(metadata))
        finally:
            plan.release()
        self.applied.add(plan.new_versions, stats, plan.paths, plan.identity_counts)
        return stats

    def _nothing_to_plan(self) -> bool:
        """Whether the engine's batch holds neither field events nor node rows."""
        found = self.engine.query(
            f"SELECT count(*) AS n FROM (SELECT 1 AS x FROM {EVENTS_TABLE} "  # noqa: S608 - internal table names
            f"UNION ALL SELECT 1 AS x FROM {NODES_TABLE}) t"
        )
        return int(found.column(0)[0].as_py()) == 0

    def finish(self, entries: Sequence[LedgerEntry]) -> None:
        """Record the batches as committed (after every :meth:`apply` of them)."""
        crash_point("before-ledger")
        self.log.record_batches(entries)
        crash_point("ledger-written")
