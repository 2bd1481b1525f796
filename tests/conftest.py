"""Shared fixtures: engines (DuckDB always, local Spark when marked), warehouses."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aag.engine import make_engine
from aag.engine.base import Capability, Engine
from aag.engine.spark import DELTA_CLASSPATH_ENV, SparkEngine

# Python workers (pandas UDFs of the pipeline) must run in this environment: the venv's
# interpreter itself, not the base interpreter its symlink resolves to.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

#: Delta Lake's Spark jars, listed by `make` into the venv (.venv/delta-classpath.txt).
#: Every local Spark session of the tests (and of the CLI processes they start) loads
#: them, so the graph's catalog tables are real Delta tables and the MERGE runs.
DELTA_CLASSPATH = Path(os.environ.get(DELTA_CLASSPATH_ENV) or Path(sys.prefix) / "delta-classpath.txt")
if DELTA_CLASSPATH.is_file():
    os.environ[DELTA_CLASSPATH_ENV] = str(DELTA_CLASSPATH)


#: Query settings of the tests' Spark sessions. The tests' tables hold hundreds of rows and
#: a batch runs ~100 small Spark jobs, so the fixed cost of each job dominates: compiling
#: Java per query (whole-stage code generation), re-planning at run time (adaptive
#: execution) and more than one shuffle partition cost more than they save. Results do not
#: depend on them. The partition count goes through the product's own variable so the CLI
#: processes the tests start get it too; those keep code generation and adaptive execution
#: on, the product's defaults.
os.environ.setdefault("AAG_SPARK_PARTITIONS", "1")
SMALL_DATA_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[SparkEngine]:
    # A missing jar list fails the Spark tests: without Delta they would quietly test the
    # non-MERGE fallback instead of the Databricks commit path.
    if not DELTA_CLASSPATH.is_file():
        pytest.fail(f"no Delta classpath at {DELTA_CLASSPATH}: run `make test` (needs mvn)")
    engine = make_engine("spark")
    assert isinstance(engine, SparkEngine)
    assert Capability.MERGE in engine.capabilities, "the local Spark session did not load Delta Lake"
    for key, value in SMALL_DATA_CONF.items():
        engine.spark.conf.set(key, value)
    yield engine
    engine.spark.stop()


@pytest.fixture(scope="session")
def duckdb_engine() -> Engine:
    return make_engine("local")


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Every rule test runs on both engines (Spark tests can be skipped with -m 'not spark')."""
    engine = request.getfixturevalue(f"{request.param}_engine")
    assert isinstance(engine, Engine)
    return engine


#: The longest test files (minutes each on two cores), longest first. With `-n 2 --dist
#: loadfile` a worker takes whole files in collection order: starting these first keeps one
#: of them from being the last file left running while the other worker idles.
LONGEST_FIRST = (
    "test_spark_parity.py",
    "test_databricks.py",
    "test_spark35.py",
    "test_read_parity.py",
    "test_delta_reference.py",
    "test_rules.py",
    "test_identity_memory.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the longest files first (stable: tests within a file keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: add a finished worker's fault tally to this process's."""
    from faults.tables import TALLY

    TALLY.update(getattr(node, "workeroutput", {}).get("fault_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's tally: each line counts checks that held (zero inconsistencies)."""
    from faults.tables import TALLY

    if TALLY:
        terminalreporter.section("fault suite summary")
        for what, n in sorted(TALLY.items()):
            terminalreporter.write_line(f"{what}: {n}, 0 inconsistencies")
