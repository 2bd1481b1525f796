"""The ``aag`` command line (SPEC §9). Thin: parse, call :class:`AagService`, print.

Each module holds one group of commands; this one builds the app from them, in the
order ``aag --help`` lists them, and runs it with one-line errors.
"""

from __future__ import annotations

import os
import sys

import typer

from aag.cli import demo, ingest, maintenance, reads, serve
from aag.cli.common import err
from aag.errors import AagError

app = typer.Typer(
    name="aag",
    help="Atomic attribute graph: field-level truth for customer data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (
    ingest.init,
    ingest.ingest,
    reads.profile,
    reads.explain,
    ingest.build,
    reads.export,
    maintenance.erase,
    maintenance.optimize,
    reads.monitor,
    maintenance.vacuum,
    demo.demo,
):
    app.command()(command)
app.add_typer(maintenance.identity_app, name="identity")
app.add_typer(serve.keys_app, name="keys")
app.command()(serve.serve)
app.command()(serve.mcp)


def main() -> None:
    """Entry point: run the app; one-line errors, non-zero exit, no tracebacks."""
    code = 0
    try:
        _run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    if "aag.engine.spark" in sys.modules:
        # os._exit skips atexit: drop the Spark engine's temporary catalog folder here.
        sys.modules["aag.engine.spark"].remove_private_folders()
    # delta-rs' native runtime can abort while the interpreter tears its threads down;
    # leaving through os._exit keeps the exit code the command earned.
    os._exit(code)


def _run() -> None:
    try:
        app(standalone_mode=False)
    except AagError as exc:
        # Messages quote file names and values: print them as they are, never as markup.
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:
        # typer vendors click; its usage errors and exits are recognised by shape.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True)
            raise SystemExit(int(exc.exit_code)) from None
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            raise SystemExit(int(exc.exit_code)) from None
        if os.environ.get("AAG_DEBUG"):
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(set AAG_DEBUG=1 for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(70) from None
