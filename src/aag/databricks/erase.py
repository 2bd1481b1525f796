"""GDPR erasure on Databricks: one customer's identity cluster out of the Unity Catalog tables.

The rule of what goes is :func:`aag.identity.erasure.plan_erasure`, read through
:class:`~aag.databricks.store.SparkTableGraphStore`, so it is the embedded erase's. Rows
are deleted by their keys: the keys are staged as a temp view and each table gets one
``MERGE ... WHEN MATCHED THEN DELETE`` (no value ever appears in SQL text). The change
data feed of a table is paused around its delete (it would otherwise keep the deleted
rows in ``_change_data`` files), and ``REORG TABLE ... APPLY (PURGE)`` rewrites the files
whose rows only deletion vectors hid. ``VACUUM`` must follow to delete the superseded
files. A one-way key per record goes to ``graph.erasures``, which
:func:`suppressed_events_sql` reads so the commit task drops a re-sent record.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from aag.config import Config, load_config
from aag.databricks.store import SparkTableGraphStore, create_table_sql, plain_catalog
from aag.engine.dialect import lit
from aag.identity import SAME_AS_REL
from aag.identity.erasure import (
    add_related,
    log_rows,
    needles_for,
    new_erasure,
    plan_erasure,
    records_by_object,
)
from aag.model import ERASURES
from aag.selection import EdgeSelection, NodeSelection
from aag.sources import extractor_for, objects_belonging_to
from aag.sources.base import SOURCE_RECORD_NODE, SOURCE_RECORD_REL

#: The erasure log (:data:`aag.model.ERASURES`) under the catalog.
ERASURES_TABLE = "graph.erasures"
#: The entity ids of every erased record (their events are dropped when a source re-sends
#: a record's field history without the record itself, which names no record key).
ERASED_ENTITIES_TABLE = "graph.erased_entities"
ERASED_ENTITIES = pa.schema([pa.field("erasure_id", pa.string()), pa.field("entity_id", pa.string())])
#: Temp view holding the keys of one delete.
KEYS_VIEW = "_aag_erase_keys"


def erasures_ddl(name: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the erasure log (Databricks SQL)."""
    return create_table_sql(
        name,
        ERASURES,
        True,
        ("source_system", "source_object"),
        "AAG erasure log: who erased which customer when, one one-way key per record, no values",
    )


