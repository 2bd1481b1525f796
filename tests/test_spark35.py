"""The commit task and the pipeline code on PySpark 3.5, the Spark of older Databricks runtimes.

Databricks runtimes 13.3-15.4 and serverless environments 1-3 are Spark 3.5 clients. The
PySpark 3.5 environment (PySpark 3.5 with Delta Lake 3.3's jars for Spark 3.5, installed
by ``make spark35`` into ``.venv-spark35``; nothing downloads at test time) runs, in a
subprocess, the pipeline + commit parity test of ``tests/test_databricks.py`` itself:
the pipeline's datasets in batch, the setup DDL's Delta tables, ``commit_pending`` with
its MERGEs, and the graph compared with the embedded engine's; and the full path's diff
queries (``tests/test_rule_diff.py``). A plugin
(``tests/spark35/versions.py``) reports the PySpark, Spark and Delta jar that ran.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from aag.engine.spark import DELTA_CLASSPATH_ENV

REPO = Path(__file__).resolve().parents[1]
SPARK35_ENV = Path(os.environ.get("AAG_SPARK35_VENV", REPO / ".venv-spark35"))
PARITY_TEST = "tests/test_databricks.py::test_pipeline_and_commit_task_give_the_embedded_graph"
#: The full path's diff on checkpoints of one plan (an EXCEPT there failed on 3.5 only).
RULE_DIFF_TESTS = "tests/test_rule_diff.py"
#: A smaller world than the 4.x run's 60 customers, to keep the run short (5.6 minutes measured
#: on two shared, busy cores; the MERGEs still run).
CUSTOMERS = "10"

pytestmark = pytest.mark.spark


def test_commit_task_and_pipeline_give_the_embedded_graph_on_pyspark_35(tmp_path: Path) -> None:
    python = SPARK35_ENV / "bin" / "python"
    classpath = SPARK35_ENV / "delta-classpath.txt"
    if not python.exists() or not classpath.exists():
        pytest.fail(f"no PySpark 3.5 environment at {SPARK35_ENV}: run `make spark35`")
    report = tmp_path / "versions.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), str(REPO / "tests"), str(REPO / "tests" / "spark35")]
        ),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        DELTA_CLASSPATH_ENV: str(classpath),
        "AAG_PARITY_CUSTOMERS": CUSTOMERS,
        "AAG_SPARK35_REPORT": str(report),
    }
    env.pop("AAG_SPARK_WAREHOUSE", None)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "versions",
            "-q",
            "-rA",
            PARITY_TEST,
            RULE_DIFF_TESTS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    # Exactly the five tests ran and passed (the parity, the two diff tests on both
    # engines): nothing skipped or deselected on the way.
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=*\s*5 passed(, \d+ warnings?)? in .*", summary), summary
    versions = json.loads(report.read_text(encoding="utf-8"))
    print(f"PySpark {versions['pyspark']}, Spark {versions['spark']}, Delta jar {versions['delta_jar']}")
    assert versions["pyspark"].startswith("3.5."), versions
    assert versions["spark"].startswith("3.5."), versions
    assert re.search(r"/delta-spark_2\.12-3\.\d+\.\d+\.jar$", versions["delta_jar"]), versions
