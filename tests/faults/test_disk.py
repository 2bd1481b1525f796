"""A read-only warehouse and a full disk: a clean one-line error, and the warehouse intact.

Real file systems, no mocks. As root (CI containers, this sandbox) the warehouse sits on a
read-only bind mount, or on a small tmpfs that a ballast file fills. Without the right to
mount, the next-best real mechanisms are used: a warehouse folder without write permission,
and a file size limit (``RLIMIT_FSIZE``: writes past it fail with ``EFBIG``).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aag.world import generate

from .tables import differences, snapshot, tally

AAG = [sys.executable, "-m", "aag.cli"]


def _can_mount(tmp: Path) -> bool:
    if os.geteuid() != 0:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["umount", str(probe)], check=True)
    return ok.returncode == 0


def _run(*args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [*AAG, *args], capture_output=True, text=True, timeout=300, preexec_fn=limit, env={**os.environ}
    )


def _assert_clean_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = generate(tmp_path_factory.mktemp("disk") / "world", 300, formats="jsonl").files
    contacts = [p for s, o, p in files if (s, o) == ("salesforce", "Contact")]
    return contacts[:2]


@contextmanager
def _read_only(folder: Path, mount: bool) -> Iterator[None]:
    if mount:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_a_read_only_warehouse_fails_cleanly_and_stays_readable(tmp_path, inputs):
    mount = _can_mount(tmp_path)
    wh = tmp_path / "wh"
    assert _run("init", "--warehouse", str(wh)).returncode == 0
    first = _run("ingest", "salesforce", "Contact", str(inputs[0]), "--warehouse", str(wh))
    assert first.returncode == 0, first.stderr
    before = snapshot(wh)
    with _read_only(wh, mount):
        line = _assert_clean_failure(
            _run("ingest", "salesforce", "Contact", str(inputs[1]), "--warehouse", str(wh))
        )
        assert "Read-only file system" in line or "Permission denied" in line, line
        # Readers need no write access: the tables read as before, even now.
        assert differences(before, snapshot(wh)) == []
        exported = _run(
            "export", "nodes", "--format", "jsonl", "--out", str(tmp_path / "n.jsonl"), "-w", str(wh)
        )
        assert exported.returncode == 0, exported.stderr
    assert differences(before, snapshot(wh)) == []
    again = _run("ingest", "salesforce", "Contact", str(inputs[1]), "--warehouse", str(wh))
    assert again.returncode == 0 and "committed" in again.stdout, again.stderr
    tally("read-only or full-disk failures leaving the warehouse readable and unchanged")


def _usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_full_disk_fails_cleanly_leaves_the_tables_and_a_rerun_succeeds(tmp_path, inputs):
    mount = _can_mount(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    if mount:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], check=True)
    try:
        wh = disk / "wh"
        assert _run("init", "--warehouse", str(wh)).returncode == 0
        first = _run("ingest", "salesforce", "Contact", str(inputs[0]), "--warehouse", str(wh))
        assert first.returncode == 0, first.stderr
        before = snapshot(wh)
        # What the batch writes, measured on a copy (the formats' sizes change with
        # compression and layout, so the limits below follow them instead of fixed sizes).
        probe = disk / "probe"
        shutil.copytree(wh, probe)
        used = shutil.disk_usage(disk).used
        copied = {p: p.stat().st_size for p in probe.rglob("*") if p.is_file()}
        probed = _run("ingest", "salesforce", "Contact", str(inputs[1]), "--warehouse", str(probe))
        assert probed.returncode == 0, probed.stderr
        footprint = shutil.disk_usage(disk).used - used
        now = {p: p.stat().st_size for p in probe.rglob("*") if p.is_file()}
        largest = max(size for p, size in now.items() if copied.get(p) != size)
        shutil.rmtree(probe)
        ballast = disk / "ballast"
        if mount:
            # Fill the file system up to a third of what the batch needs: it cannot all fit.
            free = shutil.disk_usage(disk).free
            ballast.write_bytes(b"\0" * (free - footprint // 3))
            failed = _run("ingest", "salesforce", "Contact", str(inputs[1]), "--warehouse", str(wh))
        else:
            # The batch's largest file cannot be written whole: it fails with EFBIG.
            failed = _run(
                "ingest",
                "salesforce",
                "Contact",
                str(inputs[1]),
                "--warehouse",
                str(wh),
                limit_bytes=largest // 2,
            )
        line = _assert_clean_failure(failed)
        assert "No space left on device" in line or "File too large" in line, line
        # Every table opens and holds what it held before the failed batch.
        assert differences(before, snapshot(wh)) == [], failed.stderr
        ballast.unlink(missing_ok=True)
        again = _run("ingest", "salesforce", "Contact", str(inputs[1]), "--warehouse", str(wh))
        assert again.returncode == 0 and "committed" in again.stdout, again.stderr
        assert _usage(wh) > 0
        tally("read-only or full-disk failures leaving the warehouse readable and unchanged")
    finally:
        if mount:
            subprocess.run(["umount", str(disk)], check=True)
