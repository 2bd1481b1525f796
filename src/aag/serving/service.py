"""The one object the API and the MCP server call: reads, intake and erasure.

Profiles come from the gold build held in memory (:class:`~aag.serving.index.ProfileIndex`),
lineage (explanations, history, graph, bronze rows) from silver through
:class:`~aag.service.AagService`. The engine behind silver reads is one DuckDB
connection, which is not safe for concurrent use, so engine-backed reads take a lock;
profile lookups never do. Writes (the intake worker, erasure) go through a second
service with its own engine, and the warehouse's writer lock orders them against
CLI writers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.compute as pc

from aag.errors import InputError, NotFoundError, WarehouseError
from aag.normalize import InvalidValueError, normalise
from aag.pipeline import BatchReport
from aag.resolution import CUSTOMER_ATTRIBUTES
from aag.service import AagService
from aag.serving.index import ProfileIndex, record_key
from aag.serving.intake import SOURCE, IdentifyCall, Intake
from aag.serving.keys import KEYS_FILE, KeyRing

T = TypeVar("T")

#: Entity node ids are UUIDs (SPEC §2).
NODE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Seconds a monitoring report is reused (it scans every edge).
MONITOR_TTL = 30.0


class ServingService:
    """Serving over one warehouse."""

    def __init__(
        self,
        warehouse: str | None = None,
        engine: str = "local",
        intake_interval: float = 1.0,
        gold_refresh: float | None = 30.0,
    ) -> None:
        """Open a warehouse for serving.

        Args:
            warehouse: Warehouse location (SPEC §9 defaults).
            engine: Engine for silver reads and intake (``local`` or ``spark``).
            intake_interval: Seconds between the intake worker's micro-batches.
            gold_refresh: After an intake batch, rebuild gold (``aag build``, in a
                subprocess) when the last build is at least this many seconds old;
                None never rebuilds.
        """
        self.reader = AagService(warehouse, engine=engine)
        self.writer = AagService(warehouse, engine=engine)
        self.warehouse = self.reader.warehouse
        self.warehouse.require()
        self.index = ProfileIndex(self.warehouse)
        config_dir = self.warehouse.config_dir or Path(self.warehouse.uri) / "config"
        self.keys = KeyRing(config_dir / KEYS_FILE)
        self.gold_refresh = gold_refresh
        self._read_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._last_build = 0.0
        self._monitor: tuple[float, dict[str, Any]] | None = None
        #: Profile requests answered from silver, and misses answered from memory.
        self.silver_profile_reads = 0
        self.misses_from_memory = 0
        self.intake = Intake(
            self.warehouse.intake_root,
            self._ingest_batch,
            intake_interval,
            self._after_batch,
            tolerance=self.warehouse.config.future_tolerance(SOURCE[0]),
        )

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Load the gold snapshot and start the intake worker."""
        self.index.load()
        self.intake.start()

    def stop(self) -> None:
        """Stop the intake worker (after the batch in progress)."""
        self.intake.stop()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._read_lock:
            yield

    def _locked(self, call: Callable[[], T]) -> T:
        with self._reading():
            return call()

    # -- profiles ------------------------------------------------------------------------
    def profile(self, customer_id: str, version: int = 2, fresh: bool = False) -> dict[str, Any]:
        """A customer's profile: from gold, or resolved from silver now (``fresh``).

        Returns:
            ``{"profile", "served_from", "gold_built_at"}``.
        """
        if version not in (1, 2):
            raise InputError("version must be 1 or 2")
        found = None if fresh else self.profile_in_memory(customer_id, version)
        if found is not None:
            return found
        if not fresh:
            self.raise_if_unknown(customer_id)
        snap = self.index.snapshot()
        # Not in the last build (newer than it, or no build): silver has the truth.
        self.silver_profile_reads += 1
        row = self._locked(lambda: self.reader.profile(customer_id, version))
        return {"profile": row, "served_from": "silver", "gold_built_at": snap.built_at if snap else None}

    def profile_in_memory(self, customer_id: str, version: int = 2) -> dict[str, Any] | None:
        """The profile from the gold snapshot, or None (no build, or not in it).

        Never blocks on I/O beyond one ``stat``: the API answers it on its event loop.
        """
        snap = self.index.snapshot()
        row = snap.row(customer_id, version) if snap is not None else None
        if row is None or snap is None:
            return None
        return {"profile": row, "served_from": "gold", "gold_built_at": snap.built_at}

    def raise_if_unknown(self, customer_id: str) -> None:
        """Answer a miss from memory, when memory is sure.

        Raises :class:`NotFoundError` when neither the build nor silver's customers
        since the build hold the id; returns when silver has to be asked.
        """
        snap = self.index.snapshot()
        if snap is None or snap.holds(customer_id):
            return
        newer = self.index.newer_customers(snap)
        if newer is not None and customer_id not in newer:
            self.misses_from_memory += 1
            raise NotFoundError(f"no customer {customer_id!r} in the graph")

    def record_in_memory(self, source_system: str, record_id: str) -> str | None:
        """The customer id of a source record from the gold snapshot, or None."""
        snap = self.index.snapshot()
        if snap is None:
            return None
        for obj in self.warehouse.config.objects:
            if obj.source_system.lower() != source_system.lower():
                continue
            try:
                canonical = normalise(obj.id_normaliser, record_id)
            except InvalidValueError:
                continue
            if canonical:
                found = snap.records.get(record_key(obj.source_system, obj.source_object, canonical))
                if found:
                    return found
        return None

    def customer_of_record(self, source_system: str, record_id: str) -> str:
        """The customer id of a source record (any of the system's objects)."""
        config = self.warehouse.config
        objects = [o for o in config.objects if o.source_system.lower() == source_system.lower()]
        if not objects:
            raise NotFoundError(f"unknown source system {source_system!r}")
        found = self.record_in_memory(source_system, record_id)
        if found:
            return found
        return self._locked(lambda: self.reader.find_customer(source_system, record_id))

    # -- lineage (silver) ----------------------------------------------------------------
    def explain(self, customer_id: str, attribute: str) -> dict[str, Any]:
        """Winner, every competing current value, the rule, and the version history."""
        return self._locked(lambda: self.reader.explain(customer_id, attribute).as_dict())

    def history(self, customer_id: str, attribute: str) -> dict[str, Any]:
        """Every version of one attribute per source (the timeline)."""
        explained = self.explain(customer_id, attribute)
        return {k: explained[k] for k in ("customer_id", "attribute", "rel_type", "history")}

    def graph(self, entity_id: str, hops: int) -> dict[str, Any]:
        """The current graph around an entity."""
        return self._locked(lambda: self.reader.neighbourhood(entity_id, hops))

    def bronze(self, customer_id: str) -> list[dict[str, Any]]:
        """The raw rows each source sent about the customer."""
        return self._locked(lambda: self.reader.bronze_rows(customer_id))

    def lookup(self, attribute: str, value: str) -> list[str]:
        """Customers holding this (normalised) e-mail address or phone number."""
        if attribute not in ("email", "phone"):
            raise InputError("lookup is by email or phone")
        return self._locked(lambda: self.reader.lookup(attribute, value))

    def search(self, query: str) -> list[dict[str, Any]]:
        """Customers matching a customer id, ``source:record id``, e-mail or phone.

        Returns:
            Up to 20 matches, each with the customer id, how it matched, and the
            profile's name and e-mail for display.
        """
        text = query.strip()
        if not text or len(text) > 320:
            raise InputError("search needs 1 to 320 characters")
        found: list[tuple[str, str]] = []
        # Only a node-id-shaped text is worth a look-up in the nodes table.
        if NODE_ID.fullmatch(text) and self._exists(text):
            found.append((self._locked(lambda: self.reader.survivor(text)), "customer id"))
        if ":" in text and not found:
            system, _, record_id = text.partition(":")
            with suppress(NotFoundError, InputError):
                found.append((self.customer_of_record(system, record_id), f"{system} record"))
        for attribute, plausible in (("email", "@" in text), ("phone", any(c.isdigit() for c in text))):
            if plausible and not found:
                # Winning values from memory first; silver also knows the non-winning ones.
                holders = self._winners_holding(attribute, text) or self._try_lookup(attribute, text)
                found += [(c, attribute) for c in holders]
        if not found:
            found += [(c, "name") for c in self._by_name(text)]
        out = []
        for customer_id, how in found[:20]:
            row = self.profile(customer_id, 1)["profile"]
            out.append(
                {
                    "customer_id": row["customer_id"],
                    "matched_by": how,
                    "full_name": row.get("full_name"),
                    "email": row.get("email"),
                }
            )
        return out

    def _winners_holding(self, attribute: str, text: str) -> list[str]:
        """Customers of the last gold build whose winning ``attribute`` equals ``text`` normalised."""
        snap = self.index.snapshot()
        if snap is None:
            return []
        try:
            normalised = normalise(self.reader.attribute_spec(attribute)[2], text)
        except InvalidValueError:
            return []
        if not normalised:
            return []
        v1 = snap.tables[1]
        hits = pc.equal(v1.column(attribute), normalised)
        return [str(c) for c in v1.filter(hits).column("customer_id").to_pylist()]

    def _by_name(self, text: str, limit: int = 20) -> list[str]:
        """Customers of the last gold build whose name contains ``text`` (case-insensitive)."""
        snap = self.index.snapshot()
        if snap is None:
            return []
        v1 = snap.tables[1]
        hits = pc.match_substring(pc.fill_null(v1.column("full_name"), ""), text, ignore_case=True)
        return [str(c) for c in v1.filter(hits).column("customer_id").to_pylist()[:limit]]

    def _exists(self, entity_id: str) -> bool:
        snap = self.index.snapshot()
        if snap is not None and (entity_id in snap.rows or entity_id in snap.members):
            return True
        return self._locked(lambda: self.reader.customer_exists(entity_id))

    def _try_lookup(self, attribute: str, value: str) -> list[str]:
        try:
            return self.lookup(attribute, value)
        except InputError:
            return []

    def monitor(self) -> dict[str, Any]:
        """The monitoring report (reused for :data:`MONITOR_TTL` seconds)."""
        now = time.monotonic()
        if self._monitor is None or now - self._monitor[0] > MONITOR_TTL:
            report = self._locked(lambda: self.reader.monitor().as_dict())
            self._monitor = (now, report)
        return self._monitor[1]

    def attributes(self) -> list[str]:
        """Canonical attributes, in profile order."""
        return list(CUSTOMER_ATTRIBUTES)

    def status(self) -> dict[str, Any]:
        """Gold snapshot, intake and warehouse facts for the status endpoint."""
        snap = self.index.snapshot()
        intake = self.intake.snapshot()
        intake["last_error"] = self._public(intake["last_error"])
        intake["recent_errors"] = [self._public(e) for e in intake["recent_errors"]]
        if intake["last_batch"]:
            # The batch file's name, not where it lies on the server.
            last = dict(intake["last_batch"])
            last["file"] = Path(str(last.get("file") or "")).name or None
            intake["last_batch"] = last
        return {
            # Its name only: where the warehouse lives on the server is not a reader's business.
            "warehouse": self.warehouse_name,
            "gold_built_at": snap.built_at if snap else None,
            "gold_customers": len(snap.rows) if snap else 0,
            "gold_reload_error": self._public(self.index.last_error),
            "profiles_read_from_silver": self.silver_profile_reads,
            "misses_answered_from_memory": self.misses_from_memory,
            "intake": intake,
        }

    @property
    def warehouse_name(self) -> str:
        """The warehouse's last path segment (``wh`` for ``/srv/data/wh``)."""
        return self.warehouse.uri.rstrip("/").rsplit("/", 1)[-1] or self.warehouse.uri

    def _public(self, message: str | None) -> str | None:
        """A message with the warehouse's location replaced by its name."""
        if message is None:
            return None
        return message.replace(self.warehouse.uri.rstrip("/"), f"<{self.warehouse_name}>")

    # -- writes --------------------------------------------------------------------------
    def accept(self, calls: list[IdentifyCall]) -> int:
        """Land Segment calls durably (processing follows in the worker)."""
        return self.intake.accept(calls)

    def _ingest_batch(self, path: Path) -> BatchReport:
        return self.writer.ingest(SOURCE[0], SOURCE[1], [path])[0]

    def _after_batch(self, report: BatchReport) -> None:
        self._monitor = None
        if self.gold_refresh is None or report.status != "committed":
            return
        if time.monotonic() - self._last_build >= self.gold_refresh:
            self.refresh_gold()

    def refresh_gold(self) -> None:
        """Run ``aag build`` in a subprocess (dbt keeps global state; a process isolates it)."""
        if not self.warehouse.local or not self._build_lock.acquire(blocking=False):
            return
        try:
            env = {**os.environ, "AAG_WAREHOUSE": self.warehouse.uri}
            done = subprocess.run(
                [sys.executable, "-m", "aag", "build"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            self._last_build = time.monotonic()
            if done.returncode != 0:
                lines = [line for line in done.stderr.splitlines() if line.strip()]
                raise WarehouseError(f"gold refresh failed: {lines[-1] if lines else done.returncode}")
            self.index.load()
        finally:
            self._build_lock.release()

    def decide_identity(
        self, action: str, records: list[str], note: str, requested_by: str
    ) -> dict[str, Any]:
        """An operator's identity decision (see :meth:`AagService.decide_identity`).

        The clusters change at once in silver; gold is rebuilt as after an intake batch (the
        in-memory profiles of the two customers are stale until then).
        """
        if action not in ("link", "unlink", "undo"):
            raise InputError(f"action must be link, unlink or undo; got {action!r}")
        note = f"{note} ({requested_by})" if note else requested_by
        result = self.writer.decide_identity(action, records, note)  # type: ignore[arg-type]
        self._monitor = None
        if self.gold_refresh is not None:
            self.refresh_gold()
        return result

    def identity_decisions(self) -> list[str]:
        """The identity decisions in force, as sentences."""
        return self.writer.identity_decisions()

    def erase(self, customer_id: str, requested_by: str) -> dict[str, Any]:
        """GDPR erasure of a customer (see :meth:`AagService.erase`)."""
        result = self.writer.erase(customer_id, requested_by=requested_by)
        # The erasure took gold's exports: take the customer out of the in-memory build
        # before answering (the rest keeps serving until the next build).
        self.index.snapshot()
        self._monitor = None
        return result
