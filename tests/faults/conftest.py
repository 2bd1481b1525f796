"""Every test under tests/faults carries the ``faults`` marker (skip with -m 'not faults')."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's tally: each line counts checks that held (zero inconsistencies)."""
    from .tables import TALLY

    if TALLY:
        terminalreporter.section("fault suite summary")
        for what, n in sorted(TALLY.items()):
            terminalreporter.write_line(f"{what}: {n}, 0 inconsistencies")
