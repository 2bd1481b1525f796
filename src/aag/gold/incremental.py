"""Planning incremental builds: which silver snapshot a build reads and what changed since the last.

After a batch only a few customers change. ``relationships`` keeps a Delta change data
feed (``aag build`` switches it on), and a build after an earlier one hands dbt the rows
that changed since the version that build read (``silver.relationship_changes``); the
models then resolve only the affected customers again and replace their rows
(``dbt/macros/incremental.sql``). A build is full when there is no earlier one, when the
project or the configuration changed since, when the feed does not cover the range (a
vacuum removed its files), or when asked (``full_refresh``).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from aag.gold.project import DUCKDB_FILE, gold_dir
from aag.gold.publishing import manifest
from aag.gold.runner import one_line
from aag.graph.delta import CHANGE_FEED_PROPERTY
from aag.graph.store import RELATIONSHIP_STATS_COLUMNS, STATS_COLUMNS_PROPERTY
from aag.graph.warehouse import Warehouse


def silver_versions(warehouse: Warehouse) -> dict[str, int]:
    """The current Delta versions of the silver graph tables."""
    uris = {"nodes": warehouse.graph.nodes_uri, "relationships": warehouse.graph.relationships_uri}
    return {name: int(warehouse.io.open(uri).version()) for name, uri in uris.items()}


def _outdated_properties(configuration: dict[str, str]) -> dict[str, str]:
    """The ``relationships`` properties an older ``aag init`` set differently, as they must be."""
    wanted = {}
    if configuration.get(CHANGE_FEED_PROPERTY) != "true":
        wanted[CHANGE_FEED_PROPERTY] = "true"
    stats = configuration.get(STATS_COLUMNS_PROPERTY)
    if stats is not None and "is_current" in stats.split(","):
        # Delta-Spark refuses to alter a table whose statistics list a boolean column.
        wanted[STATS_COLUMNS_PROPERTY] = RELATIONSHIP_STATS_COLUMNS
    return wanted


def ensure_silver_properties(warehouse: Warehouse) -> bool:
    """Bring the properties of ``relationships`` up to date; returns whether its change feed was off.

    The Delta change data feed must be on: incremental builds read which edges changed
    from it. delta-rs (and Spark) then write the changed rows of every MERGE next to
    the data files, and ``aag vacuum`` removes them with the other old files. The same
    metadata-only commit drops a boolean column from the statistics columns of tables
    made before Delta-Spark's rule was known (see :meth:`aag.graph.store.DeltaGraphStore.create`).
    Warehouses made by an older ``aag init`` get a commit to silver, so the caller holds
    the writer lock (:meth:`aag.service.AagService.build` does).
    """
    table = warehouse.io.open(warehouse.graph.relationships_uri)
    configuration = table.metadata().configuration
    wanted = _outdated_properties(configuration)
    if not wanted:
        return False
    table.alter.set_table_properties(wanted)
    return configuration.get(CHANGE_FEED_PROPERTY) != "true"


def _changes_since(warehouse: Warehouse, since: int, until: int) -> pa.Table:
    from aag.dbt_plugin import read_changes

    return read_changes(warehouse.graph.relationships_uri, since, until)


def plan_build(
    warehouse: Warehouse, versions: dict[str, int], stamp: str, full_refresh: bool
) -> tuple[int | None, pa.Table | None, str]:
    """Whether this build can be incremental: the base version, the changed rows, or why not.

    Returns:
        ``(since, changes, "")`` for an incremental build, else ``(None, None, reason)``.
    """
    if full_refresh:
        return None, None, "asked (--full-refresh)"
    previous = manifest(warehouse)
    folder = gold_dir(warehouse)
    if not previous or not (folder / DUCKDB_FILE).exists():
        return None, None, "no earlier build"
    if previous.get("fingerprint") != stamp:
        return None, None, "the dbt project or the configuration changed"
    since = (previous.get("silver_versions") or {}).get("relationships")
    if since is None:
        return None, None, "the earlier build recorded no silver version"
    try:
        changes = _changes_since(warehouse, int(since), versions["relationships"])
    except Exception as exc:  # any failure to read the feed means: build everything
        return None, None, f"no change feed since version {since}: {one_line(str(exc))[:120]}"
    return int(since), changes, ""


def write_changes(database: Path, changes: pa.Table) -> None:
    """Hand the changed edge rows to the incremental run, in its working copy of the database."""
    from aag.dbt_plugin import write_changes as write

    con = duckdb.connect(str(database))
    try:
        write(con, changes)
    finally:
        con.close()
