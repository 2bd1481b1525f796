"""``python -m aag``: the command line (used where the console script may not be on PATH)."""

from aag.cli import main

main()
