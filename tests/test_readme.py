"""Every ```bash block of README.md runs as written, in order, in an empty folder.

The blocks run with bash (``-euo pipefail``) in one temporary folder, with an ``aag`` on
PATH that is this interpreter's ``python -m aag``. Two kinds of line are left out, by the
rule in :func:`runnable` and nothing else: ``make`` lines (they create a venv and run the
whole suite) and ``aag serve`` / ``aag mcp`` (servers that run until stopped; the API and
MCP tests run them). The test names the lines it left out, so a new one is noticed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.S | re.M)
LEFT_OUT = re.compile(r"^(make |aag (serve|mcp)\b)")


def runnable(block: str) -> tuple[str, list[str]]:
    """The block without the lines :data:`LEFT_OUT` matches, and those lines."""
    kept: list[str] = []
    left: list[str] = []
    for line in block.splitlines():
        (left if LEFT_OUT.match(line) else kept).append(line)
    return "\n".join(kept) + "\n", left


def test_readme_blocks_run_as_written_in_an_empty_folder(tmp_path):
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "aag"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aag "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AAG_WAREHOUSE", None)
    left_out = []
    for number, block in enumerate(blocks, start=1):
        script, left = runnable(block)
        left_out += [line.split("#")[0].strip() for line in left]
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"README block {number} failed:\n{script}\n{done.stderr[-3000:]}"
    assert left_out == [
        "make demo",
        "make test",
        "aag serve --warehouse ./wh",
        "aag mcp --warehouse ./wh",
    ]
    # What the blocks claim: the exports exist, the erasure found the contact, and the
    # demo's customer has the phone the README's table shows, from Zendesk.
    assert (work / "profiles.jsonl").stat().st_size > 0
    erased = subprocess.run(
        [str(shim), "profile", "--source", "salesforce", "--source-id", "0035g00000DemoAAAR", "-w", "wh"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert erased.returncode != 0 and erased.stderr.startswith("error: "), erased.stdout + erased.stderr
    v2 = [json.loads(line) for line in (work / "v2.jsonl").read_text().splitlines()]
    customer = next(row for row in v2 if row["customer_id"] == "5b95fa73-335e-8f4a-aa5c-f3f57f96adf4")
    assert (customer["phone"], customer["phone_source"]) == ("+499876543210", "zendesk")
    v1 = [json.loads(line) for line in (work / "v1.jsonl").read_text().splitlines()]
    assert {row["customer_id"] for row in v1} == {row["customer_id"] for row in v2}
