"""Every test under tests/faults carries the ``faults`` marker (skip with -m 'not faults').

The tally is kept per process; under pytest-xdist each worker hands its counts to the
controller (``tests/conftest.py`` adds and prints them).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from .tables import TALLY

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_tally"] = dict(TALLY)
