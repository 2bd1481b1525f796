"""``python -m aag.cli``: the command line, as ``python -m aag`` runs it."""

from aag.cli import main

main()