def erased_entities_ddl(name: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the erased entity ids (Databricks SQL)."""
    return create_table_sql(
        name,
        ERASED_ENTITIES,
        True,
        ("entity_id",),
        "AAG erased record entities (ids only): a re-sent field history of one is dropped",
    )


def cluster_members(store: SparkTableGraphStore, customer: str) -> list[str]:
    """The record entities of ``customer``'s identity cluster, its survivor first."""
    merged = store.read_edges(
        EdgeSelection(sources=[customer], rel_types=[SAME_AS_REL], current=True), ["target_node_id"]
    )
    survivor = str(merged.column(0)[0].as_py()) if merged.num_rows else customer
    found = store.read_edges(
        EdgeSelection(targets=[survivor], rel_types=[SAME_AS_REL], current=True), ["source_node_id"]
    )
    return [survivor, *sorted({str(v) for v in found.column(0).to_pylist()} - {survivor})]


def _describe(spark: Any, table: str) -> tuple[str, dict[str, str]] | None:
    """The table's kind (``MANAGED``, ``MATERIALIZED_VIEW``, ...) and Delta properties; None if missing."""
    if not spark.catalog.tableExists(table):
        return None
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()
    kind = next((str(r[1]).strip() for r in rows if str(r[0]).strip() == "Type"), "")
    detail = spark.sql(f"DESCRIBE DETAIL {table}").collect()[0].asDict()
    if str(detail.get("format")) != "delta":
        return None
    return kind.upper(), {str(k): str(v) for k, v in (detail.get("properties") or {}).items()}


class _Eraser:
    """Deletes staged keys from Delta tables, then purges what deletion vectors hid."""

    def __init__(self, spark: Any, engine: Any) -> None:
        self.spark, self.engine = spark, engine
        self.touched: list[str] = []
        self.skipped: list[str] = []
        self.rows: dict[str, int] = {}

    def delete(self, table: str, keys: pa.Table) -> None:
        """Delete the rows of ``table`` matching a row of ``keys`` (columns by name)."""
        found = _describe(self.spark, table)
        if found is None or found[0] in ("MATERIALIZED_VIEW", "VIEW"):
            # A pipeline's materialized view takes no DML: its refresh recomputes it
            # from bronze, whose rows this task deleted.
            self.skipped.append(table)
            return
        if keys.num_rows == 0:
            return
        cdf = found[1].get("delta.enableChangeDataFeed") == "true"
        self.engine.register(KEYS_VIEW, keys)
        on = " AND ".join(f"t.{c} = s.{c}" for c in keys.column_names)
        try:
            if cdf:
                self._feed(table, False)
            before = self.spark.table(table).count()
            self.spark.sql(
                f"MERGE INTO {table} t USING (SELECT DISTINCT * FROM {KEYS_VIEW}) s ON {on} "  # noqa: S608 - names checked by plain_name; keys staged in a view
                "WHEN MATCHED THEN DELETE"
            )
            self.rows[table] = self.rows.get(table, 0) + before - self.spark.table(table).count()
        finally:
            if cdf:
                self._feed(table, True)
            self.engine.drop(KEYS_VIEW)
        if table not in self.touched:
            self.touched.append(table)

    def _feed(self, table: str, on: bool) -> None:
        value = "true" if on else "false"
        self.spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.enableChangeDataFeed' = '{value}')")

    def purge(self) -> list[str]:
        """``REORG TABLE ... APPLY (PURGE)`` on each touched table with deletion vectors."""
        purged = []
        for table in self.touched:
            found = _describe(self.spark, table)
            if found and found[1].get("delta.enableDeletionVectors") == "true":
                self.spark.sql(f"REORG TABLE {table} APPLY (PURGE)")
                purged.append(table)
        return purged


def _bronze_rows(spark: Any, config: Config, table: str, system: str, obj: str, ids: list[str]) -> pa.Table:
    """The bronze rows of these records, parsed as the pipeline does: their keys and fields.

    Columns ``_batch_id``, ``_row_number`` (the key to delete by) and one per field the
    object's extractor reads. The rows are parsed in every landing shape of the object
    (``api`` first): the erase does not know which one the pipeline was set to, and a
    shape whose columns a row lacks finds no record id in it.
    """
    from pyspark.sql import functions as F

    from aag.databricks.lakeflow.translate import (
        _overrides_prepare,
        _prepare_udf,
        landed_schema,
        landed_sql,
        spark_sql,
    )
    from aag.engine.spark import collect_arrow

    extractor = extractor_for(config.object(system, obj), config)
    shapes = list(config.landing_shapes_of(system, obj).values())
    df = spark.sql(
        " UNION ALL ".join(
            f"SELECT {rank} AS _aag_shape, * FROM ({landed_sql(table, extractor.fields, shape)})"  # noqa: S608 - the pipeline's landed SQL
            for rank, shape in enumerate(shapes)
        )
    )
    if _overrides_prepare(extractor):
        base = landed_schema(extractor, prepared=False).names
        udf = _prepare_udf(extractor, landed_schema(extractor))
        df = df.select("_aag_shape", udf(F.struct(*[F.col(f"`{c}`") for c in base])).alias("p")).select(
            "_aag_shape", "p.*"
        )
    df.createOrReplaceTempView("_aag_erase_landed")
    spark.createDataFrame([(i,) for i in ids], "record_id STRING").createOrReplaceTempView(KEYS_VIEW)
    try:
        canonical = (
            f"SELECT * FROM _aag_erase_landed "  # noqa: S608 - the extractor's SQL; ids staged in a view
            f"WHERE {extractor.record_id_sql()} IN (SELECT record_id FROM {KEYS_VIEW}) "
            "ORDER BY _aag_shape"
        )
        found = collect_arrow(spark.sql(spark_sql(canonical, {})))
        # A row two shapes both read (a connector that keeps the API's id column) counts once.
        keys = zip(
            found.column("_batch_id").to_pylist(), found.column("_row_number").to_pylist(), strict=True
        )
        first: dict[tuple[Any, Any], int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        found = found.take(pa.array(sorted(first.values()), pa.int64()))
        return found.select(["_batch_id", "_row_number", *extractor.fields])
    finally:
        spark.catalog.dropTempView("_aag_erase_landed")
        spark.catalog.dropTempView(KEYS_VIEW)


def _erase_by_value(spark: Any, eraser: _Eraser, catalog: str, needles: list[str]) -> None:
    """Delete every bronze and quarantine row whose raw text holds a needle (case-insensitive).

    The needles are staged as a view and joined, so they never appear in SQL text; the
    matching rows are then deleted by their keys.
    """
    from aag.databricks.job import EXTRACT_QUARANTINE_TABLE, QUARANTINE_TABLE
    from aag.engine.spark import collect_arrow

    if not needles:
        return
    quarantine_key = ["source_system", "source_object", "batch_id", "row_number"]
    targets = [
        (f"{catalog}.bronze.{r['tableName']}", "_raw", ["_batch_id", "_row_number"])
        for r in spark.sql(f"SHOW TABLES IN {catalog}.bronze").collect()
        if not r["isTemporary"] and f"{catalog}.bronze.{r['tableName']}" != f"{catalog}.{QUARANTINE_TABLE}"
    ]
    for quarantine in (QUARANTINE_TABLE, EXTRACT_QUARANTINE_TABLE):
        targets.append((f"{catalog}.{quarantine}", "raw", quarantine_key))
    staged = spark.createDataFrame([(n,) for n in needles], "needle STRING")
    staged.createOrReplaceTempView("_aag_erase_needles")
    try:
        for table, text, key in targets:
            if not spark.catalog.tableExists(table):
                continue
            cols = ", ".join(f"t.{c}" for c in key)
            hits = collect_arrow(
                spark.sql(
                    f"SELECT DISTINCT {cols} FROM {table} t JOIN _aag_erase_needles n "  # noqa: S608 - names checked by plain_name; needles staged in a view
                    f"ON instr(lower(t.{text}), n.needle) > 0"
                )
            )
            eraser.delete(table, hits)
    finally:
        spark.catalog.dropTempView("_aag_erase_needles")


def erase_cluster(
    spark: Any, catalog: str, customer: str, requested_by: str, config: Config | None = None
) -> dict[str, Any]:
    """Erase one customer's identity cluster from the catalog's tables (see the module doc).

    Args:
        spark: The Spark session.
        catalog: Unity Catalog catalog of the setup (one plain name).
        customer: Any record entity id of the customer (its cluster goes whole).
        requested_by: Who asked (logged, with the time and the survivor id).
        config: Registry (default: the packaged seeds).

    Returns:
        What was removed: rows per table, the tables purged and those left to the pipeline.

    Raises:
        LookupError: No entity node ``customer`` in the graph.
    """
    from aag.databricks.job import (
        EXTRACT_QUARANTINE_TABLE,
        FIELD_EVENTS_TABLE,
        NODE_CANDIDATES_TABLE,
        QUARANTINE_TABLE,
    )
    from aag.databricks.lakeflow.translate import key_of
    from aag.engine.spark import SparkEngine

    plain_catalog(catalog)
    config = config or load_config()
    engine = SparkEngine(spark)
    store = SparkTableGraphStore(engine, f"{catalog}.graph")
    if store.read_nodes(NodeSelection(ids=[customer]), ["node_id"]).num_rows == 0:
        raise LookupError(f"no customer {customer!r} in {catalog}.graph.nodes")
    members = cluster_members(store, customer)
    plan = plan_erasure(store, members)
    by_object = records_by_object(plan.records)

    def landed_of(system: str, obj: str, record_ids: list[str]) -> pa.Table | None:
        bronze = f"{catalog}.bronze.{key_of(system, obj)}"
        if not spark.catalog.tableExists(bronze):
            return None
        return _bronze_rows(spark, config, bronze, system, obj, record_ids)

    landed = add_related(config, by_object, landed_of)
    # Every record's bronze rows, and the field histories and change documents landed
    # under its id: read once, for the search values and the delete keys, before any goes.
    for (system, obj), record_ids in sorted(by_object.items()):
        for bronze_object in (obj, *(s.source_object for s in objects_belonging_to(config, system, obj))):
            if (system, bronze_object) not in landed:
                rows = landed_of(system, bronze_object, record_ids)
                if rows is not None:
                    landed[(system, bronze_object)] = rows
    # Rows that never became records (a malformed id, a quarantined row) are found by
    # the person's e-mail addresses and phone numbers, as in the embedded erase.
    needles = needles_for(config, store, plan, landed)
    eraser = _Eraser(spark, engine)
    sources = pa.table({"source_node_id": pa.array(members, pa.string())})
    eraser.delete(store.relationships_table, sources)
    eraser.delete(store.relationships_table, pa.table({"target_node_id": pa.array(members, pa.string())}))
    eraser.delete(store.edge_events_table, sources)
    eraser.delete(f"{catalog}.{FIELD_EVENTS_TABLE}", sources)
    drop = pa.table({"node_id": pa.array(plan.drop_nodes, pa.string())})
    eraser.delete(store.nodes_table, drop)
    eraser.delete(f"{catalog}.{NODE_CANDIDATES_TABLE}", drop)
    log: list[dict[str, Any]] = []
    erasure = new_erasure(requested_by, members[0])
    for (system, obj), record_ids in sorted(by_object.items()):
        quarantined = pa.table(
            {
                "source_system": pa.array([system] * len(record_ids), pa.string()),
                "record_id": pa.array(record_ids, pa.string()),
            }
        )
        eraser.delete(f"{catalog}.{QUARANTINE_TABLE}", quarantined)
        eraser.delete(f"{catalog}.{EXTRACT_QUARANTINE_TABLE}", quarantined)
        # Field histories and change documents of a record land under its id.
        owned = [s.source_object for s in objects_belonging_to(config, system, obj)]
        for bronze_object in (obj, *owned):
            rows = landed.get((system, bronze_object))
            if rows is not None:
                keys = rows.select(["_batch_id", "_row_number"])
                eraser.delete(f"{catalog}.bronze.{key_of(system, bronze_object)}", keys)
            log += log_rows(erasure, system, bronze_object, record_ids)
    _erase_by_value(spark, eraser, catalog, needles)
    purged = eraser.purge()
    # Logged last: a failure before this re-runs as a fresh erasure of what is left.
    entities = pa.table(
        {
            "erasure_id": pa.array([erasure["erasure_id"]] * len(members), pa.string()),
            "entity_id": pa.array(members, pa.string()),
        }
    )
    for table, ddl, rows in (
        (f"{catalog}.{ERASED_ENTITIES_TABLE}", erased_entities_ddl, entities),
        (f"{catalog}.{ERASURES_TABLE}", erasures_ddl, pa.Table.from_pylist(log, schema=ERASURES)),
    ):
        engine.execute_native(ddl(table))
        engine.register("_aag_erasure_rows", rows)
        try:
            columns = ", ".join(rows.schema.names)
            engine.execute_native(f"INSERT INTO {table} SELECT {columns} FROM _aag_erasure_rows")  # noqa: S608 - table checked by plain_name
        finally:
            engine.drop("_aag_erasure_rows")
    return {
        "erasure_id": erasure["erasure_id"],
        "customer_id": members[0],
        "members": len(members),
        "source_records": len(plan.records),
        "edges_removed": eraser.rows.get(store.relationships_table, 0),
        "nodes_removed": eraser.rows.get(store.nodes_table, 0),
        "rows_removed": eraser.rows,
        "purged": purged,
        "left_to_pipeline_update": eraser.skipped,
    }


def suppressed_events_sql(catalog: str, events: str, by_entity: bool = True) -> str:
    """Canonical SQL: the rows of ``events`` (a field events view) but those of erased records.

    A record's entity is found by its source-record event: the record node's value is
    ``SYSTEM:OBJECT:ID``, whose SHA-256 is the erasure log's ``record_key``. Every event of
    such an entity goes, in this batch or (for a history row of the record) in another.
    With ``by_entity`` (the catalog has :data:`ERASED_ENTITIES_TABLE`), so do the events
    of an entity erased before: a field history re-sent alone names no record key.
    """
    from aag.databricks.job import FIELD_EVENTS_TABLE, NODE_CANDIDATES_TABLE

    erased = (
        f"SELECT e.source_node_id FROM (SELECT source_node_id, rel_type, target_node_id FROM {events} "  # noqa: S608 - catalog checked by plain_name; constants via lit
        f"UNION ALL SELECT source_node_id, rel_type, target_node_id FROM {catalog}.{FIELD_EVENTS_TABLE}) e "
        f"JOIN {catalog}.{NODE_CANDIDATES_TABLE} n ON n.node_id = e.target_node_id "
        f"WHERE e.rel_type = {lit(SOURCE_RECORD_REL)} AND n.node_type = {lit(SOURCE_RECORD_NODE)} "
        f"AND sha256(n.value) IN (SELECT record_key FROM {catalog}.{ERASURES_TABLE})"
    )
    if by_entity:
        erased += f" UNION SELECT entity_id FROM {catalog}.{ERASED_ENTITIES_TABLE}"  # noqa: S608 - catalog checked by plain_name
    return f"SELECT * FROM {events} WHERE source_node_id NOT IN ({erased})"  # noqa: S608 - names checked by plain_name
