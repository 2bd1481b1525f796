"""dbt-duckdb plugin: the silver Delta tables as DuckDB views (the ``local`` dbt target).

dbt-duckdb's built-in ``delta`` plugin hands DuckDB a pyarrow dataset, and pyarrow cannot
filter the files delta-rs writes (their strings are ``string_view``; ``rel_type = 'X'``
fails with "no kernel matching input types (string, string_view)"). This plugin lets
deltalake resolve the snapshot (which Parquet files make up the table at a version,
and each file's partition values) and DuckDB's own Parquet reader scan those files.

Each table becomes a **persistent** view ``<schema>.<table>`` in the dbt DuckDB file,
created when dbt opens its connection, so every model and test of a run reads the same
snapshot, and the file stays usable without dbt (the views name the Parquet files
directly). Rows a Delta deletion vector marks deleted (tables Databricks or Delta-Spark
wrote with ``delta.enableDeletionVectors``) are dropped by position: deltalake gives each
such file's keep mask, the deleted positions go into a table ``<schema>."<table>__deleted_rows"``
beside the view, and the view anti-joins them on DuckDB's ``filename`` and
``file_row_number``. Configured in ``dbt/profiles.yml``::

    plugins:
      - module: aag.dbt_plugin
        config:
          silver: <warehouse>/silver        # folder holding the Delta tables
          schema: silver                    # DuckDB schema of the views (default silver)
          tables: nodes,relationships       # default; name=path for a table elsewhere
          versions: "nodes=3,relationships=7"   # optional: pin Delta versions

``$AAG_SILVER_VERSIONS`` (same form) overrides ``versions``: ``aag build`` pins the
snapshot it records that way, outside dbt's own configuration, so a new snapshot does
not make dbt re-parse the project.

The plugin also writes the table ``<schema>.relationship_changes``: the rows of
``relationships`` that changed since an earlier Delta version, read from the table's change
data feed (every inserted and deleted row, ``change_type`` ``insert`` or ``delete``), which
the gold models' incremental runs re-resolve. ``$AAG_SILVER_CHANGES_SINCE`` names that
earlier version (the one the last build read); ``prepared`` means ``aag build`` has
already written the table into the database; unset, the table holds one row with
``change_type = 'unknown'`` and a NULL id, which makes incremental models recompute
everything (the right answer when nothing says what changed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from dbt.adapters.duckdb.plugins import BasePlugin

from aag.engine.dialect import ident as _ident
from aag.engine.dialect import lit as _q
from aag.graph.delta import join
from aag.graph.files import change_feed, snapshot_files

#: The Delta version of ``relationships`` the last build read (the plugin reads the change
#: data feed after it), or ``prepared`` when the change table is already in the database.
CHANGES_ENV = "AAG_SILVER_CHANGES_SINCE"
CHANGES_PREPARED = "prepared"
#: Pinned silver Delta versions for a dbt run (``nodes=3,relationships=7``), read here
#: outside dbt's configuration, so a new snapshot does not make dbt re-parse the project.
VERSIONS_ENV = "AAG_SILVER_VERSIONS"

DEFAULT_TABLES = ("nodes", "relationships")
CHANGES_TABLE = "relationship_changes"
#: Columns of the change table: what the incremental models need to find the entities
#: (and the customers, companies and survivors) a change touched.
CHANGE_COLUMNS = ("source_node_id", "target_node_id", "rel_type")
CHANGES_SCHEMA = pa.schema(
    [
        *(pa.field(name, pa.string()) for name in CHANGE_COLUMNS),
        pa.field("change_type", pa.string()),
        pa.field("commit_version", pa.int64()),
    ]
)
#: Reader features a Parquet file list cannot honour (deletion vectors it can, see above).
UNSUPPORTED_FEATURES = ("columnMapping",)
#: Suffix of the table holding a view's deleted row positions (``path``, ``row``).
DELETED_SUFFIX = "__deleted_rows"


def parse_versions(text: Any) -> dict[str, int]:
    """``"nodes=3,relationships=7"`` (or a mapping) → ``{"nodes": 3, "relationships": 7}``."""
    if isinstance(text, Mapping):
        return {str(k): int(v) for k, v in text.items() if v not in (None, "", "None")}
    out: dict[str, int] = {}
    for part in str(text or "").split(","):
        if "=" in part:
            name, _, value = part.partition("=")
            if value.strip() not in ("", "None"):
                out[name.strip()] = int(value)
    return out


def duckdb_types(schema: pa.Schema) -> dict[str, str]:
    """DuckDB type names of an Arrow schema's columns (as DuckDB reads them)."""
    con = duckdb.connect()
    try:
        con.register("empty_schema", schema.empty_table())
        rows = con.sql("DESCRIBE SELECT * FROM empty_schema").fetchall()
    finally:
        con.close()
    return {str(r[0]): str(r[1]) for r in rows}


