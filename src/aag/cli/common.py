"""What every command shares: the consoles, the common options, the service, formatting."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from aag.errors import WarehouseError
from aag.service import AagService

# Messages never wrap: a path or a count split over two lines breaks grep and scripts.
# Tables still fit the terminal width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Warehouse = Annotated[
    str | None,
    typer.Option("--warehouse", "-w", help="Warehouse folder or URI [env: AAG_WAREHOUSE]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def open_service(warehouse: str | None) -> AagService:
    """The service on ``--warehouse`` (or its default), on the engine ``$AAG_ENGINE`` names."""
    svc = AagService(warehouse, engine=os.environ.get("AAG_ENGINE", "local"))
    if svc.warehouse.local:
        # A file where the warehouse folder (or one of its parents) should be: name it,
        # rather than let the first write fail with "File exists" or "Not a directory".
        folder = Path(svc.warehouse.uri)
        for path in (folder, *folder.parents):
            if path.exists():
                if path == folder and not path.is_dir():
                    raise WarehouseError(f"the warehouse {folder} is a file, not a folder")
                if not path.is_dir():
                    raise WarehouseError(f"cannot create the warehouse {folder}: {path} is a file")
                break
    return svc


def json_default(value: Any) -> Any:
    """A value JSON has no type for: times as ISO 8601 UTC, anything else as text."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=json_default, ensure_ascii=False) + "\n")


def cell(value: Any) -> str:
    """One table cell: times as ISO 8601 UTC, shares as percentages, None as blank.

    Text is escaped: values are customer data, and rich would read ``[b]`` or ``[/x]`` in
    them as markup (or fail on it).
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return text(value)


def text(value: Any) -> str:
    """A value as printable text: None as blank, rich markup characters escaped."""
    return "" if value is None else escape(str(value))


def duration(seconds: Any) -> str:
    """A lag as days and hours, or hours and minutes (blank for None)."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


def size(n: int) -> str:
    """Bytes as a short human figure (decimal units, like ``ls -h --si``)."""
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class Log:
    """Progress as plain lines on stderr, for when stderr is not a terminal.

    Piped or redirected (CI, cron, ``| tee``), a live bar draws nothing and stdout is
    buffered until the end: a long command would look hung. There, each step prints one
    line with the time since the command started; on a terminal the bar does the job.
    """

    def __init__(self) -> None:
        self.on = not err.is_terminal
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print ``message`` with the time since the command started (when stderr is no terminal)."""
        if self.on:
            sys.stderr.write(f"[{time.perf_counter() - self.started:7.1f}s] {message}\n")
            sys.stderr.flush()


def program() -> str:
    """How to call aag again: ``make demo`` runs .venv/bin/aag, which is not on PATH."""
    if shutil.which("aag"):
        return "aag"
    # ``python -m aag`` sets argv[0] to the package's __main__.py, which is no command.
    return f"{sys.executable} -m aag" if sys.argv[0].endswith("__main__.py") else sys.argv[0]
