"""Running dbt in-process: its arguments, the run itself, and what its result says failed.

``aag build`` runs ``dbt build`` on the ``local`` target (dbt-duckdb) through
``dbtRunner``, pinning the Delta versions of the two silver tables so every model reads
one snapshot.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aag.errors import AagError
from aag.extras import require
from aag.graph.warehouse import Warehouse


class BuildError(AagError):
    """The dbt build failed (a model error or a failing data test)."""

    exit_code = 1

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        #: Names of the dbt nodes that errored or failed.
        self.failures = failures or []


def one_line(text: str | None) -> str:
    """A dbt message on one line, cut to 300 characters (errors and warnings quote it)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " ".join(lines)[:300]


def run_dbt(
    args: list[str],
    on_node: Callable[[str, str, int], None] | None = None,
    versions: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Invoke dbt in-process, quietly; ``on_node(name, status, total)`` per finished node.

    Args:
        args: The dbt command and its arguments.
        on_node: Progress callback.
        versions: Silver Delta versions the run reads (``$AAG_SILVER_VERSIONS`` for the
            run's duration; the project's views read the latest otherwise).
        env: More environment variables for the run's duration.

    Returns:
        The ``dbtRunnerResult``.
    """
    require("gold", "the gold build (dbt)")
    from dbt.cli.main import dbtRunner

    total = [0]

    def callback(event: Any) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            total[0] = int(event.data.node_count)
        elif name == "NodeFinished" and on_node is not None:
            info = event.data.node_info
            on_node(str(info.node_name), str(info.node_status), total[0])

    quiet = ["--log-level", "none", "--log-level-file", "info"]
    quiet += ["--no-send-anonymous-usage-stats", "--no-version-check"]
    settings = dict(env or {})
    if versions:
        from aag.dbt_plugin import VERSIONS_ENV

        settings[VERSIONS_ENV] = ",".join(f"{name}={version}" for name, version in versions.items())
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return dbtRunner(callbacks=[callback]).invoke([*args[:1], *quiet, *args[1:]])
    finally:
        _release_dbt()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _release_dbt() -> None:
    """Let go of what an in-process dbt run keeps after it returns.

    dbt-duckdb keeps its DuckDB database open in a class-level environment, so this
    process could not open the file in another mode (read-only) afterwards; and dbt keeps
    its adapters, with their multiprocessing locks, in a module-level factory, which makes
    the resource tracker warn about leaked semaphores when the CLI leaves via os._exit.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    environment = getattr(DuckDBConnectionManager, "_ENV", None)
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    reset_adapters()  # type: ignore[no-untyped-call]
    gc.collect()


def failed_nodes(result: Any) -> list[tuple[str, str]]:
    """``(node name, one-line message)`` of every node that errored or failed in a dbt run."""
    failed = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status))
        if status in ("error", "fail", "runtime error"):
            node = node_result.node
            kind = getattr(node.resource_type, "value", node.resource_type)
            failed.append((str(node.name), f"{kind} {node.name}: {one_line(node_result.message)}"))
    return failed


def build_failure(result: Any, log_file: Path) -> BuildError:
    """The one-line error of a failed dbt run, naming what failed."""
    if result.exception is not None:
        return BuildError(f"dbt failed: {one_line(str(result.exception))} (log: {log_file})")
    failed = failed_nodes(result)
    if not failed:
        return BuildError(f"dbt failed (log: {log_file})")
    more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
    return BuildError(
        f"dbt build failed: {failed[0][1]}{more} (log: {log_file})", [name for name, _ in failed]
    )


def node_warnings(result: Any) -> list[str]:
    """``node: message`` of every node that warned in a dbt run (a data test at severity warn)."""
    out = []
    for node_result in getattr(result.result, "results", None) or []:
        if str(getattr(node_result.status, "value", node_result.status)) == "warn":
            out.append(f"{node_result.node.name}: {one_line(node_result.message)}")
    return out


def dbt_args(
    command: str,
    staged: Path,
    warehouse: Warehouse,
    extra_vars: dict[str, Any] | None = None,
) -> list[str]:
    """Arguments of a dbt command on the (staged) project against this warehouse.

    Args:
        command: dbt command, e.g. ``build``.
        staged: Project folder (also the profiles folder).
        warehouse: The warehouse (``--vars warehouse``).
        extra_vars: More project vars.
    """
    variables = {
        "warehouse": warehouse.uri,
        # The ranking sorts only by the keys of the strategies in force (resolve_winner).
        "survivorship_strategies": sorted({r.strategy for r in warehouse.config.survivorship.values()}),
        **(extra_vars or {}),
    }
    return [
        command,
        "--project-dir",
        str(staged),
        "--profiles-dir",
        str(staged),
        "--target",
        "local",
        "--target-path",
        str(staged / "target"),
        "--log-path",
        str(staged / "logs"),
        "--vars",
        json.dumps(variables),
    ]