def snapshot_sql(
    uri: str, version: int | None = None, deleted_table: str | None = None
) -> tuple[str, int, pa.Table]:
    """A SELECT over one Delta table's snapshot through DuckDB's Parquet reader.

    Args:
        uri: Local path of the Delta table.
        version: Delta version to read; the latest if ``None``.
        deleted_table: Name the SQL gives the table of deleted row positions (which the
            caller creates from the third result) when the snapshot has deletion vectors.

    Returns:
        The SQL, the version it reads, and the deleted row positions (``path``, ``row``).
    """
    snap = snapshot_files(uri, version, refuse=UNSUPPORTED_FEATURES)
    schema, partition_cols, deleted = snap.schema, snap.partition_columns, snap.deleted
    types = duckdb_types(schema)
    if deleted.num_rows and not deleted_table:
        raise RuntimeError(f"{uri}: the snapshot has deletion vectors and no table to hold them")
    with_dv = set(deleted.column("path").unique().to_pylist())
    by_part: dict[tuple[Any, ...], list[str]] = {}
    for part, path in zip(snap.partitions, snap.files, strict=True):
        key = tuple(part[c] for c in partition_cols)
        by_part.setdefault((*key, path in with_dv), []).append(path)
    if not by_part:
        nulls = ", ".join(f"CAST(NULL AS {types[n]}) AS {_ident(n)}" for n in schema.names)
        return f"SELECT {nulls} WHERE false", snap.version, deleted
    parts = []
    for key, paths in sorted(by_part.items(), key=lambda kv: [str(v) for v in kv[0]]):
        *part_values, has_dv = key
        values = dict(zip(partition_cols, part_values, strict=True))
        cols = []
        for name in schema.names:
            if name in values:
                literal = "NULL" if values[name] is None else _q(str(values[name]))
                cols.append(f"CAST({literal} AS {types[name]}) AS {_ident(name)}")
            else:
                cols.append(f"CAST(p.{_ident(name)} AS {types[name]}) AS {_ident(name)}")
        listed = ", ".join(_q(p) for p in sorted(paths))
        if has_dv:
            # NOT EXISTS on (file, position): a hash anti-join, rows of other files untouched.
            parts.append(
                f"SELECT {', '.join(cols)} FROM read_parquet([{listed}], union_by_name = true, "  # noqa: S608 - paths and names via dialect.lit/ident; types from the Delta schema
                "filename = true, file_row_number = true) p WHERE NOT EXISTS (SELECT 1 FROM "
                f"{deleted_table} d WHERE d.path = p.filename AND d.row = p.file_row_number)"
            )
        else:
            parts.append(f"SELECT {', '.join(cols)} FROM read_parquet([{listed}], union_by_name = true) p")  # noqa: S608 - paths and names via dialect.lit/ident; types from the Delta schema
    return "\nUNION ALL\n".join(parts), snap.version, deleted


