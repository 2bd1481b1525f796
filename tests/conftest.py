"""Shared fixtures: engines (DuckDB always, local Spark when marked), warehouses."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from aag.engine import make_engine
from aag.engine.base import Engine

# Python workers (pandas UDFs of the pipeline) must run in this environment: the venv's
# interpreter itself, not the base interpreter its symlink resolves to.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Engine]:
    engine = make_engine("spark")
    yield engine
    engine.spark.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def duckdb_engine() -> Engine:
    return make_engine("local")


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Every rule test runs on both engines (Spark tests can be skipped with -m 'not spark')."""
    return request.getfixturevalue(f"{request.param}_engine")


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
