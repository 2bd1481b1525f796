"""The intake's landing folder and its micro-batch worker.

:meth:`Intake.accept` acknowledges a request only once its rows are on disk (written,
``fsync``-ed, renamed); the worker thread cuts what is pending into micro-batches,
ingests each and only then retires its files, so a crash at any point loses nothing
and re-runs nothing twice (see :mod:`aag.serving.intake`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aag.config import DEFAULT_FUTURE_TOLERANCE
from aag.errors import AagError, InputError
from aag.pipeline import BatchReport
from aag.serving.intake.calls import MAX_CALL_BYTES, IdentifyCall, bronze_row

log = logging.getLogger("aag.intake")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


#: A pending ``.tmp`` older than this is a crashed write (a live one takes milliseconds).
TMP_GRACE_SECONDS = 60.0


@dataclass
class IntakeStatus:
    """What the worker has done since this process started (``/v1/status``).

    Once nothing is pending, ``accepted_calls + carried_over_calls == processed_calls``.
    """

    #: Calls this process acknowledged.
    accepted_calls: int = 0
    pending_files: int = 0
    batches: int = 0
    #: Calls in the micro-batches this process committed (landed, replays, suppressed).
    processed_calls: int = 0
    #: Of those, calls an earlier process had acknowledged (pending at a restart).
    carried_over_calls: int = 0
    #: Of those, calls of erased records: dropped by the erasure log, never landed.
    suppressed_calls: int = 0
    #: Unacknowledged ``.tmp`` files of a crashed process deleted.
    leftovers_removed: int = 0
    last_batch: dict[str, Any] | None = None
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class Intake:
    """The landing folder and its micro-batch worker for one warehouse."""

    def __init__(
        self,
        root: Path,
        ingest: Callable[[Path], BatchReport],
        interval: float = 1.0,
        after_batch: Callable[[BatchReport], None] | None = None,
        tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    ) -> None:
        """Intake under ``root`` (``<warehouse>/bronze/_intake/segment/identifies``).

        Args:
            root: The intake folder.
            ingest: Runs the ordinary ingest of one batch file.
            interval: Seconds between the worker's looks at the pending folder.
            after_batch: Called after each committed micro-batch (e.g. a gold refresh).
            tolerance: How far after its receipt a call's time may lie (the Segment
                source's ``future_tolerance_hours``); a later call is refused.
        """
        self.root = root
        self.pending = root / "pending"
        self.batch_dir = root / "batches"
        self.ingest = ingest
        self.interval = interval
        self.after_batch = after_batch
        self.tolerance = tolerance
        self.status = IntakeStatus()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Pending file name → calls in it that this process acknowledged.
        self._mine: dict[str, int] = {}

    # -- acknowledging ------------------------------------------------------------------
    def accept(self, calls: list[IdentifyCall]) -> int:
        """Land a request's calls durably; returns how many. Nothing is written on error."""
        now = datetime.now(UTC)
        rows = [bronze_row(c, now, self.tolerance) for c in calls]
        lines = []
        for row in rows:
            line = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
            if len(line.encode("utf-8")) > MAX_CALL_BYTES:
                raise InputError(f"call {row['message_id']} is larger than {MAX_CALL_BYTES // 1024} KB")
            lines.append(line)
        self.pending.mkdir(parents=True, exist_ok=True)
        # Names sort by arrival, so a micro-batch keeps the order calls came in.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.jsonl"
        # Noted before the rename: the worker may cut the file the moment it appears.
        with self._lock:
            self._mine[name] = len(rows)
        try:
            _write_durably(self.pending / name, ("\n".join(lines) + "\n").encode("utf-8"))
        except BaseException:
            with self._lock:
                self._mine.pop(name, None)
            raise
        with self._lock:
            self.status.accepted_calls += len(rows)
        self._wake.set()
        return len(rows)

    # -- processing ---------------------------------------------------------------------
    def _pending_files(self) -> list[Path]:
        if not self.pending.exists():
            return []
        return sorted(p for p in self.pending.glob("*.jsonl"))

    def _cut_batch(self, files: list[Path]) -> Path:
        """Concatenate pending files into a batch file and record its members."""
        self.batch_dir.mkdir(parents=True, exist_ok=True)
        batch_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        batch = self.batch_dir / f"intake-{batch_id}.jsonl"
        # The member list goes first: a batch never exists without it, so a restart
        # that re-runs the batch also retires its pending files instead of cutting
        # them into a second batch (the data would dedupe, the counters would not).
        members = {"files": [p.name for p in files]}
        _write_durably(batch.with_suffix(".json"), json.dumps(members).encode("utf-8"))
        _write_durably(batch, b"".join(p.read_bytes() for p in files))
        return batch

    def _finish(self, batch: Path) -> None:
        """Delete a committed batch's pending files, then the batch itself."""
        listing = batch.with_suffix(".json")
        members = json.loads(listing.read_text(encoding="utf-8"))["files"] if listing.exists() else []
        for name in members:
            (self.pending / name).unlink(missing_ok=True)
        # Batch before list: a list left alone is a leftover, a batch would re-run.
        batch.unlink(missing_ok=True)
        listing.unlink(missing_ok=True)

    def _run_batch(self, batch: Path) -> None:
        listing = batch.with_suffix(".json")
        members = json.loads(listing.read_text(encoding="utf-8"))["files"] if listing.exists() else []
        calls = sum(1 for line in batch.read_bytes().splitlines() if line.strip())
        report = self.ingest(batch)
        with self._lock:
            # Under the lock: the status never shows the files gone but not yet counted.
            self._finish(batch)
            mine = sum(self._mine.pop(name, 0) for name in members)
            self.status.batches += 1
            self.status.processed_calls += calls
            self.status.carried_over_calls += max(calls - mine, 0)
            self.status.suppressed_calls += report.rows_suppressed
            self.status.last_batch = report.as_dict()
            self.status.last_error = None
        if self.after_batch:
            self.after_batch(report)

    def process_once(self) -> int:
        """Process what is pending now; returns the number of micro-batches committed.

        One worker per intake folder, across processes (two ``aag serve`` on one
        warehouse): the other's turn is skipped, not waited for.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".worker.lock").open("a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            try:
                self._drop_leftovers()
                done = 0
                # A batch cut before a crash (or a failed attempt) goes first, as it was cut.
                cut = sorted(self.batch_dir.glob("intake-*.jsonl")) if self.batch_dir.exists() else []
                for batch in cut:
                    self._run_batch(batch)
                    done += 1
                files = self._pending_files()
                if files:
                    self._run_batch(self._cut_batch(files))
                    done += 1
                return done
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _drop_leftovers(self) -> None:
        """Delete the temporary files of a process killed while writing them.

        Safe by construction: a pending ``.tmp`` was never acknowledged (the ``200``
        follows the rename), and a batch ``.tmp`` is rewritten from the pending files,
        which stay until their batch commits. Batch files are written only under the
        worker lock (held here), so any of them is a leftover; a pending one may be a
        live request's, so only one older than :data:`TMP_GRACE_SECONDS` goes.
        """
        removed = 0
        now = time.time()
        for folder, grace in ((self.batch_dir, 0.0), (self.pending, TMP_GRACE_SECONDS)):
            if not folder.exists():
                continue
            for path in folder.glob(".*"):
                if not (path.name.endswith(".tmp") or path.name.endswith(".erase")):
                    continue
                # An erasure's rewrite (.erase) also runs under the worker lock.
                limit = 0.0 if path.name.endswith(".erase") else grace
                try:
                    if now - path.stat().st_mtime >= limit:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        if self.batch_dir.exists():
            # A member list whose batch was never written (killed in between).
            for listing in self.batch_dir.glob("intake-*.json"):
                if not listing.with_suffix(".jsonl").exists():
                    listing.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.warning("removed %d unacknowledged temporary intake file(s) of a crashed process", removed)
            with self._lock:
                self.status.leftovers_removed += removed

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.process_once()
            except AagError as exc:
                # Busy warehouse or a rejected batch: keep the files, report, retry later.
                with self._lock:
                    self.status.last_error = str(exc)
                    self.status.errors = [*self.status.errors[-9:], str(exc)]
                log.warning("intake batch not committed: %s", exc)
            except Exception as exc:
                with self._lock:
                    self.status.last_error = f"{type(exc).__name__}: {exc}"
                    self.status.errors = [*self.status.errors[-9:], self.status.last_error]
                log.exception("intake worker error")
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> None:
        """Start the worker thread (it first finishes batches cut before a restart)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="aag-intake", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker after the batch in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        with self._lock:
            self.status.pending_files = len(self._pending_files())
            return {
                "accepted_calls": self.status.accepted_calls,
                "pending_files": self.status.pending_files,
                "batches": self.status.batches,
                "processed_calls": self.status.processed_calls,
                "carried_over_calls": self.status.carried_over_calls,
                "suppressed_calls": self.status.suppressed_calls,
                "leftovers_removed": self.status.leftovers_removed,
                "last_batch": self.status.last_batch,
                "last_error": self.status.last_error,
                "recent_errors": list(self.status.errors),
            }
