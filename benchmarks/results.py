"""Writing a benchmark's section into ``benchmarks/RESULTS.md``.

Each benchmark owns sections between ``<!-- NAME KEY -->`` and ``<!-- /NAME KEY -->``
markers (the key names the sizes run); re-running the same sizes replaces its section,
other sizes and hand-written notes stay.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmark results\n"


def markers(name: str, key: str = "") -> tuple[str, str]:
    """The opening and closing marker of a section."""
    suffix = f" {key}" if key else ""
    return f"<!-- {name}{suffix} -->", f"<!-- /{name}{suffix} -->"


def write_section(path: Path, name: str, section: str, key: str = "") -> None:
    """Replace the section of ``name``/``key`` in ``path`` (or append it).

    Args:
        path: RESULTS.md.
        name: The benchmark's marker name, e.g. ``bench_gold``.
        section: The new section, markers included.
        key: What distinguishes runs of the same benchmark, e.g. ``customers=100000``.
    """
    start, end = markers(name, key)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    section = section if section.endswith("\n") else section + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
