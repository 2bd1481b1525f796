"""The facade the CLI, the API and the MCP tools call. No I/O formatting here.

:class:`AagService` holds a warehouse, the session's engine and the graph store the
reads go through, and hands each command to the module that does it: ingest to
:mod:`aag.pipeline`, reads to :mod:`aag.service.reads` and :mod:`aag.service.lineage`,
identity decisions to :mod:`aag.identity.relink`, the gold build to :mod:`aag.gold`,
exports to :mod:`aag.service.export`, erasure to :mod:`aag.service.erasure` and upkeep to
:mod:`aag.service.maintenance`.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from aag import gold
from aag.engine import make_engine
from aag.engine.base import Engine
from aag.errors import AagError, InputError, NotFoundError, WarehouseError
from aag.graph.store import GraphStore
from aag.graph.warehouse import Warehouse
from aag.identity.overrides import Action, parse_record
from aag.identity.relink import decide
from aag.pipeline import BatchReport, FileProgress, ingest_file
from aag.resolution.explanation import Explanation
from aag.service import erasure, export, maintenance
from aag.service.lineage import Lineage
from aag.service.monitoring import MonitorReport
from aag.service.reads import GraphReads


class AagService:
    """One warehouse, one engine, one graph store: every command of the CLI, API and MCP."""

    def __init__(
        self, warehouse: str | None = None, engine: str | Engine = "local", graph: GraphStore | None = None
    ) -> None:
        """Open a warehouse.

        Args:
            warehouse: Warehouse location (SPEC §9 defaults).
            engine: Engine name (``local``, ``spark``) or a ready engine.
            graph: Where the read commands read the graph (default: the warehouse's Delta
                tables); e.g. a :class:`~aag.databricks.store.SparkTableGraphStore`.
        """
        self.warehouse = Warehouse(warehouse)
        self.graph: GraphStore = graph or self.warehouse.graph
        #: The read commands, and the explanations built on them.
        self.reads = GraphReads(self.warehouse, self.graph, lambda: self.engine)
        self.lineage = Lineage(self.reads)
        self._engine_name = engine if isinstance(engine, str) else engine.name
        self._engine: Engine | None = None if isinstance(engine, str) else engine

    @property
    def engine(self) -> Engine:
        """The compute engine (created on first use)."""
        if self._engine is None:
            self._engine = make_engine(self._engine_name)
        return self._engine

    # -- writing -------------------------------------------------------------------------
    def init(self) -> list[str]:
        """Create the warehouse tables and default config (idempotent)."""
        with self.warehouse.writer_lock():
            return self.warehouse.init()

    def ingest(
        self,
        source_system: str,
        source_object: str,
        files: Sequence[Path],
        on_file: Callable[[BatchReport], None] | None = None,
        on_step: Callable[[Path, str], None] | None = None,
        on_progress: Callable[[Path, FileProgress], None] | None = None,
        chunk_rows: int | None = None,
        max_row_bytes: int | None = None,
    ) -> list[BatchReport]:
        """Land and process files in the given order, one batch per file.

        Each file is read and processed in chunks, so memory stays bounded whatever its
        size; it is still one batch (one ledger row, exactly once).

        Args:
            source_system: Source system, e.g. ``salesforce``.
            source_object: Source object, e.g. ``Contact``.
            files: Files to land, in order.
            on_file: Called with each file's report when it is committed.
            on_step: Called with the file and the step (:data:`aag.pipeline.STEPS`) it enters.
            on_progress: Called with the file and how far it is (hashing, then each chunk).
            chunk_rows: Rows per chunk (default ``$AAG_CHUNK_ROWS``, else 500,000).
            max_row_bytes: The row size limit: a longer row is quarantined, not loaded
                (default ``$AAG_MAX_ROW_BYTES``, else 16 MiB).
        """
        self.warehouse.require()
        self.warehouse.config.object(source_system, source_object)
        for path in files:
            if Path(path).is_dir():
                example = Path(path) / "*.jsonl"
                raise InputError(f"{path} is a folder; give the files to ingest (e.g. {example})")
            if not Path(path).is_file():
                raise InputError(f"{path}: no such file")
        reports = []
        with self.warehouse.writer_lock():
            for path in files:
                # A batch that fails (full disk, read-only folder, ...) is undone on a local
                # warehouse, whose lock we hold: its tables go back to these versions.
                wh = self.warehouse
                before = {}
                if wh.local:
                    wh.reserve()
                    before = wh.versions(wh.batch_tables(source_system, source_object))
                try:
                    report = self._ingest_one(
                        source_system,
                        source_object,
                        Path(path),
                        on_step,
                        on_progress,
                        chunk_rows,
                        max_row_bytes,
                    )
                except Exception as exc:
                    _roll_back(wh, before, Path(path), exc)
                    raise
                reports.append(report)
                if on_file:
                    on_file(report)
        return reports

    def _ingest_one(
        self,
        source_system: str,
        source_object: str,
        path: Path,
        on_step: Callable[[Path, str], None] | None,
        on_progress: Callable[[Path, FileProgress], None] | None,
        chunk_rows: int | None,
        max_row_bytes: int | None = None,
    ) -> BatchReport:
        return ingest_file(
            self.warehouse,
            self.engine,
            source_system,
            source_object,
            path,
            on_step=partial(on_step, path) if on_step else None,
            on_progress=partial(on_progress, path) if on_progress else None,
            chunk_rows=chunk_rows,
            max_row_bytes=max_row_bytes,
        )

    # -- reading: GraphReads and Lineage do the work -------------------------------------
    def survivor(self, entity_id: str) -> str:
        """The customer id of an entity: the survivor of its identity cluster (or itself)."""
        return self.reads.survivor(entity_id)

    def survivors(self, entity_ids: list[str]) -> dict[str, str]:
        """Each entity's customer id (its survivor, or itself), in one read."""
        return self.reads.survivors(entity_ids)

    def members(self, customer_id: str) -> list[str]:
        """Every record entity of a customer: the survivor first, then its SAME_AS members."""
        return self.reads.members(customer_id)

    def customer_exists(self, customer_id: str) -> bool:
        """Whether an entity node with this id exists."""
        return self.reads.customer_exists(customer_id)

    def find_customer(self, source_system: str, source_id: str) -> str:
        """Customer id of a source record (:meth:`aag.service.reads.GraphReads.find_customer`)."""
        return self.reads.find_customer(source_system, source_id)

    def records_of(self, customer_id: str) -> list[str]:
        """``SOURCE:OBJECT:ID`` of every record of a customer."""
        return self.reads.records_of(customer_id)

    def attribute_spec(self, attribute: str) -> tuple[str, str, str]:
        """(rel_type, node_type, normaliser) of a canonical attribute, from the registry."""
        return self.reads.attribute_spec(attribute)

    def lookup(self, attribute: str, value: str) -> list[str]:
        """Customers holding a value now (:meth:`aag.service.reads.GraphReads.lookup`)."""
        return self.reads.lookup(attribute, value)

    def customer_profiles(self, version: int) -> pa.Table:
        """Profiles of every customer, resolved in Python (the reference for gold)."""
        return self.reads.customer_profiles(version)

    def monitor(self) -> MonitorReport:
        """Freshness per source, open conflicts, completeness and quarantine counts."""
        return self.reads.monitor()

    def identity_map(self) -> pa.Table:
        """Which customer each source record belongs to, one row per record."""
        return self.reads.identity_map()

    def profile(self, customer_id: str, version: int = 2) -> dict[str, Any]:
        """The resolved profile of one customer (:meth:`aag.service.lineage.Lineage.profile`)."""
        return self.lineage.profile(customer_id, version)

    def explain(self, customer_id: str, attribute: str) -> Explanation:
        """Winner, competing values and version history of one attribute."""
        return self.lineage.explain(customer_id, attribute)

    def identity_decisions(self, entity_ids: list[str] | None = None) -> list[str]:
        """Operator decisions in force (about any of these records, if given), as sentences."""
        return self.lineage.identity_decisions(entity_ids)

    def neighbourhood(self, entity_id: str, hops: int = 2, max_nodes: int = 500) -> dict[str, Any]:
        """The current graph around an entity (:meth:`aag.service.lineage.Lineage.neighbourhood`)."""
        return self.lineage.neighbourhood(entity_id, hops, max_nodes)

    def bronze_rows(self, customer_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The raw rows every source sent about a customer's records, as landed."""
        return self.lineage.bronze_rows(customer_id, limit)

    def _record_customer(self, record: str) -> str:
        """Customer id of a ``SOURCE:OBJECT:ID`` record (NotFoundError when not in the graph)."""
        system, _, record_id = parse_record(self.warehouse.config, record)
        return self.find_customer(system, record_id)

    def decide_identity(self, action: Action, records: list[str], note: str = "") -> dict[str, Any]:
        """Keep two records apart (``unlink``), join them (``link``) or ``undo`` either.

        The decision is stored in the warehouse config and applied by every later run;
        the two records' clusters are recomputed at once. See :func:`aag.identity.relink.decide`.
        """
        self.warehouse.require()
        customer: list[str] = []
        if action == "unlink" and len(records) == 2:
            customer = self.records_of(self._record_customer(records[1]))
        with self.warehouse.writer_lock():
            result = decide(self.warehouse, self.engine, action, records, note, customer)
        result["customers"] = {record: self._record_customer(record) for record in result["records"]}
        return result

    # -- gold ----------------------------------------------------------------------------
    def build(
        self, on_node: Callable[[str, str, int], None] | None = None, full_refresh: bool = False
    ) -> gold.BuildReport:
        """(Re)build the gold layer: ``dbt build`` on the local target, then Parquet exports.

        Incremental after an earlier build (only the customers whose edges changed since
        are resolved again), full otherwise or when asked. Holds the writer lock, so no
        batch or erasure lands while the gold tables are computed and exported.

        Args:
            on_node: Progress callback ``(dbt node name, status, total nodes)``.
            full_refresh: Rebuild every gold table from scratch.
        """
        self.warehouse.require()
        with self.warehouse.writer_lock():
            return gold.build(self.warehouse, on_node, full_refresh=full_refresh)

    def gold_is_stale(self) -> bool:
        """Whether silver changed since the last ``aag build`` (``False`` if never built)."""
        built = gold.manifest(self.warehouse)
        if not built:
            return False
        return bool(built.get("silver_versions") != gold.silver_versions(self.warehouse))

    def model(self, name: str) -> pa.Table:
        """A table by its export name (:data:`aag.service.export.EXPORT_MODELS`)."""
        return export.model(self.warehouse, name)

    def export_target_check(self, out: Path, force: bool = False) -> None:
        """Refuse an export target that would lose data (:func:`aag.service.export.export_target_check`)."""
        export.export_target_check(self.warehouse, out, force)

    def export(self, name: str, fmt: str, out: Path, force: bool = False) -> int:
        """Write a model to a file; returns the number of rows (:func:`aag.service.export.export`)."""
        return export.export(self.warehouse, name, fmt, out, force)

    # -- erasure ---------------------------------------------------------------------------
    def erase(self, customer_id: str, requested_by: str | None = None) -> dict[str, Any]:
        """GDPR erasure of one customer: every source record of its identity cluster.

        See :func:`aag.service.erasure.erase_customer` for what goes; run :meth:`vacuum` afterwards
        to delete the superseded files.

        Args:
            customer_id: Any record id of the customer.
            requested_by: Who asked (default: the operating-system user).
        """
        self.warehouse.require()
        if not self.customer_exists(customer_id):
            raise NotFoundError(f"no customer {customer_id!r} in the graph")
        wh = self.warehouse
        # The intake worker's lock first (its own order): the spool is rewritten.
        with wh.intake_lock(), wh.writer_lock():
            return erasure.erase_customer(wh, self.members(customer_id), requested_by or getpass.getuser())

    def optimize(self) -> dict[str, dict[str, Any]]:
        """Compact files and cluster edges by entity (:func:`aag.service.maintenance.optimize`)."""
        return maintenance.optimize(self.warehouse)

    def vacuum(self) -> dict[str, int]:
        """Delete files no table version references (:func:`aag.service.maintenance.vacuum`)."""
        return maintenance.vacuum(self.warehouse)


def _roll_back(wh: Warehouse, before: dict[str, int | None], path: Path, error: Exception) -> None:
    """Undo a failed batch's commits (see :meth:`Warehouse.roll_back`).

    Raises:
        WarehouseError: If undoing fails too (the disk is still full, say). The tables are
            then at a consistent version each, the batch has no ledger row, and running
            the same command again once the warehouse is writable completes it.
    """
    if not before:
        return
    try:
        wh.roll_back(before, path.name)
    except AagError as undo:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WarehouseError(
            f"{path.name}: {first}; undoing its partial writes failed too ({undo}). The batch is "
            "not recorded as ingested: run the same command again once the warehouse is writable"
        ) from error
