"""The facade every face calls, and the commands it hands work to.

:class:`AagService` (:mod:`~aag.service.facade`) is what the CLI, the API and the MCP
tools call. Beside it, one module per command: :mod:`~aag.service.reads` (look-ups,
identity map, whole-graph views), :mod:`~aag.service.lineage` (profile, explain,
neighbourhood, raw rows), :mod:`~aag.service.monitoring` (the monitor's checks),
:mod:`~aag.service.export`, :mod:`~aag.service.erasure` and
:mod:`~aag.service.maintenance` (optimize, vacuum).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aag.service.facade import AagService

__all__ = ["AagService"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `python -m aag.service.monitoring` (which regenerates
    # the Databricks and dbt monitoring SQL) runs its module once, not after the facade
    # has already imported it.
    if name == "AagService":
        from aag.service.facade import AagService

        return AagService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
