"""Canonical snapshots of every table of a warehouse, for comparing runs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

#: What the fault suite proved, counted as tests pass (printed at the end of the run by
#: ``conftest.pytest_terminal_summary``): kill points, concurrent runs, fuzz cases, files scanned.
TALLY: Counter[str] = Counter()


def tally(what: str, n: int = 1) -> None:
    """Count ``n`` more checks of a kind that held (call after the test's assertions)."""
    TALLY[what] += n


#: Columns that record *when* or *how much work* a run did, not what the data is.
VOLATILE = {
    "created_at",
    "_landed_at",
    "quarantined_at",
    "started_at",
    "finished_at",
    "nodes_written",
    "edge_versions_written",
    "edge_rows_rewritten",
    # Whether a row was deferred, and so counted unchanged, depends on what was landed
    # before it (batch order, chunking); its events are in the log's canonical form.
    "_deferred",
    "rows_unchanged",
    "field_events",
}

#: The absorbed-event log, compared as the event set it encodes (:func:`canonical_log`).
LOG = "silver/edge_events"


#: Map keys that say which batch first delivered a version's event: when the same event
#: comes in two batches, the order of the batches decides (ingestion bookkeeping).
LINEAGE_KEYS = {"batch_id"}


def _canon(value: Any, drop_keys: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    if isinstance(value, list):  # MAP columns arrive as lists of (key, value) pairs
        return json.dumps(sorted((str(k), str(v)) for k, v in value if k not in drop_keys))
    if isinstance(value, dict):
        return json.dumps(sorted(value.items()), default=str)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


#: A table's rows, canonical: each row a tuple of (column, value) pairs.
Rows = list[tuple[tuple[str, object], ...]]


def delta_tables(warehouse: Path) -> list[Path]:
    """Every Delta table under a warehouse folder."""
    return sorted(p.parent for p in warehouse.rglob("_delta_log") if p.is_dir())


def snapshot(warehouse: Path, any_order: bool = False) -> dict[str, Rows]:
    """Table (relative path) → sorted rows without volatile columns (a multiset).

    With ``any_order``, batch lineage in ``properties`` is left out too: runs that took the
    batches in different orders are compared on everything else.
    """
    drop = LINEAGE_KEYS if any_order else set()
    out: dict[str, Rows] = {}
    for table in delta_tables(warehouse):
        if str(table.relative_to(warehouse)) == LOG:
            out[LOG] = canonical_log(warehouse)
            continue
        reader = QueryBuilder().register("t", DeltaTable(str(table))).execute("SELECT * FROM t")
        rows = pa.RecordBatchReader.from_stream(reader).read_all()
        keep = [c for c in rows.column_names if c not in VOLATILE]
        data = rows.select(keep).to_pylist()
        out[str(table.relative_to(warehouse))] = sorted(
            (tuple((k, _canon(r[k], drop)) for k in keep) for r in data), key=repr
        )
    return out


def canonical_log(warehouse: Path, batch_ids: bool = True) -> Rows:
    """The events the log encodes: logged or deferred, and carried by no version row.

    The log only ever grows: an event a chunk absorbed stays logged when a later chunk's
    (earlier-dated) event makes it the start of a version, where a one-piece run never
    logs it; and a deferred row's events (``AAG_DEFER=1``) stay in bronze until a batch
    folds them back. The event set the log, bronze and ``relationships`` encode together
    is what must not depend on chunking, batch order or deferral; this is its part that
    no version row shows. ``batch_ids=False`` leaves out which batch delivered each event
    (runs of the same rows in other files).
    """
    from aag.engine import make_engine
    from aag.engine.duckdb import local_connection
    from aag.graph.store import flatten_edges
    from aag.graph.warehouse import Warehouse
    from aag.pipeline.deferral import deferred_events

    wh = Warehouse(str(warehouse))
    con = local_connection()
    con.register("c_log", wh.graph.edge_events())
    con.register("c_deferred", deferred_events(make_engine("local"), wh))
    con.register("c_edges", flatten_edges(wh.graph.relationships()))
    try:
        result = con.sql(
            """
            SELECT DISTINCT * FROM (SELECT * FROM c_log UNION ALL SELECT * FROM c_deferred) l
            WHERE NOT EXISTS (
                SELECT 1 FROM c_edges e
                WHERE e.source_node_id = l.source_node_id AND e.rel_type = l.rel_type
                  AND e.source_system = l.source_system
                  AND ((e.source_event_id = l.source_event_id AND e.updated_at = l.updated_at
                        AND e.target_node_id IS NOT DISTINCT FROM l.target_node_id)
                       OR (e.closed_by = 'removal' AND e.closed_by_event = l.source_event_id
                           AND l.target_node_id IS NULL)))
            """
        ).to_arrow_table()
    finally:
        for name in ("c_log", "c_deferred", "c_edges"):
            con.unregister(name)
    return sorted(
        (
            tuple((k, _canon(v)) for k, v in r.items() if batch_ids or k != "batch_id")
            for r in result.to_pylist()
        ),
        key=repr,
    )


def differences(expected: dict[str, Rows], actual: dict[str, Rows]) -> list[str]:
    """Human-readable differences between two snapshots (empty when identical)."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        a, b = expected.get(name, []), actual.get(name, [])
        if a != b:
            missing = [r for r in a if r not in b][:2]
            extra = [r for r in b if r not in a][:2]
            problems.append(
                f"{name}: {len(a)} rows expected, {len(b)} found; missing {missing}; extra {extra}"
            )
    return problems


def copy_warehouse(source: Path, target: Path) -> Path:
    """A byte copy of a warehouse (Delta tables are plain files)."""
    shutil.copytree(source, target)
    return target


def aag(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the ``aag`` CLI as a separate process (a real one, to kill or race)."""
    return subprocess.Popen(
        [sys.executable, "-m", "aag.cli", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def as_csv(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """JSON-like rows as a CSV file (booleans as true/false, None as empty)."""
    cols = sorted({k for r in rows for k in r})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, cols)
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {
                    k: ("" if r.get(k) is None else str(r[k]).lower() if isinstance(r[k], bool) else r[k])
                    for k in cols
                }
            )
    return path
