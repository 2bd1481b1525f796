"""The graph in Spark catalog tables: the Databricks commit path.

:class:`SparkTableGraphStore` keeps ``nodes``, ``relationships`` and ``edge_events``
as tables of the Spark session's catalog (Unity Catalog on Databricks, e.g.
``aag.graph.relationships``). Scans are SQL the engine runs in place
(:class:`~aag.engine.base.SqlScan`), and a commit is a handful of SQL statements
generated from the planned change, so no row leaves the cluster:

* ``nodes`` and ``edge_events`` only ever grow: one ``INSERT INTO ... SELECT`` each;
* ``relationships``: one Delta ``MERGE INTO ... USING`` whose source carries a delete
  marker per replaced key plus the key's new rows (the same shape as
  :meth:`aag.graph.delta.DeltaIO.replace_keys`), or a plain ``INSERT`` when the batch only
  adds keys new to the graph.

Which statements a commit uses follows the engine's capabilities, never its name:
with :attr:`~aag.engine.base.Capability.MERGE` (Databricks, or Spark with Delta Lake)
the MERGE above; without it (``pyspark`` without Delta Lake's jars) the same rows
are written by rebuilding the table (``CREATE TABLE ... AS`` the kept rows plus the
new ones, then a rename). That fallback is O(table) and not atomic: it exists so the
store works on plain Spark. The tests run both: local Spark with Delta Lake's jars
(``make`` fetches them) runs the MERGE on real Delta tables, and an engine with
``merge=False`` runs the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from aag.engine.base import CANONICAL_DIALECT, Capability, Engine, SqlScan
from aag.engine.dialect import in_list, lit, to_dialect
from aag.graph.ledger import BatchLog, LedgerEntry, ledger_table
from aag.graph.store import ChangeSql, CommitStats, GraphChange, GraphStore, Scan
from aag.model import EDGE_EVENTS, EDGE_KEY, LEDGER, NODES, RELATIONSHIPS
from aag.selection import EdgeSelection, NodeSelection, columns_sql, render

#: The edge key K (SPEC §3): a MERGE matches stored rows on it.
KEY_COLUMNS = tuple(EDGE_KEY.names)

#: Liquid clustering keys. Every read and write of a batch is keyed by the entities it
#: touches (``source_node_id``): the scans of :func:`aag.pipeline.plan_change`, the MERGE
#: on K, profile look-ups. Clustering on it lets Delta skip every file that holds none of
#: a batch's entities, and keeps one entity's rows together for the MERGE rewrite (with
#: deletion vectors, only the touched rows are marked deleted). ``rel_type`` and
#: ``source_system`` add nothing: an entity's ~10 rows sit in one file anyway. Nodes are
#: looked up by type (new-node anti-join per touched type) and id.
CLUSTER_BY: dict[str, tuple[str, ...]] = {
    "nodes": ("node_type", "node_id"),
    "relationships": ("source_node_id",),
    "edge_events": ("source_node_id",),
}

#: Table properties of the graph tables on Databricks: change data feed (downstream
#: consumers and dbt read changes, SPEC §2), deletion vectors (a MERGE marks rows
#: instead of rewriting files) and automatic compaction of small batch files.
DELTA_PROPERTIES = {
    "delta.enableChangeDataFeed": "true",
    "delta.enableDeletionVectors": "true",
    "delta.autoOptimize.optimizeWrite": "true",
    "delta.autoOptimize.autoCompact": "true",
}

GRAPH_SCHEMAS: dict[str, pa.Schema] = {
    "nodes": NODES,
    "relationships": RELATIONSHIPS,
    "edge_events": EDGE_EVENTS,
}


#: A table name or prefix the store splices into SQL unquoted: up to three plain
#: identifiers (``catalog.schema.table``).
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,2}")


def plain_catalog(catalog: str) -> str:
    """``catalog`` if it is one plain identifier (it is spliced into the tasks' SQL).

    Raises:
        ValueError: It is a dotted path or has other characters.
    """
    if "." in catalog:
        raise ValueError(f"catalog {catalog!r} must be one name, not a dotted path")
    return plain_name(catalog)


def plain_name(name: str) -> str:
    """``name`` if it is up to three dot-separated plain identifiers (letters, digits, ``_``).

    Catalog, schema and table names reach the store's SQL (canonical and native) unquoted,
    and the rebuild fallback splits them on dots; anything else is refused here.

    Raises:
        ValueError: The name has other characters or more parts.
    """
    if not _PLAIN_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain [catalog.]schema[.table] name (letters, digits, _)")
    return name


def spark_type(t: pa.DataType) -> str:
    """The Spark SQL type of an Arrow type used by AAG's tables."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_map(t):
        return f"MAP<{spark_type(t.key_type)}, {spark_type(t.item_type)}>"
    raise TypeError(f"no Spark type for {t}")


def columns_ddl(schema: pa.Schema) -> str:
    """``name TYPE, ...`` of a table schema."""
    return ",\n  ".join(f"{f.name} {spark_type(f.type)}" for f in schema)


def create_table_sql(
    name: str,
    schema: pa.Schema,
    delta: bool,
    cluster_by: tuple[str, ...] = (),
    comment: str = "",
    properties: dict[str, str] | None = None,
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a Delta table (Databricks) or a Parquet one (local)."""
    text = f"CREATE TABLE IF NOT EXISTS {name} (\n  {columns_ddl(schema)}\n)"
    if not delta:
        return text + "\nUSING PARQUET"
    text += "\nUSING DELTA"
    if cluster_by:
        text += f"\nCLUSTER BY ({', '.join(cluster_by)})"
    if comment:
        text += f"\nCOMMENT {lit(comment, 'databricks')}"
    props = {**DELTA_PROPERTIES, **(properties or {})}
    pairs = (f"{lit(k, 'databricks')} = {lit(v, 'databricks')}" for k, v in props.items())
    text += "\nTBLPROPERTIES (\n  " + ",\n  ".join(pairs) + "\n)"
    return text


GRAPH_COMMENTS = {
    "nodes": "AAG graph nodes (SPEC 2): content-addressed value nodes and entity nodes",
    "relationships": "AAG graph edges (SPEC 2): one row per version of an edge, field-level updated_at",
    "edge_events": "AAG absorbed field events: the events no version row shows (aag.rules)",
}


def graph_ddl(prefix: str, delta: bool = True) -> list[str]:
    """DDL of the three graph tables under ``prefix`` (``catalog.schema`` or ``schema``)."""
    return [
        create_table_sql(
            f"{prefix}.{name}",
            schema,
            delta,
            CLUSTER_BY[name],
            GRAPH_COMMENTS[name],
        )
        for name, schema in GRAPH_SCHEMAS.items()
    ]


def _cols(schema: pa.Schema, alias: str = "") -> str:
    return ", ".join(f"{alias}{c}" for c in schema.names)


def _null_of(field: pa.Field) -> str:
    canonical = {
        "STRING": "VARCHAR",
        "TIMESTAMP": "TIMESTAMPTZ",
        "MAP<STRING, STRING>": "MAP(VARCHAR, VARCHAR)",
    }
    kind = spark_type(field.type)
    return f"CAST(NULL AS {canonical.get(kind, kind)})"


#: Temp views a MERGE reads its rows and keys from (see :meth:`SparkTableGraphStore.commit`).
MERGE_ROWS_VIEW = "_aag_merge_rows"
MERGE_KEYS_VIEW = "_aag_merge_keys"


def merge_staging(change: ChangeSql) -> dict[str, str]:
    """The views a MERGE reads, as canonical SQL to materialise before it runs.

    Staging them keeps the MERGE's source a union of two materialised rows sets: with the
    plan's nested unions inside the MERGE, Spark 4.2's optimizer fails while inferring
    filter constraints (``PruneFilters``, "key not found" on a union's attribute).
    """
    return {
        MERGE_ROWS_VIEW: f"SELECT {_cols(RELATIONSHIPS)} FROM ({change.edge_rows}) r",  # noqa: S608 - the planner's own SQL and module-constant columns
        MERGE_KEYS_VIEW: f"SELECT DISTINCT {', '.join(KEY_COLUMNS)} FROM ({change.replace_keys}) k0",  # noqa: S608 - the planner's own SQL and module-constant columns
    }


def merge_source_sql(change: ChangeSql, staged: bool = False) -> str:
    """Canonical SQL of the MERGE source: the new rows, then one delete marker per key.

    ``staged`` reads the views of :func:`merge_staging` instead of the change's queries.
    """
    staging = merge_staging(change)
    rows, keys = (
        (MERGE_ROWS_VIEW, MERGE_KEYS_VIEW)
        if staged
        else (f"({staging[MERGE_ROWS_VIEW]})", f"({staging[MERGE_KEYS_VIEW]})")
    )
    key_set = set(KEY_COLUMNS)
    markers = ", ".join(
        c if c in key_set else f"{_null_of(RELATIONSHIPS.field(c))} AS {c}" for c in RELATIONSHIPS.names
    )
    return (
        f"SELECT {_cols(RELATIONSHIPS)}, 'insert' AS _aag_op FROM {rows} r\n"  # noqa: S608 - the planner's own SQL and module-constant columns
        f"UNION ALL\n"
        f"SELECT {markers}, 'delete' AS _aag_op FROM {keys} k"
    )


def merge_relationships_sql(
    table: str, change: ChangeSql, dialect: str = "databricks", staged: bool = False
) -> str:
    """The one MERGE that replaces the rows of every listed key and inserts the new rows.

    Delete markers match (and delete) every stored row of their key; new rows never
    match and are inserted. Several stored rows may match one marker, which Delta allows
    because the only matched action is an unconditional DELETE. ``staged``: the source
    reads the views of :func:`merge_staging` (as :meth:`SparkTableGraphStore.commit` runs it).
    """
    on = " AND ".join(f"t.{c} = s.{c}" for c in KEY_COLUMNS)
    canonical = (
        f"MERGE INTO {table} AS t\nUSING ({merge_source_sql(change, staged)}) AS s\n"  # noqa: S608 - table checked by plain_name; source is the planner's SQL
        f"ON {on} AND s._aag_op = 'delete'\n"
        "WHEN MATCHED THEN DELETE\n"
        f"WHEN NOT MATCHED AND s._aag_op = 'insert' THEN INSERT ({_cols(RELATIONSHIPS)}) "
        f"VALUES ({_cols(RELATIONSHIPS, 's.')})"
    )
    return canonical if dialect == CANONICAL_DIALECT else to_dialect(canonical, dialect, pretty=True)


def insert_sql(table: str, schema: pa.Schema, source_sql: str, dialect: str = CANONICAL_DIALECT) -> str:
    """``INSERT INTO table`` the rows of canonical ``source_sql`` (columns by name)."""
    canonical = f"INSERT INTO {table} SELECT {_cols(schema)} FROM ({source_sql}) src"  # noqa: S608 - table checked by plain_name; source is the planner's SQL
    return canonical if dialect == CANONICAL_DIALECT else to_dialect(canonical, dialect, pretty=True)


@dataclass(frozen=True)
class Statement:
    """One statement a store runs: canonical SQL, or (``native``) the engine's own dialect.

    Native statements are the ones with no canonical form (Delta and Parquet DDL); they
    run with :meth:`~aag.engine.base.Engine.execute_native`, the rest with
    :meth:`~aag.engine.base.Engine.execute`.
    """

    sql: str
    native: bool = False

    def run(self, engine: Engine) -> None:
        """Run the statement on ``engine`` through the method its dialect asks for."""
        if self.native:
            engine.execute_native(self.sql)
        else:
            engine.execute(self.sql)


class SparkTableGraphStore(GraphStore):
    """The graph as tables of the engine's catalog (Delta in Unity Catalog on Databricks).

    Args:
        engine: An engine with :attr:`~aag.engine.base.Capability.CATALOG_TABLES` (Spark).
        prefix: ``catalog.schema`` (or ``schema``) holding the tables, e.g. ``aag.graph``.
    """

    def __init__(self, engine: Engine, prefix: str = "graph") -> None:
        if Capability.CATALOG_TABLES not in engine.capabilities:
            raise TypeError(f"the {engine.name} engine has no catalog tables; use DeltaGraphStore")
        self.engine = engine
        self.prefix = plain_name(prefix)
        #: Whether commits use MERGE (else the local rebuild fallback).
        self.merge = Capability.MERGE in engine.capabilities
        self.nodes_table = f"{prefix}.nodes"
        self.relationships_table = f"{prefix}.relationships"
        self.edge_events_table = f"{prefix}.edge_events"

    def create(self) -> list[str]:
        """Create the schema and the three tables if missing (Delta with MERGE, else Parquet)."""
        self.engine.execute(f"CREATE SCHEMA IF NOT EXISTS {self.prefix}")
        # USING DELTA / CLUSTER BY / TBLPROPERTIES have no canonical (DuckDB) form.
        for ddl in graph_ddl(self.prefix, delta=self.merge):
            self.engine.execute_native(ddl)
        return [self.nodes_table, self.relationships_table, self.edge_events_table]

    # -- scans: SQL the engine runs in place ----------------------------------------------
    def scan_relationships(self, entities: pa.Table) -> Scan:  # noqa: D102
        # The engine semi-joins the batch's entities right after (plan_change); with the
        # table clustered by source_node_id that join prunes files.
        return SqlScan(f"SELECT * FROM {self.relationships_table}")  # noqa: S608 - table names checked by plain_name; values via in_list

    def scan_edge_events(self, entities: pa.Table) -> Scan:  # noqa: D102
        return SqlScan(f"SELECT * FROM {self.edge_events_table}")  # noqa: S608 - table names checked by plain_name; values via in_list

    def scan_node_ids(self, node_types: list[str], ids: pa.Table | None = None) -> Scan:  # noqa: D102
        return SqlScan(f"SELECT node_id FROM {self.nodes_table} WHERE node_type IN ({in_list(node_types)})")  # noqa: S608 - table names checked by plain_name; values via in_list

    def scan_edge_versions(self, column: str, ids: pa.Table, rel_types: list[str]) -> Scan:  # noqa: D102
        if column not in ("source_node_id", "target_node_id"):
            raise ValueError(f"cannot scan relationships by {column}")
        quoted = in_list(rel_types)
        return SqlScan(f"SELECT * FROM {self.relationships_table} WHERE rel_type IN ({quoted})")  # noqa: S608 - table names checked by plain_name; values via in_list

    # -- commit -------------------------------------------------------------------------
    def commit_statements(self, change: GraphChange) -> list[Statement]:
        """The statements that write one batch's change, in order.

        INSERTs and the MERGE are canonical; the rebuild fallback's ``CREATE TABLE ...
        USING PARQUET AS`` and qualified rename are Spark's own (``native``). A MERGE reads
        the views of :func:`merge_staging`, which :meth:`commit` materialises.
        """
        sql, counts = change.sql, change.counts
        out: list[Statement] = []
        if not (change.replace_keys.num_rows or any(counts.values())):
            return out  # a batch without field events
        if sql is None:
            raise ValueError("SparkTableGraphStore commits changes planned in its own engine (no SQL given)")
        # Nodes and the log only grow and are de-duplicated on read: written first, so a
        # re-run after a crash converges (as in DeltaGraphStore).
        if counts.get("nodes"):
            out.append(Statement(insert_sql(self.nodes_table, NODES, sql.nodes)))
        if counts.get("log"):
            out.append(Statement(insert_sql(self.edge_events_table, EDGE_EVENTS, sql.log_append)))
        if change.replace_keys.num_rows == 0:
            if counts.get("edges"):
                out.append(Statement(insert_sql(self.relationships_table, RELATIONSHIPS, sql.edge_rows)))
        elif self.merge:
            merge = merge_relationships_sql(self.relationships_table, sql, CANONICAL_DIALECT, staged=True)
            out.append(Statement(merge))
        else:
            out += self._rebuild_statements(sql, self.engine.dialect)
        return out

    def _rebuild_statements(self, sql: ChangeSql, dialect: str) -> list[Statement]:
        """Without MERGE: the same rows by rebuilding the table (local fallback, O(table))."""
        table = self.relationships_table
        rebuilt = f"{table}__aag_next"
        match = " AND ".join(f"k.{c} = t.{c}" for c in KEY_COLUMNS)
        kept = (
            f"SELECT {_cols(RELATIONSHIPS, 't.')} FROM {table} t WHERE NOT EXISTS "  # noqa: S608 - table names checked by plain_name; values via in_list
            f"(SELECT 1 FROM ({sql.replace_keys}) k WHERE {match})"
        )
        rows = f"SELECT {_cols(RELATIONSHIPS)} FROM ({sql.edge_rows}) r"  # noqa: S608 - table names checked by plain_name; values via in_list
        return [
            Statement(f"DROP TABLE IF EXISTS {rebuilt}"),
            Statement(
                f"CREATE TABLE {rebuilt} USING PARQUET AS\n"
                + to_dialect(f"{kept}\nUNION ALL\n{rows}", dialect, pretty=True),
                native=True,
            ),
            Statement(f"DROP TABLE {table}"),
            # The new name is schema.table: the session catalog takes no catalog part here
            # (Spark's rename, which DuckDB's ALTER TABLE does not write).
            Statement(f"ALTER TABLE {rebuilt} RENAME TO {'.'.join(table.split('.')[-2:])}", native=True),
        ]

    def commit(self, change: GraphChange) -> CommitStats:
        """Run :meth:`commit_statements`; a MERGE's staged views are materialised first."""
        staging = (
            merge_staging(change.sql)
            if self.merge and change.sql is not None and change.replace_keys.num_rows
            else {}
        )
        for name, sql in staging.items():
            self.engine.materialize(name, sql)
        try:
            for statement in self.commit_statements(change):
                statement.run(self.engine)
        finally:
            for name in staging:
                self.engine.drop(name)
        counts = change.counts
        return CommitStats(
            nodes_written=counts.get("nodes", 0),
            edge_rows_written=counts.get("edges", 0),
            log_rows_written=counts.get("log", 0),
        )

    # -- reads --------------------------------------------------------------------------
    def read_edges(self, selection: EdgeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return self._read(self.relationships_table, selection.condition(), columns, RELATIONSHIPS)

    def read_nodes(self, selection: NodeSelection, columns: Sequence[str] | None = None) -> pa.Table:  # noqa: D102
        return self._read(self.nodes_table, selection.condition(), columns, NODES)

    def _read(
        self, table: str, condition: exp.Expr, columns: Sequence[str] | None, schema: pa.Schema
    ) -> pa.Table:
        select = columns_sql(columns, CANONICAL_DIALECT)
        where = render(condition, CANONICAL_DIALECT)
        found = self.engine.query(f"SELECT {select} FROM {table} WHERE {where}")  # noqa: S608 - filter and columns rendered by sqlglot; table checked by plain_name
        return found.cast(pa.schema([schema.field(name) for name in found.column_names]))

    # -- whole tables -------------------------------------------------------------------
    def nodes(self) -> pa.Table:  # noqa: D102
        return self.engine.query(f"SELECT * FROM {self.nodes_table}").cast(NODES)  # noqa: S608 - table names checked by plain_name; values via in_list

    def relationships(self) -> pa.Table:  # noqa: D102
        return self.engine.query(f"SELECT * FROM {self.relationships_table}").cast(RELATIONSHIPS)  # noqa: S608 - table names checked by plain_name; values via in_list

    def edge_events(self) -> pa.Table:  # noqa: D102
        return self.engine.query(f"SELECT * FROM {self.edge_events_table}").cast(EDGE_EVENTS)  # noqa: S608 - table names checked by plain_name; values via in_list


class SparkTableBatchLog(BatchLog):
    """The batches ledger as a table of the engine's catalog (``<catalog>.graph.batches``).

    Args:
        engine: The Spark engine.
        table: The ledger table (:data:`aag.model.LEDGER`), created by the setup SQL.
    """

    #: Engine view the new ledger rows are inserted from.
    STAGED = "aag_ledger_rows"

    def __init__(self, engine: Engine, table: str) -> None:
        self.engine = engine
        self.table = plain_name(table)

    def committed_batches(self, batch_ids: list[str]) -> set[str]:  # noqa: D102
        if not batch_ids:
            return set()
        query = (
            exp.select("batch_id")
            .from_(self.table)
            .where(exp.column("status").eq(exp.Literal.string("committed")))
            .where(exp.column("batch_id").isin(*(exp.Literal.string(b) for b in batch_ids)))
        )
        found = self.engine.query(query.sql(CANONICAL_DIALECT))
        return {str(v) for v in found.column("batch_id").to_pylist()}

    def record_batches(self, entries: Sequence[LedgerEntry]) -> None:  # noqa: D102
        self.engine.register(self.STAGED, ledger_table(entries))
        try:
            self.engine.execute(f"INSERT INTO {self.table} SELECT {_cols(LEDGER)} FROM {self.STAGED}")  # noqa: S608 - table names checked by plain_name; values via in_list
        finally:
            self.engine.drop(self.STAGED)