def attach_silver(
    con: duckdb.DuckDBPyConnection,
    silver: str,
    schema: str = "silver",
    tables: tuple[str, ...] = DEFAULT_TABLES,
    versions: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Create (or replace) one view per Delta table under ``silver``; returns the versions read."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
    read: dict[str, int] = {}
    for entry in tables:
        # ``name=relative/path`` names a table kept elsewhere under the folder (the ledger).
        name, _, path = entry.partition("=")
        deleted_name = f"{_ident(schema)}.{_ident(name + DELETED_SUFFIX)}"
        sql, version, deleted = snapshot_sql(
            join(silver, path or name), (versions or {}).get(name), deleted_name
        )
        if deleted.num_rows:
            con.register("aag_deleted_arrow", deleted)
            try:
                con.execute(f"CREATE OR REPLACE TABLE {deleted_name} AS SELECT * FROM aag_deleted_arrow")  # noqa: S608 - paths and names via dialect.lit/ident; types from the Delta schema
            finally:
                con.unregister("aag_deleted_arrow")
        else:
            con.execute(f"DROP TABLE IF EXISTS {deleted_name}")
        con.execute(f"CREATE OR REPLACE VIEW {_ident(schema)}.{_ident(name)} AS {sql}")
        read[name] = version
    return read


def read_changes(uri: str, since: int, until: int) -> pa.Table:
    """Rows of ``relationships`` inserted or deleted after version ``since`` up to ``until``.

    Reads the Delta change data feed (delta-rs writes it for appends and merges once
    ``delta.enableChangeDataFeed`` is on; compaction commits carry no data change and are
    skipped). A MERGE that replaces an edge key's versions shows as the old rows deleted
    and the new rows inserted, so both the old and the new target of a re-pointed edge
    are here.

    Raises:
        Exception: delta-rs's error when the feed does not cover the range (switched on
            later, or its files removed by a vacuum); callers fall back to a full build.
    """
    if until <= since:
        return CHANGES_SCHEMA.empty_table()
    data = change_feed(uri, since, until, CHANGE_COLUMNS)
    # delta-rs hands out string_view columns, which some compute kernels do not take.
    changes = pa.table(
        {
            **{name: data.column(name).cast(pa.string()) for name in CHANGE_COLUMNS},
            "change_type": data.column("_change_type").cast(pa.string()),
            "commit_version": data.column("_commit_version").cast(pa.int64()),
        },
        schema=CHANGES_SCHEMA,
    )
    # Update images do not occur (AAG replaces edge versions by delete and insert); a
    # change is an insert or a delete.
    return changes.filter(pc.is_in(changes.column("change_type"), pa.array(["insert", "delete"])))


def unknown_changes() -> pa.Table:
    """The change table that says "what changed is not known": recompute everything."""
    return pa.table(
        {**{n: [None] for n in CHANGE_COLUMNS}, "change_type": ["unknown"], "commit_version": [None]},
        schema=CHANGES_SCHEMA,
    )


def write_changes(con: duckdb.DuckDBPyConnection, changes: pa.Table, schema: str = "silver") -> None:
    """(Re)create ``<schema>.relationship_changes`` in the database from an Arrow table."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
    con.register("aag_changes_arrow", changes)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {_ident(schema)}.{CHANGES_TABLE} AS SELECT * FROM aag_changes_arrow"  # noqa: S608 - paths and names via dialect.lit/ident; types from the Delta schema
        )
    finally:
        con.unregister("aag_changes_arrow")


class Plugin(BasePlugin):
    """Attaches the silver Delta tables when dbt-duckdb opens its database."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        """Read the plugin's ``config`` block from the profile."""
        if not plugin_config.get("silver"):
            raise RuntimeError("the aag.dbt_plugin config needs 'silver': the folder of the Delta tables")
        self.silver = str(plugin_config["silver"])
        self.schema = str(plugin_config.get("schema") or "silver")
        tables = plugin_config.get("tables") or DEFAULT_TABLES
        if isinstance(tables, str):
            tables = [t.strip() for t in tables.split(",") if t.strip()]
        self.tables = tuple(str(t) for t in tables)
        self.versions = parse_versions(plugin_config.get("versions"))

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Create the silver views on the connection dbt opened."""
        versions = {**self.versions, **parse_versions(os.environ.get(VERSIONS_ENV))}
        read = attach_silver(conn, self.silver, self.schema, self.tables, versions)
        since = os.environ.get(CHANGES_ENV, "").strip()
        if since == CHANGES_PREPARED or "relationships" not in read:
            # Prepared by `aag build`, or an instance attaching other tables (the ledger).
            return
        if since:
            changes = read_changes(join(self.silver, "relationships"), int(since), read["relationships"])
        else:
            changes = unknown_changes()
        write_changes(conn, changes, self.schema)
