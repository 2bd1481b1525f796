"""The one service object the CLI (and later the API) call. No I/O formatting here."""

from __future__ import annotations

import getpass
import json
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aag import gold
from aag.bronze import file_sha256, parse_raw
from aag.config import Config, ObjectSpec
from aag.delta import change_feed_paused, delete_matching, is_local, now_utc
from aag.engine import make_engine
from aag.engine.base import Engine
from aag.engine.duckdb import local_connection
from aag.errors import AagError, InputError, NotFoundError, WarehouseError
from aag.identity import SAME_AS_REL
from aag.ids import record_key, value_node_id
from aag.model import ERASURES
from aag.monitoring import MonitorReport, checks_sql
from aag.normalize import InvalidValueError, normalise, split_normaliser
from aag.overrides import Action, parse_record, read_decisions, rules_in_force
from aag.pipeline import BatchReport, FileProgress, ingest_file
from aag.relink import decide, warehouse_overrides
from aag.resolution import (
    Explanation,
    explain,
    profiles,
    ranked_values,
)
from aag.selection import EdgeSelection, NodeSelection
from aag.sources import extractor_for, objects_belonging_to
from aag.sources.base import SOURCE_RECORD_NODE, SOURCE_RECORD_REL
from aag.store import GraphStore, flatten_edges
from aag.warehouse import Warehouse

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
#: Silver tables ``aag export`` reads directly from Delta.
SILVER_MODELS = ("nodes", "relationships", "quarantine", "batches")
#: Models ``aag export`` knows: the silver tables, and the gold models as ``aag build`` left them.
EXPORT_MODELS = (*SILVER_MODELS, *gold.GOLD_MODELS)


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class AagService:
    """Facade over warehouse, engine and rules."""

    def __init__(
        self, warehouse: str | None = None, engine: str | Engine = "local", graph: GraphStore | None = None
    ) -> None:
        """Open a warehouse.

        Args:
            warehouse: Warehouse location (SPEC §9 defaults).
            engine: Engine name (``local``, ``spark``) or a ready engine.
            graph: Where the read commands read the graph (default: the warehouse's Delta
                tables); e.g. a :class:`~aag.spark_store.SparkTableGraphStore`.
        """
        self.warehouse = Warehouse(warehouse)
        self.graph: GraphStore = graph or self.warehouse.graph
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

    # -- reading -------------------------------------------------------------------------
    def _edges_of(self, *entity_ids: str) -> pa.Table:
        return self.graph.read_edges(EdgeSelection(sources=entity_ids))

    def survivor(self, entity_id: str) -> str:
        """The customer id of an entity: the survivor of its identity cluster (or itself)."""
        return self.survivors([entity_id])[entity_id]

    def survivors(self, entity_ids: list[str]) -> dict[str, str]:
        """Each entity's customer id (its survivor, or itself), in one read."""
        if not entity_ids:
            return {}
        found = self.graph.read_edges(
            EdgeSelection(sources=entity_ids, rel_types=[SAME_AS_REL], current=True),
            ["source_node_id", "target_node_id"],
        )
        merged = dict(zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True))
        return {e: str(merged.get(e, e)) for e in entity_ids}

    def members(self, customer_id: str) -> list[str]:
        """Every record entity of a customer: the survivor first, then its SAME_AS members."""
        survivor = self.survivor(customer_id)
        found = self.graph.read_edges(
            EdgeSelection(targets=[survivor], rel_types=[SAME_AS_REL], current=True), ["source_node_id"]
        )
        return [survivor, *sorted(set(found.column(0).to_pylist()))]

    def _nodes_by_id(self, ids: list[str]) -> pa.Table:
        return self.graph.read_nodes(NodeSelection(ids=ids))

    def customer_exists(self, customer_id: str) -> bool:
        """Whether an entity node with this id exists."""
        found = self._nodes_by_id([customer_id])
        return bool(found.num_rows > 0)

    def find_customer(self, source_system: str, source_id: str) -> str:
        """Entity id of a source record (the identity map).

        Source-record nodes are content-addressed, so the candidate node ids are computed
        (one per configured object of the system, with the id canonicalised the way that
        object's id is) and looked up exactly; no pattern matching.
        """
        self.warehouse.require()
        objects = [
            o for o in self.warehouse.config.objects if o.source_system.lower() == source_system.lower()
        ]
        if not objects:
            raise NotFoundError(f"unknown source system {source_system!r}")
        candidates = set()
        for obj in objects:
            try:
                record_id = normalise(obj.id_normaliser, source_id)
            except InvalidValueError:
                continue
            if record_id:
                value = f"{obj.source_system}:{obj.source_object}:{record_id}"
                candidates.add(value_node_id(SOURCE_RECORD_NODE, value))
        if not candidates:
            raise NotFoundError(f"{source_id!r} is not a valid record id for {source_system}")
        edges = self.graph.read_edges(
            EdgeSelection(targets=candidates, rel_types=[SOURCE_RECORD_REL]),
            ["source_node_id", "is_current", "updated_at"],
        )
        if edges.num_rows == 0:
            raise NotFoundError(f"no record {source_id!r} from {source_system} in the graph")
        rows = sorted(edges.to_pylist(), key=lambda r: (not r["is_current"], r["updated_at"]))
        return self.survivor(str(rows[0]["source_node_id"]))

    def _customer_edges(self, customer_id: str) -> tuple[str, pa.Table, pa.Table]:
        """Survivor id, the edges of all the customer's records, and the nodes they reach."""
        self.warehouse.require()
        if not self.customer_exists(customer_id):
            raise NotFoundError(f"no customer {customer_id!r} in the graph")
        members = self.members(customer_id)
        edges = self._edges_of(*members)
        nodes = self._nodes_by_id(edges.column("target_node_id").to_pylist())
        return members[0], edges, nodes

    def profile(self, customer_id: str, version: int = 2) -> dict[str, Any]:
        """The resolved profile of one customer (v1, v2 or v3 shape).

        Any record id of the customer (a merged-away customer id included) gives the
        profile of the cluster's survivor, whose id is the profile's ``customer_id``.
        """
        survivor, edges, nodes = self._customer_edges(customer_id)
        one = pa.table({"node_id": pa.array([survivor], pa.string())})
        table = profiles(self.engine, edges, nodes, one, self.warehouse.config, version)
        row: dict[str, Any] = table.to_pylist()[0]
        return row

    def explain(self, customer_id: str, attribute: str) -> Explanation:
        """Winner, competing values and version history of one attribute."""
        rel_types = self.warehouse.config.attribute_rel_types()
        if attribute not in rel_types:
            raise NotFoundError(f"unknown attribute {attribute!r}; known: {', '.join(sorted(rel_types))}")
        rel_type = rel_types[attribute]
        survivor, edges, nodes = self._customer_edges(customer_id)
        ranked = ranked_values(self.engine, edges, nodes, self.warehouse.config)
        flat = flatten_edges(edges)
        values = dict(
            zip(nodes.column("node_id").to_pylist(), nodes.column("value").to_pylist(), strict=True)
        )
        mine = flat.filter(pc.equal(flat.column("rel_type"), rel_type))
        history = mine.append_column(
            "value",
            pa.array([values.get(t) for t in mine.column("target_node_id").to_pylist()], pa.string()),
        )
        rule = self.warehouse.config.survivorship_rule(attribute)
        result = explain(ranked, history, survivor, attribute, rel_type, rule)
        result.identity = self.identity_decisions(self.members(survivor))
        return result

    def _record_customer(self, record: str) -> str:
        """Customer id of a ``SOURCE:OBJECT:ID`` record (NotFoundError when not in the graph)."""
        system, _, record_id = parse_record(self.warehouse.config, record)
        return self.find_customer(system, record_id)

    def records_of(self, customer_id: str) -> list[str]:
        """``SOURCE:OBJECT:ID`` of every record of a customer."""
        members = self.members(customer_id)
        edges = self._edges_of(*members).to_pylist()
        targets = [
            str(e["target_node_id"]) for e in edges if e["rel_type"] == SOURCE_RECORD_REL and e["is_current"]
        ]
        nodes = self._nodes_by_id(targets)
        return sorted(str(v) for v in nodes.column("value").to_pylist())

    def identity_decisions(self, entity_ids: list[str] | None = None) -> list[str]:
        """Operator decisions in force (about any of these records, if given), as sentences."""
        path = warehouse_overrides(self.warehouse)
        if path is None:
            return []
        rules = rules_in_force(self.warehouse.config, read_decisions(path))
        wanted = set(entity_ids) if entity_ids is not None else None
        return [r.sentence() for r in rules if wanted is None or r.entity_a in wanted or r.entity_b in wanted]

    def decide_identity(self, action: Action, records: list[str], note: str = "") -> dict[str, Any]:
        """Keep two records apart (``unlink``), join them (``link``) or ``undo`` either.

        The decision is stored in the warehouse config and applied by every later run;
        the two records' clusters are recomputed at once. See :func:`aag.relink.decide`.
        """
        self.warehouse.require()
        customer: list[str] = []
        if action == "unlink" and len(records) == 2:
            customer = self.records_of(self._record_customer(records[1]))
        with self.warehouse.writer_lock():
            result = decide(self.warehouse, self.engine, action, records, note, customer)
        result["customers"] = {record: self._record_customer(record) for record in result["records"]}
        return result

    def attribute_spec(self, attribute: str) -> tuple[str, str, str]:
        """(rel_type, node_type, normaliser) of a canonical attribute, from the registry."""
        for row in self.warehouse.config.registry:
            if row.role == "attribute" and row.attribute == attribute and row.rel_type and row.node_type:
                return row.rel_type, row.node_type, row.normaliser
        known = ", ".join(sorted(self.warehouse.config.attribute_rel_types()))
        raise NotFoundError(f"unknown attribute {attribute!r}; known: {known}")

    def lookup(self, attribute: str, value: str) -> list[str]:
        """Customers holding a value as a current attribute value in any source.

        The value is normalised the way the registry normalises that attribute (an e-mail
        address lower-cased, a phone number to E.164) and matched exactly through its
        content-addressed value node; no pattern matching.

        Args:
            attribute: Canonical attribute, e.g. ``email`` or ``phone``.
            value: The value as a user typed it.

        Returns:
            The survivor ids of the customers, sorted (several when two customers share
            a value the identity guard would not let glue them).
        """
        self.warehouse.require()
        rel_type, node_type, normaliser = self.attribute_spec(attribute)
        try:
            normalised = normalise(normaliser, value)
        except InvalidValueError as exc:
            raise InputError(f"{value!r} is not a valid {attribute}: {exc}") from None
        if not normalised:
            raise InputError(f"{value!r} is not a valid {attribute}")
        node_id = value_node_id(node_type, normalised)
        holders = self.graph.read_edges(
            EdgeSelection(targets=[node_id], rel_types=[rel_type], current=True), ["source_node_id"]
        )
        return sorted(set(self.survivors([str(h) for h in holders.column(0).to_pylist()]).values()))

    def neighbourhood(self, entity_id: str, hops: int = 2, max_nodes: int = 500) -> dict[str, Any]:
        """The current graph around an entity, up to ``hops`` entity-to-entity steps.

        Every reached entity brings its value nodes and outgoing edges; walking goes
        along edges in both directions (an asset points at its company), but never
        through a value node: a shared value is not a path between customers.

        Args:
            entity_id: Any entity node id (a customer's record ids reach its survivor).
            hops: Entity-to-entity steps to follow (0 = the entity and its values).
            max_nodes: Stop expanding once this many nodes are collected.

        Returns:
            ``{"root", "nodes": [...], "edges": [...], "truncated"}``; edges are current
            edges only, with source system, field and field time.
        """
        self.warehouse.require()
        if hops < 0 or hops > 5:
            raise InputError("hops must be between 0 and 5")
        if not self.customer_exists(entity_id):
            raise NotFoundError(f"no entity {entity_id!r} in the graph")
        root = self.survivor(entity_id)
        seen: set[str] = set()
        cluster = {root, *self.members(root)}
        frontier = set(cluster)
        edges: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        truncated = False
        for step in range(hops + 1):
            frontier -= seen
            if not frontier:
                break
            seen |= frontier
            found = self.graph.read_edges(EdgeSelection(ends=frontier, current=True))
            keep = ["source_node_id", "target_node_id", "rel_type", "source_system", "source_field"]
            rows = (
                flatten_edges(found)
                .select([*keep, "updated_at", "confidence", "source_event_id"])
                .to_pylist()
            )
            ends = {r["source_node_id"] for r in rows} | {r["target_node_id"] for r in rows}
            reached = self._nodes_by_id(sorted(ends - seen)).to_pylist()
            nxt = {str(n["node_id"]) for n in reached if n["value"] is None}
            too_many = len(seen) + len(nxt) > max_nodes
            last = step == hops or too_many
            truncated = truncated or (too_many and step < hops)
            for row in rows:
                # Entities one step beyond the last hop stay out, with their edges.
                if last and (row["source_node_id"] in nxt or row["target_node_id"] in nxt):
                    continue
                key = (row["source_node_id"], row["target_node_id"], row["rel_type"], row["source_system"])
                edges.setdefault(key, row)
            if last:
                break
            frontier = nxt
        ids = sorted({e[0] for e in edges} | {e[1] for e in edges} | {root})
        # One row per node, in id order: a store may hold a node twice and return rows in any order.
        found = self._nodes_by_id(ids).select(["node_id", "node_type", "value"]).to_pylist()
        nodes = sorted({str(n["node_id"]): n for n in found}.values(), key=lambda n: str(n["node_id"]))
        winners = self._winning_edges(root)
        edge_rows = [
            {
                **row,
                # Only the customer's own edges can hold its winners (a company's city is not).
                "winner": row["source_node_id"] in cluster
                and (row["target_node_id"], row["source_system"]) in winners.get(row["rel_type"], set()),
            }
            for _, row in sorted(edges.items())
        ]
        return {"root": root, "hops": hops, "nodes": nodes, "edges": edge_rows, "truncated": truncated}

    def _winning_edges(self, customer_id: str) -> dict[str, set[tuple[str, str]]]:
        """rel_type → {(value node id, source)} of the customer's winning values."""
        survivor, edges, nodes = self._customer_edges(customer_id)
        ranked = ranked_values(self.engine, edges, nodes, self.warehouse.config)
        out: dict[str, set[tuple[str, str]]] = {}
        for row in ranked.to_pylist():
            if row["entity_id"] == survivor and row["rank"] == 1:
                out.setdefault(row["rel_type"], set()).add((row["target_node_id"], row["source_system"]))
        return out

    def bronze_rows(self, customer_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The raw rows every source sent about a customer's records, as landed in bronze.

        Args:
            customer_id: Any record id of the customer.
            limit: At most this many rows per bronze table (the latest first).

        Returns:
            One dict per row: source system and object, record id, batch, landing time,
            and the row exactly as received (parsed JSON).
        """
        _, edges, _ = self._customer_edges(customer_id)
        record_ids = [
            str(r["target_node_id"]) for r in edges.to_pylist() if r["rel_type"] == SOURCE_RECORD_REL
        ]
        records = [r["value"] for r in self._nodes_by_id(record_ids).to_pylist() if r["value"]]
        wh = self.warehouse
        out: list[dict[str, Any]] = []
        by_object: dict[tuple[str, str], set[str]] = {}
        for record in records:
            system, obj, record_id = str(record).split(":", 2)
            by_object.setdefault((system, obj), set()).add(record_id)
            for owned in objects_belonging_to(wh.config, system, obj):
                by_object.setdefault((system, owned.source_object), set()).add(record_id)
        for (system, obj), ids in sorted(by_object.items()):
            uri = wh.bronze_uri(system, obj)
            if not wh.io.exists(uri):
                continue
            quoted = ", ".join(_q(i) for i in sorted(ids))
            rows = wh.io.read(uri, "_record_id, _batch_id, _landed_at, _raw", f"_record_id IN ({quoted})")
            ordered = sorted(rows.to_pylist(), key=lambda r: r["_landed_at"], reverse=True)[:limit]
            spec = wh.config.object(system, obj)
            for r in ordered:
                raw = json.loads(r["_raw"])
                out.append(
                    {
                        "source_system": system,
                        "source_object": obj,
                        "record_id": r["_record_id"],
                        "batch_id": r["_batch_id"],
                        "landed_at": r["_landed_at"],
                        "record_time_field": spec.time_field,
                        "record_time": _record_time(spec, raw),
                        "row": raw,
                    }
                )
        return out

    def customer_profiles(self, version: int) -> pa.Table:
        """Profiles of every customer, resolved in Python (the reference for the dbt models).

        The gold model ``customer_profile`` (``aag build``) must return the same cells;
        ``tests/test_gold.py`` compares them.
        """
        self.warehouse.require()
        graph = self.graph
        # Ended source-record edges too: they say which records their source deleted.
        edges = pa.concat_tables(
            [
                graph.read_edges(EdgeSelection(current=True)),
                graph.read_edges(EdgeSelection(rel_types=[SOURCE_RECORD_REL], current=False)),
            ]
        )
        nodes = graph.read_nodes(NodeSelection(with_value=True), ["node_id", "node_type", "value"])
        customers = graph.read_nodes(NodeSelection(node_types=["customer"]), ["node_id", "node_type"])
        return customer_profiles_of(
            self.engine,
            edges,
            pa.concat_tables([nodes, customers], promote_options="default"),
            self.warehouse.config,
            version,
        )

    def monitor(self) -> MonitorReport:
        """Freshness per source, open conflicts, completeness and quarantine counts."""
        self.warehouse.require()
        wh = self.warehouse
        checked_at = now_utc()
        tables = {
            "relationships": self.graph.read_edges(
                EdgeSelection(),
                ["source_node_id", "target_node_id", "rel_type", "source_system", "updated_at", "is_current"],
            ),
            "nodes": self.graph.read_nodes(NodeSelection(node_types=["customer"]), ["node_id", "node_type"]),
            "batches": wh.batches(),
            "quarantine": wh.quarantine(),
            "attribute_name_registry": pa.Table.from_pylist(
                [r.model_dump() for r in wh.config.registry]
            ).select(["source_system", "source_object", "source_field", "role", "attribute", "rel_type"]),
        }
        engine = self.engine
        for name, table in tables.items():
            engine.register(name, table)
        try:
            now = f"'{checked_at.as_py().isoformat()}'"
            results = {name: engine.query(sql) for name, sql in checks_sql(now).items()}
        finally:
            for name in tables:
                engine.drop(name)
        return MonitorReport(checked_at=checked_at.as_py(), **results)

    def identity_map(self) -> pa.Table:
        """``customer_id, source_system, source_object, source_record_id, record_entity_id``.

        One row per customer source record: which customer each record belongs to.
        """
        self.warehouse.require()
        graph = self.graph
        edges = graph.read_edges(
            EdgeSelection(rel_types=[SOURCE_RECORD_REL, SAME_AS_REL], current=True),
            ["source_node_id", "target_node_id", "rel_type"],
        )
        records = graph.read_nodes(NodeSelection(node_types=[SOURCE_RECORD_NODE]), ["node_id", "value"])
        customers = graph.read_nodes(NodeSelection(node_types=["customer"]), ["node_id"])
        engine = self.engine
        for name, table in (("im_edges", edges), ("im_records", records), ("im_customers", customers)):
            engine.register(name, table)
        try:
            return engine.query(
                f"""
SELECT coalesce(m.target_node_id, r.source_node_id) AS customer_id,
       split_part(n.value, ':', 1) AS source_system, split_part(n.value, ':', 2) AS source_object,
       substr(n.value, length(split_part(n.value, ':', 1)) + length(split_part(n.value, ':', 2)) + 3)
           AS source_record_id,
       r.source_node_id AS record_entity_id
FROM im_edges r
JOIN im_customers c ON c.node_id = r.source_node_id
JOIN im_records n ON n.node_id = r.target_node_id
LEFT JOIN im_edges m ON m.source_node_id = r.source_node_id AND m.rel_type = '{SAME_AS_REL}'
WHERE r.rel_type = '{SOURCE_RECORD_REL}'
ORDER BY customer_id, source_system, source_object, source_record_id
"""
            )
        finally:
            for name in ("im_edges", "im_records", "im_customers"):
                engine.drop(name)

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
        """A table by its export name."""
        self.warehouse.require()
        graph = self.warehouse.graph
        if name == "nodes":
            return graph.nodes()
        if name == "relationships":
            return graph.relationships()
        if name == "quarantine":
            return self.warehouse.quarantine()
        if name == "batches":
            return self.warehouse.batches()
        if name in gold.GOLD_MODELS:
            return gold.read_gold(self.warehouse, name)
        raise NotFoundError(f"unknown model {name!r}; known: {', '.join(EXPORT_MODELS)}")

    def export_target_check(self, out: Path, force: bool = False) -> None:
        """Refuse an export target that would lose data; raises :class:`InputError`.

        An existing file is kept unless ``force``; a file inside the warehouse, or one with
        the content of a file the ledger records as landed (an input file), is kept even
        with ``force``: exports never overwrite what the warehouse was built from. A
        missing parent folder is an error, not created (a typo would go unnoticed).
        """
        if out.is_dir():
            raise InputError(f"{out} is a folder; give a file name with --out")
        if not out.parent.is_dir():
            raise InputError(f"{out.parent}: no such folder (create it first)")
        if self.warehouse.local and out.resolve().is_relative_to(Path(self.warehouse.uri)):
            raise InputError(f"{out} is inside the warehouse {self.warehouse.uri}; export elsewhere")
        if not out.exists():
            return
        if not force:
            raise InputError(f"{out} exists; use --force to overwrite it")
        if self.warehouse.is_initialised() and out.is_file():
            digest = file_sha256(out)
            landed = self.warehouse.io.read(
                self.warehouse.ledger_uri, "file_name", f"file_sha256 = '{digest}' AND status = 'committed'"
            )
            if landed.num_rows:
                raise InputError(
                    f"{out} is a file the warehouse ingested ({landed.column(0)[0].as_py()}); "
                    "not overwritten, even with --force"
                )

    def export(self, name: str, fmt: str, out: Path, force: bool = False) -> int:
        """Write a model to a file; returns the number of rows.

        The file is written next to its target under a temporary name and renamed into
        place, so a failed export leaves no half-written file (see
        :meth:`export_target_check` for the targets refused).
        """
        if fmt not in EXPORT_FORMATS:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        table = self.model(name)
        self.export_target_check(out, force)
        tmp = out.with_name(f".{out.name}.aag-export.tmp")
        try:
            self._write_export(table, fmt, tmp)
            tmp.replace(out)
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return int(table.num_rows)

    def _write_export(self, table: pa.Table, fmt: str, out: Path) -> None:
        if fmt == "parquet":
            pq.write_table(table, out)
            return
        # Text formats: timestamps as ISO 8601 UTC, maps as JSON objects (CSV) or nested
        # objects (JSON Lines); DuckDB writes the file without a Python row loop.
        columns = []
        for field in table.schema:
            col = '"' + field.name.replace('"', '""') + '"'
            if pa.types.is_timestamp(field.type):
                columns.append(f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {col}")
            elif pa.types.is_map(field.type) and fmt == "csv":
                columns.append(f"CAST(to_json({col}) AS VARCHAR) AS {col}")
            else:
                columns.append(col)
        con = local_connection()
        con.register("export_src", table)
        try:
            options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json"
            target = str(out).replace("'", "''")
            con.execute(f"COPY (SELECT {', '.join(columns)} FROM export_src) TO '{target}' ({options})")
        finally:
            con.unregister("export_src")

    # -- erasure ---------------------------------------------------------------------------
    def erase(self, customer_id: str, requested_by: str | None = None) -> dict[str, Any]:
        """GDPR erasure of one customer: every source record of its identity cluster.

        Removes the records' edges, the values only they used, their bronze rows (and the
        field-history and change-document rows landed under their ids) and their
        quarantine rows, then every bronze, quarantine and intake-spool row holding one of
        the person's e-mail addresses or phone numbers (rows that never became records),
        deletes the gold outputs (they hold the customer until the
        next ``aag build``), and logs a one-way key per record so later batches suppress them
        (the log names who asked and when, never a value). Run :meth:`vacuum` to delete
        the superseded files.

        Args:
            customer_id: Any record id of the customer.
            requested_by: Who asked (default: the operating-system user).
        """
        requested_by = requested_by or getpass.getuser()
        self.warehouse.require()
        if not self.customer_exists(customer_id):
            raise NotFoundError(f"no customer {customer_id!r} in the graph")
        wh = self.warehouse
        graph = wh.graph
        # The intake worker's lock first (its own order): the spool is rewritten below.
        with wh.intake_lock(), wh.writer_lock():
            members = self.members(customer_id)
            edges = self._edges_of(*members)
            targets = sorted(set(edges.column("target_node_id").to_pylist()) - set(members))
            own_records = {
                str(r["target_node_id"]) for r in edges.to_pylist() if r["rel_type"] == SOURCE_RECORD_REL
            }
            record_nodes = self._nodes_by_id(sorted(own_records))
            records = [r["value"] for r in record_nodes.to_pylist() if r["node_type"] == SOURCE_RECORD_NODE]
            # Values shared with another entity stay; the rest become unreachable and go.
            shared: set[str] = set()
            if targets:
                quoted = ", ".join(_q(t) for t in targets)
                mine = ", ".join(_q(m) for m in members)
                others = wh.io.read(
                    graph.relationships_uri,
                    "DISTINCT target_node_id",
                    f"target_node_id IN ({quoted}) AND source_node_id NOT IN ({mine})",
                )
                shared = set(others.column("target_node_id").to_pylist())
            # Entities the customer points at (the company it works at) are not its data.
            values = {r["node_id"] for r in self._nodes_by_id(targets).to_pylist() if r["value"] is not None}
            drop_nodes = [t for t in targets if t in values and t not in shared] + members
            meta = {"aag.operation": "erase"}
            ids = pa.table({"source_node_id": members})
            with change_feed_paused(wh.io, graph.relationships_uri):
                delete_matching(wh.io, graph.relationships_uri, ids, meta)
                delete_matching(wh.io, graph.relationships_uri, pa.table({"target_node_id": members}), meta)
            delete_matching(wh.io, graph.edge_events_uri, ids, meta)
            delete_matching(wh.io, graph.nodes_uri, pa.table({"node_id": drop_nodes}), meta)
            bronze_rows = 0
            by_object: dict[tuple[str, str], list[str]] = {}
            for record in records:
                system, obj, record_id = record.split(":", 2)
                by_object.setdefault((system, obj), []).append(record_id)
            # Rows of other objects that only make sense with these records (SAP's ADR6
            # e-mail rows of a KNA1 customer) are the customer's data too.
            for (system, obj), record_ids in list(by_object.items()):
                extractor = extractor_for(wh.config.object(system, obj), wh.config)
                uri = wh.bronze_uri(system, obj)
                if not extractor.reads or not wh.io.exists(uri):
                    continue
                quoted = ", ".join(_q(r) for r in record_ids)
                landed = parse_raw(wh.io.read(uri, "_raw", f"_record_id IN ({quoted})"), extractor.fields)
                for other, ids in extractor.related_records(landed).items():
                    by_object.setdefault((system, other), []).extend(ids)
            # Rows that never became records (a malformed id, a quarantined row, a call
            # still in the intake spool) are found by the person's identifying values.
            needles = _identifying_values(wh, edges, shared, by_object)
            log: list[dict[str, Any]] = []
            erasure_id = str(uuid.uuid4())
            erased_at = now_utc().as_py()
            for (system, obj), record_ids in by_object.items():
                # Field histories and change documents of a record are landed under its id.
                owned = [s.source_object for s in objects_belonging_to(wh.config, system, obj)]
                for bronze_object in (obj, *owned):
                    log += [
                        {
                            "erasure_id": erasure_id,
                            "erased_at": erased_at,
                            "requested_by": requested_by,
                            "customer_id": members[0],
                            "source_system": system,
                            "source_object": bronze_object,
                            "record_key": record_key(system, bronze_object, r),
                        }
                        for r in sorted(set(record_ids))
                    ]
                    bronze_rows += delete_matching(
                        wh.io,
                        wh.bronze_uri(system, bronze_object),
                        pa.table({"_record_id": record_ids}),
                        meta,
                    )
                delete_matching(
                    wh.io,
                    wh.quarantine_uri,
                    pa.table({"source_system": [system] * len(record_ids), "record_id": record_ids}),
                    meta,
                )
            found_by_value = _erase_by_value(wh, needles, meta)
            gold_files = gold.discard(wh, erased=members) if wh.local else 0
            # Logged last: a crash before this re-runs as a fresh erasure of what is left.
            wh.log_erasure(pa.Table.from_pylist(log, schema=ERASURES))
        return {
            "erasure_id": erasure_id,
            "edges_removed": edges.num_rows,
            "nodes_removed": len(drop_nodes),
            "bronze_rows_removed": bronze_rows,
            "source_records": len(records),
            "rows_found_by_value": found_by_value,
            "gold_files_removed": gold_files,
        }

    def optimize(self) -> dict[str, dict[str, Any]]:
        """Rewrite small files into large ones; cluster edges by entity for lookups.

        Every batch adds files, and a profile or explanation reads one entity's edges:
        Z-ordering ``relationships`` (and the event log) by ``source_node_id`` lets the
        reader skip files by their statistics. Contents do not change; run
        :meth:`vacuum` afterwards to delete the replaced files.
        """
        self.warehouse.require()
        wh = self.warehouse
        graph = wh.graph
        plan: list[tuple[str, list[str] | None]] = [
            (graph.relationships_uri, ["source_node_id"]),
            (graph.edge_events_uri, ["source_node_id"]),
            (graph.nodes_uri, None),
            (wh.quarantine_uri, None),
            *[(uri, None) for uri in _bronze_tables(wh)],
        ]
        out: dict[str, dict[str, Any]] = {}
        with wh.writer_lock():
            for uri, columns in plan:
                if not wh.io.exists(uri):
                    continue
                optimizer = wh.io.open(uri).optimize
                metrics = optimizer.z_order(columns) if columns else optimizer.compact()
                out[uri] = {
                    "files_removed": int(metrics.get("numFilesRemoved", 0)),
                    "files_added": int(metrics.get("numFilesAdded", 0)),
                }
        return out

    def vacuum(self) -> dict[str, int]:
        """Delete files no longer referenced by any table version (irreversible)."""
        self.warehouse.require()
        wh = self.warehouse
        uris = [
            wh.graph.nodes_uri,
            wh.graph.relationships_uri,
            wh.graph.edge_events_uri,
            wh.quarantine_uri,
            wh.ledger_uri,
            wh.erasures_uri,
        ]
        uris += _bronze_tables(wh)
        removed: dict[str, int] = {}
        with wh.writer_lock():
            for uri in uris:
                if not wh.io.exists(uri):
                    continue
                table = wh.io.open(uri)
                files = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
                removed[uri] = len(files) + _drop_change_data(uri)
        return removed


def customer_profiles_of(
    engine: Engine, edges: pa.Table, nodes: pa.Table, config: Config, version: int
) -> pa.Table:
    """Profiles of every customer of a graph, from its edges and nodes (any store).

    Args:
        engine: Engine resolving the winners.
        edges: Relationships rows (at least the current ones, and every version of the
            ``HAS_SOURCE_RECORD`` edges: an ended one marks a record its source deleted).
        nodes: Node rows (at least ``node_id``, ``node_type``, ``value``) holding the
            customers and the edges' targets.
        config: Registry and priorities.
        version: Profile version, 1, 2 or 3.
    """
    # Customers are the clusters' survivors: records with a SAME_AS edge are members. A
    # record its source deleted (its source-record edge ended) has nothing left to show.
    engine.register("cp_edges", edges.select(["source_node_id", "rel_type", "is_current"]))
    engine.register("cp_nodes", nodes.select(["node_id", "node_type", "value"]))
    try:
        survivors = engine.query(
            "SELECT node_id FROM cp_nodes WHERE node_type = 'customer' AND node_id NOT IN "
            f"(SELECT source_node_id FROM cp_edges WHERE rel_type = '{SAME_AS_REL}' AND is_current) "
            "AND node_id NOT IN (SELECT source_node_id FROM cp_edges "
            f"WHERE rel_type = '{SOURCE_RECORD_REL}' GROUP BY source_node_id HAVING NOT bool_or(is_current))"
        )
        values = engine.query("SELECT node_id, value FROM cp_nodes WHERE value IS NOT NULL")
    finally:
        engine.drop("cp_edges")
        engine.drop("cp_nodes")
    return profiles(engine, edges, values, survivors, config, version)


def _record_time(spec: ObjectSpec, raw: Any) -> str | None:
    """The record-level time of a raw row as ISO 8601 UTC, by the registry's ``record_time`` row.

    ``None`` when the object has no record time (ADR6) or the row's value does not parse
    (such rows are quarantined; the bronze row still shows what came in).
    """
    value = raw.get(spec.time_field) if spec.time_field and isinstance(raw, dict) else None
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if spec.time_format == "yyyymmdd":
            stamp = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        else:
            stamp = datetime.fromisoformat(text)
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except ValueError:
        return None
    fraction = f".{stamp.microsecond:06d}" if stamp.microsecond else ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


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


def _drop_change_data(uri: str) -> int:
    """Delete a local table's change data files; returns how many.

    delta-rs's vacuum leaves ``_change_data`` alone, and those files hold the rows every
    merge replaced, erased customers' values included. Without them the feed cannot be
    read back past this point, so the next ``aag build`` is a full one.
    """
    folder = Path(uri) / "_change_data"
    if not is_local(uri) or not folder.is_dir():
        return 0
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        path.unlink()
    return len(files)


def _bronze_tables(wh: Warehouse) -> list[str]:
    if not wh.local:
        return [wh.bronze_uri(s.source_system, s.source_object) for s in wh.config.objects]
    root = Path(wh.uri) / "bronze"
    return [str(p.parent) for p in root.glob("*/*/_delta_log")] if root.exists() else []


#: Normalisers whose values identify a person on their own (an e-mail, a phone number).
IDENTIFYING_NORMALISERS = ("email", "phone")
#: Shorter values are not searched for: they would match unrelated rows.
MIN_NEEDLE = 6


def _identifying_values(
    wh: Warehouse, edges: pa.Table, shared: set[str], by_object: dict[tuple[str, str], list[str]]
) -> list[str]:
    """The person's e-mail addresses and phone numbers, normalised and as the sources sent them.

    Values another entity also holds are left out: a row carrying one of them may be
    someone else's. Returns lower-case strings.
    """
    rows = [r for spec in wh.config.objects for r in spec.attributes]
    rel_types = {r.rel_type for r in rows if split_normaliser(r.normaliser)[0] in IDENTIFYING_NORMALISERS}
    mine = {
        str(r["target_node_id"])
        for r in edges.select(["target_node_id", "rel_type"]).to_pylist()
        if r["rel_type"] in rel_types
    }
    found: set[str] = set()
    node_ids = sorted(mine - shared)
    if node_ids:
        quoted = ", ".join(_q(n) for n in node_ids)
        nodes = wh.io.read(wh.graph.nodes_uri, "value", f"node_id IN ({quoted})")
        found |= {str(v) for v in nodes.column("value").to_pylist() if v}
    # The raw spellings ("+49 30 1234567", "Jane.Doe@Example.com") of the landed rows.
    for (system, obj), record_ids in by_object.items():
        spec = wh.config.object(system, obj)
        fields = tuple(
            r.source_field
            for r in spec.attributes
            if split_normaliser(r.normaliser)[0] in IDENTIFYING_NORMALISERS and r.rel_type in rel_types
        )
        uri = wh.bronze_uri(system, obj)
        if not fields or not record_ids or not wh.io.exists(uri):
            continue
        quoted = ", ".join(_q(r) for r in sorted(set(record_ids)))
        landed = parse_raw(wh.io.read(uri, "_raw", f"_record_id IN ({quoted})"), fields)
        for name in fields:
            found |= {str(v).strip() for v in landed.column(name).to_pylist() if v and str(v).strip()}
    return sorted({v.lower() for v in found if len(v) >= MIN_NEEDLE})


def _holding(text: pa.Array | pa.ChunkedArray, needles: list[str]) -> pa.Array | pa.ChunkedArray:
    """Which texts contain any needle (case-insensitive)."""
    lowered = pc.utf8_lower(pc.fill_null(pc.cast(text, pa.large_string()), ""))
    hit = pc.match_substring(lowered, needles[0])
    for needle in needles[1:]:
        hit = pc.or_(hit, pc.match_substring(lowered, needle))
    return hit


def _erase_by_value(wh: Warehouse, needles: list[str], meta: dict[str, str]) -> int:
    """Delete every bronze, quarantine and intake-spool row holding one of ``needles``.

    Bronze and quarantine are streamed (never whole in memory); the needles never
    appear in a query or a commit (rows are deleted by their keys). Returns the rows
    deleted.
    """
    if not needles:
        return 0
    removed = 0
    targets = [(uri, "_raw", ["_batch_id", "_row_number"]) for uri in _bronze_tables(wh)]
    targets.append((wh.quarantine_uri, "raw", ["source_system", "source_object", "batch_id", "row_number"]))
    for uri, text, key in targets:
        if not wh.io.exists(uri):
            continue
        cols = ", ".join([*key, text])
        hits = []
        for batch in wh.io.reader(uri, f"SELECT {cols} FROM t"):
            # DataFusion streams string views, which not every Arrow kernel takes.
            plain = pa.table(
                [
                    c.cast(pa.string()) if pa.types.is_string_view(c.type) else c
                    for c in batch.select(key).columns
                ],
                names=key,
            )
            mask = _holding(batch.column(text), needles)
            if pc.any(mask).as_py():
                hits.append(plain.filter(mask))
        if hits:
            keys = pa.concat_tables(hits)
            removed += delete_matching(wh.io, uri, keys, meta)
    if wh.local:
        removed += _erase_from_spool(wh.intake_root, needles)
    return removed


def _erase_from_spool(root: Path, needles: list[str]) -> int:
    """Drop the spooled intake lines holding a needle (files rewritten atomically)."""
    if not root.exists():
        return 0
    removed = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not (path.name.endswith(".jsonl") or path.name.endswith(".tmp")):
            continue
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)
        keep = [line for line in lines if not any(n in line.lower() for n in needles)]
        if len(keep) == len(lines):
            continue
        removed += len(lines) - len(keep)
        if not keep or path.name.endswith(".tmp"):
            # An unacknowledged leftover (.tmp) or a file with nothing else in it. A cut
            # batch's listing goes too: its pending files are still there (swept here as
            # well) and are cut again.
            path.unlink()
            if path.parent.name == "batches" and path.suffix == ".jsonl":
                path.with_suffix(".json").unlink(missing_ok=True)
            continue
        tmp = path.with_name(f".{path.name}.erase")
        tmp.write_bytes("".join(keep).encode("utf-8"))
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    return removed
