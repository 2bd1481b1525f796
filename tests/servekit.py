"""Helpers for tests that run the real server: a demo warehouse with gold, keys, ``aag serve``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aag.demo import write_demo_files
from aag.service import AagService
from aag.serving.keys import KEYS_FILE, add_key, parse_scopes

SRC = Path(__file__).resolve().parents[1] / "src"


def demo_warehouse(folder: Path) -> AagService:
    """The seed demo's files ingested, and gold built."""
    svc = AagService(str(folder))
    svc.init()
    for batch, path in write_demo_files(folder / "demo-input"):
        svc.ingest(batch.source_system, batch.source_object, [path])
    svc.build()
    return svc


def make_key(svc: AagService, name: str, scopes: str) -> str:
    """A new API key of the warehouse."""
    assert svc.warehouse.config_dir is not None
    return add_key(svc.warehouse.config_dir / KEYS_FILE, name, parse_scopes(scopes))


@contextmanager
def running_server(
    warehouse: str, *args: str, log: Path, procs: list[subprocess.Popen[bytes]] | None = None
) -> Iterator[str]:
    """``aag serve --port 0`` as a subprocess; yields its base URL, stops it afterwards.

    ``procs``, if given, receives the server process (to kill it from a test).
    """
    env = {**os.environ, "PYTHONPATH": str(SRC), "AAG_WAREHOUSE": warehouse}
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aag", "serve", "--port", "0", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if procs is not None:
        procs.append(proc)
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None:
            found = re.search(r"on (http://127\.0\.0\.1:\d+/)", log.read_text())
            if found:
                url = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"aag serve did not start:\n{log.read_text()[-3000:]}")
            else:
                time.sleep(0.1)
        yield url.rstrip("/")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
