"""Writes to a local warehouse that survive a crash or a second writer.

Object stores have Delta's optimistic concurrency; a local warehouse has one writer at a
time, serialised by an ``flock`` (:func:`flocked`), and undoes a failed batch itself,
which first removes the files the failed write left behind (:func:`drop_orphans`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aag.errors import ConflictError, WarehouseError
from aag.graph.deletion_vectors import Descriptor
from aag.graph.delta import DeltaIO


def drop_orphans(io: DeltaIO, uris: list[str]) -> None:
    """Delete files no version of their table references: a failed write's leftovers.

    Referenced are the data files of ``add`` actions, the change data files of ``cdc``
    actions and the deletion vector files either names.

    A write that fails half-way (a full disk) leaves its partial files behind, and on a
    full disk they hold the very space the roll-back commit needs. Under the writer lock
    a file that no version of the table's log adds can only be such a leftover.
    """
    for uri in uris:
        if not io.exists(uri):
            continue
        table = io.open(uri)
        known: set[str] = set()
        for version in range(int(table.version()) + 1):
            log = Path(uri) / "_delta_log" / f"{version:020d}.json"
            if log.exists():
                for line in log.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        known.update(_referenced(json.loads(line)))
        root = Path(uri)
        for path in root.rglob("*"):
            if "_delta_log" in path.parts or not path.is_file():
                continue
            relative = urllib.parse.unquote(str(path.relative_to(root)))
            if relative not in {urllib.parse.unquote(k) for k in known}:
                path.unlink(missing_ok=True)


def _referenced(action: dict[str, Any]) -> set[str]:
    """Files of the table one log action names: data and change files, deletion vectors."""
    out: set[str] = set()
    for kind in ("add", "remove", "cdc"):
        body = action.get(kind)
        if not body:
            continue
        if kind != "remove":
            out.add(body["path"])
        vector = body.get("deletionVector")
        if vector:
            name = Descriptor.from_json(vector).file_name()
            if name:
                out.add(name)
    return out


@contextlib.contextmanager
def flocked(path: Path, timeout: float | None, holder: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, waited for up to ``timeout`` seconds."""
    if timeout is None:
        timeout = float(os.environ.get("AAG_LOCK_TIMEOUT", "120"))
    warehouse = path.parent
    try:
        warehouse.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as exc:
        raise WarehouseError(f"cannot write to the warehouse {warehouse}: {exc.strerror or exc}") from exc
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise ConflictError(f"warehouse busy: {holder} is writing to {warehouse}; retry") from exc
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
