"""Segment-compatible intake: validate, land durably, process in micro-batches.

A request is acknowledged only once its calls are on disk: each accepted request is
written as one JSON Lines file (Segment ``identifies`` bronze rows, exactly the
columns of SPEC §7) to ``<warehouse>/bronze/_intake/segment/identifies/pending`` —
written to a temporary name, ``fsync``-ed, renamed, and the folder ``fsync``-ed — so a
crash after the ``200`` loses nothing.

A worker thread turns what is pending into micro-batches: it concatenates the pending
files into one batch file, records which files went in (``batches/<id>.json``), runs
the ordinary ingest of that file (bronze landing, rules, ledger), and only then deletes
the pending files. A crash anywhere in between leaves the batch file and its list; the
next start ingests it again, which the batch ledger makes a no-op if it had been
committed, and the Segment extractor keys events by ``message_id``, so a call re-sent by
a client (or re-landed in another micro-batch) changes nothing either.

The intake never takes the warehouse's writer lock to acknowledge, so events keep
arriving while a CLI ingest runs; the worker waits its turn for the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aag.config import DEFAULT_FUTURE_TOLERANCE, EARLIEST_EVENT_TIME
from aag.errors import AagError, InputError
from aag.pipeline import BatchReport

log = logging.getLogger("aag.intake")

SOURCE = ("segment", "identifies")
#: Segment's own limits: 32 KB per call, 500 KB per batch request.
MAX_CALL_BYTES = 32 * 1024
MAX_BODY_BYTES = 512 * 1024
#: Deepest JSON nesting accepted in traits (Segment traits are shallow objects).
MAX_DEPTH = 16


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class IdentifyCall(BaseModel):
    """One Segment ``identify`` call, as Segment's HTTP API accepts it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = None
    user_id: str | None = Field(default=None, alias="userId", max_length=1024)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=1024)
    message_id: str | None = Field(default=None, alias="messageId", max_length=512)
    timestamp: datetime | None = None
    #: When the client sent the call, by its own clock: measures its clock skew.
    sent_at: datetime | None = Field(default=None, alias="sentAt")
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _identify_only(cls, value: str | None) -> str | None:
        if value is not None and value != "identify":
            raise ValueError(f"type {value!r} is not supported here (only identify)")
        return value

    @field_validator("user_id", "anonymous_id", "message_id", mode="before")
    @classmethod
    def _string_id(cls, value: Any) -> Any:
        # Segment accepts numeric ids and sends them on as strings.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timestamp", "sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-03-01T09:05:00Z)")
        return value

    @field_validator("traits")
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_DEPTH:
            raise ValueError(f"traits nest deeper than {MAX_DEPTH} levels")
        return value


class BatchRequest(BaseModel):
    """Segment's ``/v1/batch`` body."""

    model_config = ConfigDict(extra="allow")

    batch: list[IdentifyCall] = Field(min_length=1, max_length=2500)
    #: Segment libraries stamp a batch once, when they send it: it applies to every call
    #: that has no ``sentAt`` of its own.
    sent_at: datetime | None = Field(default=None, alias="sentAt")

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-03-01T09:05:00Z)")
        return value

    def calls(self) -> list[IdentifyCall]:
        """The calls, each with the batch's ``sentAt`` where it has none of its own."""
        if self.sent_at is None:
            return self.batch
        return [c if c.sent_at else c.model_copy(update={"sent_at": self.sent_at}) for c in self.batch]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def effective_time(call: IdentifyCall, received_at: datetime) -> datetime:
    """When the call happened, corrected for the client's clock skew as Segment does.

    ``timestamp + (received_at - sentAt)`` when the call says when it was sent (the
    Segment extractor applies the same correction to the landed row); the arrival time
    when it has no ``timestamp``.

    Raises:
        OverflowError: When the correction leaves the representable years.
    """
    if call.timestamp is None:
        return received_at
    if call.sent_at is None:
        return call.timestamp
    return call.timestamp + (received_at - call.sent_at)


def bronze_row(
    call: IdentifyCall, received_at: datetime, tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
) -> dict[str, Any]:
    """A call as a Segment ``identifies`` bronze row (SPEC §7 columns, plus ``sent_at``).

    A call without ``messageId`` gets one derived from its content (without its
    ``sentAt``, which a retry changes), so an exact re-send is still recognised; without
    ``timestamp`` it is stamped with its arrival.

    Raises:
        InputError: Without ``userId`` and ``anonymousId``, or when the call's time
            (after skew correction) is before 1900 or more than ``tolerance`` after
            ``received_at`` (SPEC §11).
    """
    if not (call.user_id or "").strip() and not (call.anonymous_id or "").strip():
        raise InputError("an identify call needs userId or anonymousId")
    message_id = call.message_id
    if not message_id:
        content = call.model_dump(by_alias=True, mode="json", exclude={"sent_at"})
        canonical = json.dumps(content, sort_keys=True)
        message_id = "aag-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    _check_time(call, received_at, tolerance, message_id)
    row = {
        "message_id": message_id,
        "user_id": call.user_id,
        "anonymous_id": call.anonymous_id,
        "timestamp": _iso(call.timestamp or received_at),
        "received_at": _iso(received_at),
        "traits": call.traits,
    }
    if call.timestamp is not None and call.sent_at is not None:
        # Landed as sent: the extractor corrects the skew from these three times.
        row["sent_at"] = _iso(call.sent_at)
    return row


def _check_time(call: IdentifyCall, received_at: datetime, tolerance: timedelta, message_id: str) -> None:
    """Reject a call whose corrected time is out of range (one readable line)."""
    try:
        when = effective_time(call, received_at)
        ok = EARLIEST_EVENT_TIME <= when <= received_at + tolerance
        shown = _iso(when)
    except OverflowError:
        ok, shown = False, "beyond the representable years"
    if ok:
        return
    corrected = " (corrected for clock skew with sentAt)" if call.timestamp and call.sent_at else ""
    hours = tolerance.total_seconds() / 3600
    raise InputError(
        f"call {message_id}: event time out of range: timestamp{corrected} is {shown}; "
        f"accepted are times from {EARLIEST_EVENT_TIME:%Y-%m-%d} to {hours:g} h after receipt"
    )


def parse_calls(body: bytes, batch: bool) -> list[IdentifyCall]:
    """Validate a request body; raises :class:`InputError` with one readable line.

    Args:
        body: The raw request body (already size-checked).
        batch: Whether it is a ``/v1/batch`` body (else one identify call).
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise InputError("body nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object")
    try:
        # JSON may escape a lone UTF-16 surrogate ("\ud800"), which is no character:
        # it could be neither landed as UTF-8 nor read back.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise InputError(f"body holds a lone surrogate ({bad}), which is not valid Unicode") from None
    try:
        if batch:
            return BatchRequest.model_validate(data).calls()
        call = IdentifyCall.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from None
    except RecursionError:
        raise InputError("body nests too deeply") from None
    return [call]


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
