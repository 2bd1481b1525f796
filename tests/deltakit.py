"""Delta Lake's own implementation (Delta-Spark) as a subprocess, for reference checks.

``make delta-reference`` installs PySpark with Delta Lake's jars into ``.venv-delta``
(``AAG_DELTA_VENV`` points elsewhere); ``tests/delta_reference/delta_spark.py`` runs in
it, so nothing downloads at test time.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DELTA_ENV = Path(os.environ.get("AAG_DELTA_VENV", REPO / ".venv-delta"))
SCRIPT = REPO / "tests" / "delta_reference" / "delta_spark.py"


def delta_spark(*args: str) -> dict[str, Any]:
    """Run the reference script with ``args``; its last stdout line, parsed as JSON."""
    python = DELTA_ENV / "bin" / "python"
    classpath = DELTA_ENV / "delta-classpath.txt"
    if not python.exists() or not classpath.exists():
        pytest.fail(f"no Delta reference environment at {DELTA_ENV}: run `make delta-reference`")
    env = {**os.environ, "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)}
    proc = subprocess.run(
        [str(python), str(SCRIPT), str(classpath), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
