"""Profile lookups from the last gold build, held in memory.

A profile request must answer in milliseconds at a million customers, so the API does
not query Delta per request: it keeps the gold exports (``customer_profile_v1``/``v2``
and ``customer_identity``) as Arrow tables with hash maps from every id a caller may
use to a row. A new ``aag build`` is picked up by a background reload (the old
snapshot serves meanwhile); a build's removal (``aag erase`` discards gold) drops the
snapshot at once, so an erased customer is never served from memory.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from aag import gold
from aag.warehouse import Warehouse


@dataclass
class Snapshot:
    """One gold build in memory."""

    stamp: tuple[int, int]
    built_at: str | None
    tables: dict[int, pa.Table]
    rows: dict[str, int]
    #: Record entity id → customer id, for records merged into another customer.
    members: dict[str, str]
    #: ``system:object:record_id`` (system and object lower-case) → customer id.
    records: dict[str, str]

    def row(self, customer_id: str, version: int) -> dict[str, Any] | None:
        """The profile row of a customer id (a member's id gives its survivor's row)."""
        customer = self.members.get(customer_id, customer_id)
        index = self.rows.get(customer)
        if index is None:
            return None
        found: dict[str, Any] = self.tables[version].slice(index, 1).to_pylist()[0]
        return found


def record_key(system: str, source_object: str, record_id: str) -> str:
    """The lookup key of a source record in :attr:`Snapshot.records`."""
    return f"{system.lower()}:{source_object.lower()}:{record_id}"


def load_snapshot(warehouse: Warehouse, stamp: tuple[int, int]) -> Snapshot:
    """Read the gold exports of the last build into memory."""
    meta = gold.manifest(warehouse) or {}
    v1 = gold.read_gold(warehouse, "customer_profile_v1")
    v2 = gold.read_gold(warehouse, "customer_profile_v2")
    ids = v2.column("customer_id").to_pylist()
    rows = {c: i for i, c in enumerate(ids)}
    # Both versions are written sorted by customer id; align v1 to v2 if that ever changes.
    if v1.column("customer_id").to_pylist() != ids:
        order = {c: i for i, c in enumerate(v1.column("customer_id").to_pylist())}
        v1 = v1.take(pa.array([order[c] for c in ids], pa.int64()))
    identity = gold.read_gold(warehouse, "customer_identity")
    members: dict[str, str] = {}
    records: dict[str, str] = {}
    for customer, system, obj, record_id, entity in zip(
        identity.column("customer_id").to_pylist(),
        identity.column("source_system").to_pylist(),
        identity.column("source_object").to_pylist(),
        identity.column("source_record_id").to_pylist(),
        identity.column("record_entity_id").to_pylist(),
        strict=True,
    ):
        if entity != customer:
            members[entity] = customer
        records[record_key(system, obj, record_id)] = customer
    return Snapshot(
        stamp=stamp,
        built_at=meta.get("built_at"),
        tables={1: v1, 2: v2},
        rows=rows,
        members=members,
        records=records,
    )


def _exports_published(warehouse: Warehouse) -> bool:
    """Whether the last build's manifest says its exports are in place."""
    try:
        meta = gold.manifest(warehouse)
    except (OSError, ValueError):
        return False
    return meta is not None and meta.get("exports", True) is not None


class ProfileIndex:
    """The current gold snapshot of a warehouse, reloaded when ``aag build`` runs again."""

    def __init__(self, warehouse: Warehouse) -> None:
        """Index for ``warehouse`` (nothing is read until :meth:`snapshot` or :meth:`load`)."""
        self.warehouse = warehouse
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._loading = False
        #: The last reload's error, if it failed (the previous snapshot keeps serving).
        self.last_error: str | None = None

    def _stamp(self) -> tuple[int, int] | None:
        if not self.warehouse.local:
            return None
        try:
            stat = (gold.gold_dir(self.warehouse) / gold.MANIFEST_FILE).stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def load(self) -> Snapshot | None:
        """Load the current build now (blocking); None when gold has not been built."""
        stamp = self._stamp()
        if stamp is None:
            self._snapshot = None
            return None
        try:
            snap = load_snapshot(self.warehouse, stamp)
        except Exception as exc:
            # Publishing is atomic, so this is a build that lost its exports (an erasure)
            # or a broken folder: answer from silver rather than from an older snapshot.
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._snapshot = None
            return None
        self.last_error = None
        self._snapshot = snap
        # Millions of long-lived objects: keep the cyclic GC from scanning them again
        # and again (a full collection would stall requests for hundreds of ms).
        gc.freeze()
        return snap

    def _reload_in_background(self) -> None:
        def run() -> None:
            try:
                self.load()
            finally:
                self._loading = False

        self._loading = True
        threading.Thread(target=run, name="aag-gold-reload", daemon=True).start()

    def snapshot(self) -> Snapshot | None:
        """The snapshot to serve from (None: no gold build, answer from silver).

        Every call looks at the manifest's file stamp (a ``stat``, microseconds), so a
        build discarded by another process stops being served by the next request.
        """
        stamp = self._stamp()
        if stamp is None:
            # Gold was discarded (an erasure) or never built: stop serving it at once.
            self._snapshot = None
            return None
        current = self._snapshot
        if current is None:
            with self._lock:
                if self._snapshot is None:
                    return self.load()
                return self._snapshot
        if current.stamp != stamp:
            if not _exports_published(self.warehouse):
                # An erasure took the exports away: stop serving them before anything else.
                self._snapshot = None
                return None
            if not self._loading:
                self._reload_in_background()
        return current
