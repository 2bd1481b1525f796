"""The facade every face calls, and the commands it hands work to.

:class:`AagService` (:mod:`~aag.service.facade`) is what the CLI, the API and the MCP
tools call. Beside it, one module per command: :mod:`~aag.service.reads` (look-ups,
identity map, whole-graph views), :mod:`~aag.service.lineage` (profile, explain,
neighbourhood, raw rows), :mod:`~aag.service.monitoring` (the monitor's checks),
:mod:`~aag.service.export`, :mod:`~aag.service.erasure` and
:mod:`~aag.service.maintenance` (optimize, vacuum).
"""

from aag.service.facade import AagService

__all__ = ["AagService"]
