"""The optional parts of AAG and the packages each needs.

``pip install aag`` brings the embedded engine and the CLI; the gold build, the servers
and the Spark engine are extras. A command that needs one checks before importing it,
so a missing package is a one-line error naming the extra, never an import traceback.
"""

from __future__ import annotations

import importlib.util

from aag.errors import MissingExtraError

#: Top-level modules each extra provides (the names in ``pyproject.toml``'s extras).
EXTRAS: dict[str, tuple[str, ...]] = {
    "gold": ("dbt", "dbt.adapters.duckdb"),
    "serve": ("fastapi", "uvicorn", "mcp"),
    "spark": ("pyspark",),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require(extra: str, what: str) -> None:
    """Raise :class:`~aag.errors.MissingExtraError` unless ``extra``'s packages are installed.

    Args:
        extra: The extra's name (a key of :data:`EXTRAS`).
        what: What needs it, for the message (e.g. ``"aag build"``).
    """
    missing = [module for module in EXTRAS[extra] if not _installed(module)]
    if missing:
        names = ", ".join(missing)
        hint = f"pip install 'aag[{extra}]'"
        raise MissingExtraError(f"{what} needs the '{extra}' extra ({names} not installed): {hint}")
