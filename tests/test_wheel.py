"""The wheel installs beside a Databricks runtime's own packages, and its tasks run there.

A Databricks job or pipeline environment installs the bundle's wheel into a Python that
already has numpy, pandas and pyarrow. The wheel must leave those as they are and bring
only what its tasks import: no web server, no dbt. This test builds the wheel from this
checkout and installs it into a clean venv that first got an older runtime's packages
(``tests/wheel/runtime.txt``), all offline from the wheelhouse ``make`` downloaded at
set-up time. Then, in that venv: the packages are unchanged, the task entry points
import, ``aag-databricks`` writes the setup SQL this repository carries, the embedded
engine ingests a generated world on those older numpy/pyarrow, and a command that needs
an extra which is not installed says so on one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("AAG_WHEELHOUSE") or Path(sys.prefix) / "wheelhouse")
RUNTIME = REPO / "tests" / "wheel" / "runtime.txt"

#: What a wheel install may add beside the runtime's packages: the base dependencies and
#: theirs (the CLI's typer and rich included). Anything else (a server, dbt) is a defect.
ALLOWED = {
    "aag",
    "annotated-doc",
    "annotated-types",
    "arro3-core",
    "deltalake",
    "deprecated",
    "duckdb",
    "markdown-it-py",
    "mdurl",
    "phonenumbers",
    "pycountry",
    "pydantic",
    "pydantic-core",
    "pygments",
    "pyroaring",
    "rich",
    "shellingham",
    "sqlglot",
    "typer",
    "typing-extensions",
    "typing-inspection",
    "wrapt",
}


def _runtime() -> dict[str, str]:
    pins = [
        line.split("==") for line in RUNTIME.read_text().splitlines() if line and not line.startswith("#")
    ]
    return {name: version for name, version in pins}


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def _installed(python: Path) -> dict[str, str]:
    listed = json.loads(_run(python, "-m", "pip", "list", "--format", "json").stdout)
    return {row["name"].lower().replace("_", "-"): row["version"] for row in listed}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the runtime's packages, then the wheel of this checkout; its bin folder."""
    if not (WHEELHOUSE / ".done").is_file():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run `make test` (it downloads one at set-up time)")
    root = tmp_path_factory.mktemp("runtime")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    offline = ["--no-index", "--find-links", str(WHEELHOUSE), "--quiet"]
    _run(python, "-m", "pip", "install", *offline, "-r", RUNTIME)
    (root / "before.json").write_text(json.dumps(_installed(python)))
    dist = root / "dist"
    _run(sys.executable, "-m", "pip", "wheel", *offline, "--no-deps", "--wheel-dir", dist, REPO)
    (wheel,) = dist.glob("aag-*.whl")
    _run(python, "-m", "pip", "install", *offline, wheel)
    return python.parent


def test_the_wheel_keeps_the_runtime_packages_and_adds_only_what_tasks_import(runtime: Path) -> None:
    installed = _installed(runtime / "python")
    before = json.loads((runtime.parents[1] / "before.json").read_text())
    assert {name: installed.get(name) for name in before} == before, "the wheel replaced runtime packages"
    assert {name: before[name] for name in _runtime()} == _runtime()
    added = set(installed) - set(before)
    assert added <= ALLOWED, sorted(added - ALLOWED)
    assert not {"fastapi", "uvicorn", "mcp", "dbt-core", "dbt-duckdb", "pyspark"} & set(installed)
    _run(runtime / "python", "-m", "pip", "check")


def test_the_task_entry_points_run_on_the_runtime(runtime: Path, tmp_path: Path) -> None:
    # The job tasks' modules and the pipeline's (pyspark is imported only inside a run).
    _run(
        runtime / "python",
        "-c",
        "import aag.databricks.job, aag.databricks.erase, aag.databricks.lakeflow as lf; lf.define",
    )
    written = _run(runtime / "aag-databricks", tmp_path / "setup").stdout.split()
    assert [Path(p).name for p in written] == sorted(
        p.name for p in (REPO / "databricks" / "setup").glob("*.sql")
    )
    for path in written:
        assert Path(path).read_text() == (REPO / "databricks" / "setup" / Path(path).name).read_text()


def test_the_embedded_engine_ingests_on_the_runtime_packages(runtime: Path, tmp_path: Path) -> None:
    listing = _run(
        runtime / "python",
        "-c",
        "import sys; from pathlib import Path; from aag.world import generate\n"
        "for s, o, p in generate(Path(sys.argv[1]), 20).files[:6]: print(s, o, p)",
        tmp_path / "world",
    ).stdout
    files = [line.split() for line in listing.splitlines()]
    assert {system for system, _, _ in files} == {"salesforce", "sap", "shopify", "zendesk", "segment"}
    _run(runtime / "aag", "init", cwd=tmp_path)
    for system, obj, path in files:
        assert "committed" in _run(runtime / "aag", "ingest", system, obj, path, cwd=tmp_path).stdout
    record = Path(files[0][2]).read_text().splitlines()[1].split(",")[0]
    shown = _run(runtime / "aag", "profile", "--source", "salesforce", "--source-id", record, cwd=tmp_path)
    assert shown.stdout.startswith("customer ") and "email" in shown.stdout


def test_the_wheel_carries_the_dbt_project_aag_build_runs(runtime: Path) -> None:
    found = _run(runtime / "python", "-c", "from aag.gold.project import project_dir; print(project_dir())")
    packaged = Path(found.stdout.strip())
    assert packaged.name == "dbt_project" and "site-packages" in packaged.parts
    source = REPO / "dbt"
    wanted = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests", "analyses")
    files = [p.relative_to(source) for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")]
    files = [f for f in files if f.parts[0] in wanted]
    assert len(files) > 20
    for name in files:
        assert (packaged / name).read_bytes() == (source / name).read_bytes(), name


@pytest.mark.parametrize(
    ("command", "extra"), [(["build"], "gold"), (["serve", "--port", "0"], "serve"), (["mcp"], "serve")]
)
def test_a_command_whose_extra_is_missing_says_which_on_one_line(
    runtime: Path, tmp_path: Path, command: list[str], extra: str
) -> None:
    _run(runtime / "aag", "init", cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(runtime / "aag"), *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert lines[-1].startswith("error: ") and f"pip install 'aag[{extra}]'" in lines[-1], lines
    assert "Traceback" not in done.stderr
