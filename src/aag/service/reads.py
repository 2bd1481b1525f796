"""The graph's read side: customers, records, look-ups and whole-graph views.

:class:`GraphReads` answers every read command that does not explain a value (that is
:mod:`aag.service.lineage`). It reads through a :class:`~aag.graph.store.GraphStore`, so the same
commands work on the Delta tables, on Spark catalog tables and in memory, and it
computes on the session's engine.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from aag.config import Config
from aag.engine.base import Engine
from aag.errors import InputError, NotFoundError
from aag.graph.delta import now_utc
from aag.graph.store import GraphStore
from aag.graph.warehouse import Warehouse
from aag.identity import SAME_AS_REL
from aag.ids import value_node_id
from aag.normalize import InvalidValueError, normalise
from aag.resolution import profiles
from aag.selection import EdgeSelection, NodeSelection
from aag.service.monitoring import MonitorReport, checks_sql
from aag.sources.base import SOURCE_RECORD_NODE, SOURCE_RECORD_REL


class GraphReads:
    """Read commands over one graph store.

    Args:
        warehouse: The warehouse (config, bronze, ledger and quarantine).
        graph: Where the graph is read.
        engine: Returns the session's engine (created on first use).
    """

    def __init__(self, warehouse: Warehouse, graph: GraphStore, engine: Callable[[], Engine]) -> None:
        self.warehouse = warehouse
        self.graph = graph
        self.engine = engine

    def edges_of(self, *entity_ids: str) -> pa.Table:
        """Every version of every edge of these entities."""
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

    def nodes_by_id(self, ids: list[str]) -> pa.Table:
        """The node rows with these ids."""
        return self.graph.read_nodes(NodeSelection(ids=ids))

    def customer_exists(self, customer_id: str) -> bool:
        """Whether an entity node with this id exists."""
        found = self.nodes_by_id([customer_id])
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

    def customer_edges(self, customer_id: str) -> tuple[str, pa.Table, pa.Table]:
        """Survivor id, the edges of all the customer's records, and the nodes they reach."""
        self.warehouse.require()
        if not self.customer_exists(customer_id):
            raise NotFoundError(f"no customer {customer_id!r} in the graph")
        members = self.members(customer_id)
        edges = self.edges_of(*members)
        nodes = self.nodes_by_id(edges.column("target_node_id").to_pylist())
        return members[0], edges, nodes

    def records_of(self, customer_id: str) -> list[str]:
        """``SOURCE:OBJECT:ID`` of every record of a customer."""
        members = self.members(customer_id)
        edges = self.edges_of(*members).to_pylist()
        targets = [
            str(e["target_node_id"]) for e in edges if e["rel_type"] == SOURCE_RECORD_REL and e["is_current"]
        ]
        nodes = self.nodes_by_id(targets)
        return sorted(str(v) for v in nodes.column("value").to_pylist())

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
            self.engine(),
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
        engine = self.engine()
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
        engine = self.engine()
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
"""  # noqa: S608 - module constants only
            )
        finally:
            for name in ("im_edges", "im_records", "im_customers"):
                engine.drop(name)


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
            "SELECT node_id FROM cp_nodes WHERE node_type = 'customer' AND node_id NOT IN "  # noqa: S608 - module constants only
            f"(SELECT source_node_id FROM cp_edges WHERE rel_type = '{SAME_AS_REL}' AND is_current) "
            "AND node_id NOT IN (SELECT source_node_id FROM cp_edges "
            f"WHERE rel_type = '{SOURCE_RECORD_REL}' GROUP BY source_node_id HAVING NOT bool_or(is_current))"
        )
        values = engine.query("SELECT node_id, value FROM cp_nodes WHERE value IS NOT NULL")
    finally:
        engine.drop("cp_edges")
        engine.drop("cp_nodes")
    return profiles(engine, edges, values, survivors, config, version)
