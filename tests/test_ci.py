"""The fork CI workflow runs the README's test command with what `make test` needs installed.

`make test` needs Python, Java (local Spark) and Maven (Delta Lake's jars, fetched at
set-up time); the workflow's container brings Python, so an earlier step must install
the other two.
"""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "ci.yml"


def test_the_workflow_installs_java_and_maven_before_make_test() -> None:
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert "make test" in [run.strip() for run in runs]
    before = " ".join(runs[: [run.strip() for run in runs].index("make test")])
    assert "maven" in before.split() and any(word.startswith("openjdk-17") for word in before.split())
    assert job["timeout-minutes"] >= 90
