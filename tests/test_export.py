"""``aag export`` keeps what it would overwrite: through the real CLI, on a real warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AAG = [sys.executable, "-m", "aag.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AAG, *args], capture_output=True, text=True, timeout=300, env=dict(os.environ))


def _one_line_error(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode != 0, done.stdout
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, err


def test_export_never_overwrites_silently_nor_ever_an_ingested_file(tmp_path):
    wh = str(tmp_path / "wh")
    assert run("init", "--warehouse", wh).returncode == 0
    contacts = tmp_path / "contacts.jsonl"
    row = {"Id": "0035g00000ExpoAAAA", "Email": "e@x.de", "LastModifiedDate": "2026-01-01T00:00:00Z"}
    contacts.write_text(json.dumps(row) + "\n", encoding="utf-8")
    ingested = contacts.read_bytes()
    assert run("ingest", "salesforce", "Contact", str(contacts), "--warehouse", wh).returncode == 0

    # The input file, even with --force: it stays as it was.
    for extra in ([], ["--force"]):
        done = run("export", "nodes", "--format", "csv", "--out", str(contacts), "--warehouse", wh, *extra)
        _one_line_error(done, "exists" if not extra else "ingested")
        assert contacts.read_bytes() == ingested

    # Another existing file: only with --force.
    other = tmp_path / "nodes.csv"
    other.write_text("keep me\n", encoding="utf-8")
    done = run("export", "nodes", "--format", "csv", "--out", str(other), "--warehouse", wh)
    _one_line_error(done, "--force")
    assert other.read_text(encoding="utf-8") == "keep me\n"
    done = run("export", "nodes", "--format", "csv", "--out", str(other), "--warehouse", wh, "--force")
    assert done.returncode == 0, done.stderr
    assert other.read_text(encoding="utf-8").startswith("node_id,")

    # A missing folder is an error, not created; a path inside the warehouse is refused.
    missing = tmp_path / "no" / "such" / "nodes.csv"
    _one_line_error(run("export", "nodes", "--out", str(missing), "--warehouse", wh), "no such folder")
    assert not (tmp_path / "no").exists()
    inside = Path(wh) / "ledger" / "nodes.parquet"
    _one_line_error(run("export", "nodes", "--out", str(inside), "--warehouse", wh), "inside the warehouse")
    assert not inside.exists()
    assert not list(tmp_path.glob(".*.tmp"))
