"""dbt-duckdb plugin: the silver Delta tables as DuckDB views (the ``local`` dbt target).

dbt-duckdb's built-in ``delta`` plugin hands DuckDB a pyarrow dataset, and pyarrow cannot
filter the files delta-rs writes (their strings are ``string_view``; ``rel_type = 'X'``
fails with "no kernel matching input types (string, string_view)"). This plugin lets
deltalake resolve the snapshot (which Parquet files make up the table at a version,
and each file's partition values) and DuckDB's own Parquet reader scan those files.

Each table becomes a **persistent** view ``<schema>.<table>`` in the dbt DuckDB file,
created when dbt opens its connection, so every model and test of a run reads the same
snapshot, and the file stays usable without dbt (the views name the Parquet files
directly). Configured in ``dbt/profiles.yml``::

    plugins:
      - module: aag.dbt_plugin
        config:
          silver: <warehouse>/silver        # folder holding the Delta tables
          schema: silver                    # DuckDB schema of the views (default silver)
          tables: nodes,relationships       # default
          versions: "nodes=3,relationships=7"   # optional: pin Delta versions

``$AAG_SILVER_VERSIONS`` (same form) overrides ``versions``: ``aag build`` pins the
snapshot it records that way, outside dbt's own configuration, so a new snapshot does
not make dbt re-parse the project.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from deltalake import DeltaTable

from aag.delta import join
from aag.gold import VERSIONS_ENV

DEFAULT_TABLES = ("nodes", "relationships")
#: Reader features a Parquet file list cannot honour.
UNSUPPORTED_FEATURES = ("deletionVectors", "columnMapping")


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def snapshot_sql(uri: str, version: int | None = None) -> tuple[str, int]:
    """A SELECT over one Delta table's snapshot through DuckDB's Parquet reader.

    Args:
        uri: Local path of the Delta table.
        version: Delta version to read; the latest if ``None``.

    Returns:
        The SQL and the version it reads.
    """
    table = DeltaTable(uri, version=version)
    features = set(table.protocol().reader_features or [])
    unsupported = features & set(UNSUPPORTED_FEATURES)
    if unsupported:
        raise RuntimeError(f"{uri}: Delta reader features {sorted(unsupported)} are not supported here")
    schema = pa.schema(table.schema().to_arrow())
    types = duckdb_types(schema)
    partition_cols = list(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    files = table.file_uris()
    by_partition: dict[tuple[Any, ...], list[str]] = {}
    for action, path in zip(actions, files, strict=True):
        key = tuple(action.get(f"partition.{c}") for c in partition_cols)
        by_partition.setdefault(key, []).append(path.removeprefix("file://"))
    if not by_partition:
        nulls = ", ".join(f"CAST(NULL AS {types[n]}) AS {_ident(n)}" for n in schema.names)
        return f"SELECT {nulls} WHERE false", int(table.version())
    parts = []
    for key, paths in sorted(by_partition.items(), key=lambda kv: [str(v) for v in kv[0]]):
        values = dict(zip(partition_cols, key, strict=True))
        cols = []
        for name in schema.names:
            if name in values:
                literal = "NULL" if values[name] is None else _q(str(values[name]))
                cols.append(f"CAST({literal} AS {types[name]}) AS {_ident(name)}")
            else:
                cols.append(f"CAST({_ident(name)} AS {types[name]}) AS {_ident(name)}")
        listed = ", ".join(_q(p) for p in sorted(paths))
        parts.append(f"SELECT {', '.join(cols)} FROM read_parquet([{listed}], union_by_name = true)")
    return "\nUNION ALL\n".join(parts), int(table.version())


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
    for name in tables:
        sql, version = snapshot_sql(join(silver, name), (versions or {}).get(name))
        con.execute(f"CREATE OR REPLACE VIEW {_ident(schema)}.{_ident(name)} AS {sql}")
        read[name] = version
    return read


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
        attach_silver(conn, self.silver, self.schema, self.tables, versions)
