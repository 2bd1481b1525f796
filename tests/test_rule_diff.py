"""The full path's diff queries on checkpoints of one plan, on both engines.

The full path compares the versions it recomputed (``rule_versions``, derived from the
stored rows) with the stored rows (``full_edges``). On Spark both are checkpoints of one
plan; Spark 3.5 with adaptive execution off could not analyse an EXCEPT between them, so
this file also runs on PySpark 3.5 (``tests/test_spark35.py``) and imports nothing that
environment lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from aag.engine.base import Engine
from aag.engine.spark import SparkEngine
from aag.rules import SQL_DIFF_KEYS
from aag.rules.full import SQL_FULL_NEW_VERSIONS

T1, T2 = (datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2))
#: One test edge: (entity, value, time, confidence, event, batch).
EdgeRow = tuple[str, str | None, datetime | None, float | None, str | None, str | None]


def _stored() -> pa.Table:
    """Three keys' stored versions; key ``c`` has a NULL in every optional column."""
    return _edges(
        [
            ("a", "v1", T1, 1.0, "e1", "b1"),
            ("a", "v2", T2, 1.0, "e2", "b1"),
            ("b", "v3", T1, 0.5, "e3", "b1"),
            ("c", None, None, None, None, None),
        ]
    )


def _edges(rows: list[EdgeRow]) -> pa.Table:
    """Current edge rows of rel_type HAS_EMAIL from crm."""
    n = len(rows)
    return pa.table(
        {
            "source_node_id": [r[0] for r in rows],
            "rel_type": ["HAS_EMAIL"] * n,
            "source_system": ["crm"] * n,
            "target_node_id": [r[1] for r in rows],
            "updated_at": pa.array([r[2] for r in rows], pa.timestamp("us", "UTC")),
            "confidence": pa.array([r[3] for r in rows], pa.float32()),
            "is_current": [True] * n,
            "source_event_id": [r[4] for r in rows],
            "valid_to": pa.array([None] * n, pa.timestamp("us", "UTC")),
            "closed_by": pa.array([None] * n, pa.string()),
            "closed_by_event": pa.array([None] * n, pa.string()),
            "source_field": ["Email"] * n,
            "batch_id": [r[5] for r in rows],
        }
    )


@pytest.fixture
def checkpoints(engine: Engine) -> Iterator[Engine]:
    """``full_edges`` and a ``rule_versions`` derived from it, adaptive execution off on Spark."""
    spark = engine.spark if isinstance(engine, SparkEngine) else None
    before = spark.conf.get("spark.sql.adaptive.enabled") if spark is not None else None
    if spark is not None:
        spark.conf.set("spark.sql.adaptive.enabled", "false")
    engine.register("diff_stored", _stored())
    try:
        # As the full path builds them: the stored rows of the touched keys, the versions
        # recomputed through a window over them.
        engine.materialize(
            "full_edges",
            "SELECT * FROM diff_stored WHERE source_node_id IN "
            "(SELECT source_node_id FROM diff_stored GROUP BY source_node_id)",
        )
        engine.materialize(
            "diff_seq",
            "SELECT *, row_number() OVER (PARTITION BY source_node_id ORDER BY updated_at) AS pos "
            "FROM full_edges",
        )
        # The recomputed flag: the last version of each key is current. Key "a" was stored
        # with two current versions (its first one now closes); "b" and "c" (every optional
        # column NULL) come out as stored.
        engine.materialize(
            "rule_versions",
            "SELECT source_node_id, rel_type, source_system, target_node_id, updated_at, confidence, "
            "pos = max(pos) OVER (PARTITION BY source_node_id) AS is_current, source_event_id, "
            "valid_to, closed_by, closed_by_event, source_field, batch_id FROM diff_seq",
        )
        yield engine
    finally:
        for name in ("diff_stored", "full_edges", "diff_seq", "rule_versions", "diff_extra", "diff_more"):
            engine.drop(name)
        if spark is not None:
            spark.conf.set("spark.sql.adaptive.enabled", before)


def test_the_diff_finds_the_changed_key_and_no_new_version(checkpoints: Engine) -> None:
    keys = checkpoints.query(SQL_DIFF_KEYS).to_pylist()
    assert keys == [{"source_node_id": "a", "rel_type": "HAS_EMAIL", "source_system": "crm"}]
    # The same (key, value, time) triples on both sides: no version is new.
    assert checkpoints.query(SQL_FULL_NEW_VERSIONS).column(0)[0].as_py() == 0


def test_a_recomputed_version_is_new_and_a_stored_only_one_is_not(checkpoints: Engine) -> None:
    # Key "b" gains a version the store lacks; key "c" loses its stored one.
    checkpoints.register("diff_extra", _edges([("b", "v4", T2, 1.0, "e4", "b2")]))
    checkpoints.materialize(
        "diff_more",
        "SELECT * FROM rule_versions WHERE source_node_id <> 'c' UNION ALL SELECT * FROM diff_extra",
    )
    checkpoints.materialize("rule_versions", "SELECT * FROM diff_more")
    keys = sorted(r["source_node_id"] for r in checkpoints.query(SQL_DIFF_KEYS).to_pylist())
    assert keys == ["a", "b", "c"]
    # Only b's (v4, T2) is on the recomputed side alone; c's row is on the stored side alone.
    assert checkpoints.query(SQL_FULL_NEW_VERSIONS).column(0)[0].as_py() == 1
