"""Extraction runs the same SQL on DuckDB and Spark and must give identical events."""

from __future__ import annotations

from pathlib import Path

import pytest

from aag.bronze import read_rows
from aag.config import load_config
from aag.delta import now_utc
from aag.demo import write_demo_files
from aag.sources import extractor_for
from aag.sources.base import EVENTS_TABLE, NODES_TABLE


def _rows(table):
    return sorted(map(repr, table.to_pylist()))


@pytest.mark.spark
def test_demo_batches_extract_identically(tmp_path: Path, duckdb_engine, spark_engine):
    config = load_config()
    now = now_utc()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"Id": "0035g00000Abcde", "LastModifiedDate": "2026-13-45", "Phone": "x"}\n'
        '{"Id": "0035g00000Fghij", "LastModifiedDate": "2026-01-01T00:00:00Z",'
        ' "Phone": "n/a", "MailingCountry": "Atlantis", "Email": "ok@x.io"}\n{oops\n'
    )
    files = [(b.source_system, b.source_object, p) for b, p in write_demo_files(tmp_path)]
    files.append(("salesforce", "Contact", bad))
    for system, obj, path in files:
        spec = config.object(system, obj)
        rows = read_rows(path, spec.fields)
        out = {}
        for name, engine in (("local", duckdb_engine), ("spark", spark_engine)):
            extracted = extractor_for(spec, config).extract(engine, rows, "b1", now)
            out[name] = (
                extracted,
                engine.query(f"SELECT * FROM {EVENTS_TABLE}"),
                engine.query(f"SELECT * FROM {NODES_TABLE}"),
            )
        local, local_events, local_nodes = out["local"]
        spark, spark_events, spark_nodes = out["spark"]
        assert local.events > 0 or path == bad
        assert _rows(local_events) == _rows(spark_events), path.name
        assert _rows(local_nodes) == _rows(spark_nodes), path.name
        assert _rows(local.quarantine) == _rows(spark.quarantine), path.name
        assert local.rows_quarantined == spark.rows_quarantined
