"""Profile lookups from the last gold build, held in memory.

A profile request must answer in milliseconds at a million customers, so the API does
not query Delta per request: it keeps the gold exports (``customer_profile_v1``/``v2``
and ``customer_identity``) as Arrow tables with hash maps from every id a caller may
use to a row. A new ``aag build`` is picked up by a background reload (the old
snapshot serves meanwhile). An erasure removes the build's exports: the snapshot then
loses the erased customers before the next request is answered, and the rest of it
keeps serving until the next build.

A miss must cost no more than a hit, or random ids would load the server with silver
reads. So the index also knows which customers silver gained since the build (the
customer nodes in the ``nodes`` files added after the build's version, re-read in the
background whenever the table's log changes): an id in neither is answered 404 from
memory, and silver is read only for ids it may hold.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aag import gold
from aag.engine.duckdb import local_connection
from aag.graph.files import files_of
from aag.graph.warehouse import Warehouse


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
    #: The build's ``customer_identity`` rows (to find erased records' customers).
    identity: pa.Table | None = None
    #: The silver ``nodes`` version the build read (None: unknown).
    nodes_version: int | None = None

    def holds(self, entity_id: str) -> bool:
        """Whether the build has a profile for this customer or record entity id."""
        return entity_id in self.rows or entity_id in self.members

    def without(self, customers: set[str], stamp: tuple[int, int]) -> Snapshot:
        """This build less some customers (their rows, members and records)."""
        ids = self.tables[2].column("customer_id")
        keep = pc.invert(pc.is_in(ids, pa.array(sorted(customers), pa.string())))
        tables = {v: t.filter(keep) for v, t in self.tables.items()}
        kept = tables[2].column("customer_id").to_pylist()
        identity = self.identity
        if identity is not None:
            gone = pc.is_in(identity.column("customer_id"), pa.array(sorted(customers), pa.string()))
            identity = identity.filter(pc.invert(gone))
        return Snapshot(
            stamp=stamp,
            built_at=self.built_at,
            tables=tables,
            rows={c: i for i, c in enumerate(kept)},
            members={e: c for e, c in self.members.items() if c not in customers and e not in customers},
            records={k: c for k, c in self.records.items() if c not in customers},
            identity=identity,
            nodes_version=self.nodes_version,
        )

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
    nodes_version = (meta.get("silver_versions") or {}).get("nodes")
    return Snapshot(
        stamp=stamp,
        built_at=meta.get("built_at"),
        tables={1: v1, 2: v2},
        rows=rows,
        members=members,
        records=records,
        identity=identity.select(["customer_id", "source_system", "source_object", "source_record_id"]),
        nodes_version=int(nodes_version) if nodes_version is not None else None,
    )


def erased_customers(snap: Snapshot, warehouse: Warehouse) -> set[str]:
    """The snapshot's customers that an erasure (any in the log) took records of.

    The log keeps ``sha256(system:object:record_id)`` per erased record, so the build's
    identity rows are hashed the same way and matched; the logged customer ids, and
    the survivors they had merged into, count too.
    """
    log = warehouse.erasures().select(["record_key", "customer_id"])
    erased = {str(c) for c in log.column("customer_id").to_pylist() if c}
    if snap.identity is not None and log.num_rows:
        con = local_connection()
        con.register("snap_identity", snap.identity)
        con.register("erasure_log", log)
        try:
            found = con.sql(
                "SELECT DISTINCT i.customer_id FROM snap_identity i JOIN erasure_log l ON sha256("
                "concat(i.source_system, ':', i.source_object, ':', i.source_record_id)) = l.record_key"
            ).fetchall()
        finally:
            con.unregister("snap_identity")
            con.unregister("erasure_log")
        erased |= {str(r[0]) for r in found}
    erased |= {snap.members[e] for e in list(erased) if e in snap.members}
    return erased


def _exports_state(warehouse: Warehouse) -> str:
    """``published``, ``erased`` (an erasure removed the exports) or ``gone``."""
    try:
        meta = gold.manifest(warehouse)
    except (OSError, ValueError):
        return "gone"
    if meta is None:
        return "gone"
    if meta.get("exports", True) is not None:
        return "published"
    return "erased" if meta.get("exports_removed_by") == "erasure" else "gone"


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
        #: ((nodes log stamp, build's nodes version), customer ids silver gained since).
        self._newer: tuple[tuple[int, int], frozenset[str]] | None = None
        self._newer_loading = False

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

    def _patch_after_erasure(self, current: Snapshot, stamp: tuple[int, int]) -> Snapshot | None:
        with self._lock:
            if self._snapshot is not current:
                return self._snapshot  # another request patched it meanwhile
            try:
                patched = current.without(erased_customers(current, self.warehouse), stamp)
            except Exception as exc:
                # Not sure what was erased: serve nothing from memory rather than too much.
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._snapshot = None
                return None
            self._snapshot = patched
            return patched

    def _nodes_stamp(self) -> int | None:
        try:
            return (Path(self.warehouse.graph.nodes_uri) / "_delta_log").stat().st_mtime_ns
        except OSError:
            return None

    def newer_customers(self, snap: Snapshot) -> frozenset[str] | None:
        """Customer and record entity ids silver gained since ``snap``'s build.

        None when that is not known right now (a remote warehouse, or silver changed
        since the last look: a background re-read starts); the caller then asks silver.
        """
        if not self.warehouse.local or snap.nodes_version is None:
            return None
        stamp = self._nodes_stamp()
        known = self._newer
        if stamp is not None and known is not None and known[0] == (stamp, snap.nodes_version):
            return known[1]
        if stamp is not None and not self._newer_loading:
            self._newer_loading = True
            threading.Thread(
                target=self._read_newer, args=(stamp, snap.nodes_version), name="aag-newer-ids", daemon=True
            ).start()
        return None

    def _read_newer(self, stamp: int, version: int) -> None:
        try:
            uri = self.warehouse.graph.nodes_uri
            # Files added since the build's version hold every node created since (and
            # rewrites of older ones: a superset, which only sends a few ids to silver).
            customers = ("node_type", "customer")
            added = files_of(uri, partition=customers) - files_of(uri, version, partition=customers)
            found: set[str] = set()
            for path in sorted(added):
                table = pq.read_table(Path(uri) / path)
                if "node_type" in table.column_names:
                    table = table.filter(pc.equal(table.column("node_type"), "customer"))
                found.update(str(i) for i in table.column("node_id").to_pylist())
            self._newer = ((stamp, version), frozenset(found))
        except Exception as exc:
            # E.g. the build's version was vacuumed away: misses keep going to silver.
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._newer_loading = False

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
            state = _exports_state(self.warehouse)
            if state == "erased":
                # An erasure took the exports away: keep serving the rest of the build,
                # without the customers it erased (found before anything is answered).
                return self._patch_after_erasure(current, stamp)
            if state == "gone":
                self._snapshot = None
                return None
            if not self._loading:
                self._reload_in_background()
        return current
