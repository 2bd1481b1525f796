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
}


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
        reader = QueryBuilder().register("t", DeltaTable(str(table))).execute("SELECT * FROM t")
        rows = pa.RecordBatchReader.from_stream(reader).read_all()
        keep = [c for c in rows.column_names if c not in VOLATILE]
        data = rows.select(keep).to_pylist()
        out[str(table.relative_to(warehouse))] = sorted(
            (tuple((k, _canon(r[k], drop)) for k in keep) for r in data), key=repr
        )
    return out


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
