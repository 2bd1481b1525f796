"""The warehouse folder: bronze, silver, quarantine, the batch ledger, config.

Layout (``<wh>`` is a local path or an object-store URI, passed to delta-rs
unchanged)::

    <wh>/bronze/<source>/<object>   raw landed rows, as received (Delta)
    <wh>/silver/nodes               graph nodes (Delta, SPEC §2)
    <wh>/silver/relationships       graph edges (Delta, SPEC §2)
    <wh>/silver/edge_events         absorbed events (Delta, see aag.rules)
    <wh>/quarantine                 rows/fields that could not be used (Delta)
    <wh>/ledger/batches             one row per committed batch (Delta)
    <wh>/config/*.csv               registry and priorities (local warehouses)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from aag.config import CONFIG_FILES, REGISTRY_FILE, Config, default_config_dir, load_config
from aag.engine.dialect import in_list, lit
from aag.engine.duckdb import local_connection
from aag.errors import WarehouseError
from aag.faults import crash_point
from aag.graph.delta import DeltaIO, is_local, join
from aag.graph.ledger import BatchLog, LedgerEntry, ledger_table
from aag.graph.local_writes import drop_orphans, flocked
from aag.graph.store import DeltaGraphStore
from aag.model import BRONZE_META, ERASURES, LEDGER, QUARANTINE, ROW_STATES
from aag.selection import columns_sql, within_sql

BRONZE = pa.schema(
    [
        pa.field("_batch_id", pa.string()),
        pa.field("_row_number", pa.int64()),
        pa.field("_record_id", pa.string()),
        pa.field("_raw", pa.string()),
        pa.field("_row_digest", pa.string()),
        pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
        pa.field("_file_name", pa.string()),
        # Parsed record time and value digest of a deferrable object's row, and whether
        # its extraction was deferred (aag.pipeline.deferral); NULL for other rows.
        pa.field("_record_time", pa.timestamp("us", tz="UTC")),
        pa.field("_value_digest", pa.string()),
        pa.field("_deferred", pa.bool_()),
    ]
)
assert set(BRONZE_META) <= set(BRONZE.names)


#: Disk space a local warehouse keeps free to undo a batch that fills the disk.
RESERVE_BYTES = 1 << 20


def resolve_location(warehouse: str | None) -> str:
    """``--warehouse``, else ``$AAG_WAREHOUSE``, else ``./warehouse`` (SPEC §9)."""
    location = warehouse or os.environ.get("AAG_WAREHOUSE") or "warehouse"
    if is_local(location):
        return str(Path(location.removeprefix("file://")).expanduser().resolve())
    return location


class Warehouse(BatchLog):
    """Paths and tables of one warehouse."""

    def __init__(
        self,
        location: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        deletion_vectors: bool | None = None,
    ) -> None:
        """Open the warehouse at ``location``.

        Args:
            location: Path or URI (see :func:`resolve_location`).
            storage_options: delta-rs storage options for object stores.
            deletion_vectors: Commit replaced edge versions with deletion vectors instead
                of rewriting files (local warehouses only; object stores always use
                delta-rs's MERGE). ``None`` reads ``$AAG_DELETION_VECTORS``: on unless it
                is ``0``.
        """
        self.uri = resolve_location(location)
        self.io = DeltaIO(storage_options)
        if deletion_vectors is None:
            deletion_vectors = os.environ.get("AAG_DELETION_VECTORS", "1") != "0"
        self.graph = DeltaGraphStore(join(self.uri, "silver"), self.io, deletion_vectors)
        self.quarantine_uri = join(self.uri, "quarantine")
        self.ledger_uri = join(self.uri, "ledger", "batches")
        self.erasures_uri = join(self.uri, "ledger", "erasures")
        self._config: Config | None = None

    @property
    def local(self) -> bool:
        """Whether the warehouse is on the local file system."""
        return is_local(self.uri)

    def bronze_uri(self, source_system: str, source_object: str) -> str:
        """Delta table of one source object's landed rows."""
        return join(self.uri, "bronze", source_system, source_object)

    @property
    def config_dir(self) -> Path | None:
        """``<wh>/config`` for local warehouses that have one."""
        if not self.local:
            return None
        folder = Path(self.uri) / "config"
        return folder if (folder / REGISTRY_FILE).exists() else None

    @property
    def config(self) -> Config:
        """The registry and priorities in force for this warehouse."""
        if self._config is None:
            override = os.environ.get("AAG_CONFIG_DIR")
            self._config = load_config(Path(override) if override else self.config_dir)
        return self._config

    def is_initialised(self) -> bool:
        """Whether ``aag init`` has run here."""
        return self.io.exists(self.graph.relationships_uri)

    def require(self) -> None:
        """Raise a one-line error unless the warehouse is initialised."""
        if not self.is_initialised():
            raise WarehouseError(f"no AAG warehouse at {self.uri} (run 'aag init' first)")

    def init(self) -> list[str]:
        """Create every table and the default config that is missing (idempotent)."""
        if self.local:
            # A mistake in the config to be copied (a survivorship rule naming an unknown
            # strategy, say) stops init with its one-line error before anything is created.
            override = os.environ.get("AAG_CONFIG_DIR")
            load_config(Path(override) if override else default_config_dir())
        created = self.graph.create()
        if self.io.create(
            self.quarantine_uri,
            QUARANTINE,
            partition_by=["source_system"],
            configuration={"delta.dataSkippingStatsColumns": "source_system,source_object,batch_id"},
        ):
            created.append(self.quarantine_uri)
        if self.io.create(self.ledger_uri, LEDGER):
            created.append(self.ledger_uri)
        if self.io.create(self.erasures_uri, ERASURES):
            created.append(self.erasures_uri)
        if self.local:
            folder = Path(self.uri) / "config"
            folder.mkdir(parents=True, exist_ok=True)
            # The registry in force ($AAG_CONFIG_DIR or the packaged defaults) becomes the
            # warehouse's own copy, so later commands need no environment variable.
            override = os.environ.get("AAG_CONFIG_DIR")
            origin = Path(override) if override else default_config_dir()
            for name in CONFIG_FILES:
                if not (folder / name).exists() and (origin / name).exists():
                    shutil.copyfile(origin / name, folder / name)
                    created.append(str(folder / name))
        return created

    # -- batches ---------------------------------------------------------------------
    def batch_tables(self, source_system: str, source_object: str) -> list[str]:
        """The tables one batch of this object writes before its ledger row."""
        graph = self.graph
        return [
            self.bronze_uri(source_system, source_object),
            self.quarantine_uri,
            graph.nodes_uri,
            graph.edge_events_uri,
            graph.relationships_uri,
        ]

    def versions(self, uris: list[str]) -> dict[str, int | None]:
        """Current version of each table (``None``: no table yet)."""
        return {uri: self.io.version(uri) for uri in uris}

    def roll_back(self, versions: dict[str, int | None], batch_id: str) -> list[str]:
        """Restore every table that moved past its recorded version; returns the ones restored.

        Only for a failed batch of a local warehouse, under the writer lock: no other
        writer can have committed in between, so going back undoes exactly that batch. A
        table the batch created (its object's first bronze table) is removed again.
        """
        restored = []
        # The space the roll-back commits need, kept free for this moment.
        self._reserve_path().unlink(missing_ok=True)
        drop_orphans(self.io, [uri for uri, version in versions.items() if version is not None])
        for uri, version in versions.items():
            if version is None:
                if self.io.exists(uri):
                    shutil.rmtree(uri)
                    restored.append(uri)
            elif self.io.version(uri) != version:
                self.io.restore(uri, version, {"aag.operation": "roll back", "batch_id": batch_id})
                restored.append(uri)
        return restored

    def _reserve_path(self) -> Path:
        return Path(self.uri) / ".aag.reserve"

    def reserve(self) -> None:
        """Keep :data:`RESERVE_BYTES` of disk for undoing a batch that fills the disk.

        A batch that fails because the disk is full leaves no room for the commits that
        undo it; this file is deleted first to make that room, and written again before the
        next batch. Failing to write it means the disk is full already: the batch fails
        before it writes anything.
        """
        path = self._reserve_path()
        if path.exists() and path.stat().st_size == RESERVE_BYTES:
            return
        try:
            path.write_bytes(b"\0" * RESERVE_BYTES)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise WarehouseError(f"cannot write to the warehouse {self.uri}: {exc.strerror or exc}") from exc

    def committed_batches(self, batch_ids: list[str]) -> set[str]:
        """Which of these batches the ledger records as committed."""
        if not batch_ids:
            return set()
        found = self.io.read(
            self.ledger_uri, "batch_id", f"status = 'committed' AND batch_id IN ({in_list(batch_ids)})"
        )
        return {str(v) for v in found.column("batch_id").to_pylist()}

    def land(
        self,
        source_system: str,
        source_object: str,
        batch_id: str,
        rows: pa.Table,
        record_ids: pa.Table,
        file_name: str,
        now: pa.Scalar,
        replace: bool = True,
        states: pa.Table | None = None,
    ) -> None:
        """Write a batch's raw rows to bronze; re-landing the same batch replaces, not adds.

        Args:
            source_system: Source system.
            source_object: Source object.
            batch_id: The batch.
            rows: Landed rows (``_row_number``, ``_raw``, ...).
            record_ids: ``_row_number, record_id`` with each row's canonical record id, kept
                in bronze so erasure can find a record's raw rows.
            file_name: Name of the input file.
            now: Landing time.
            replace: Replace every bronze row of the batch (its first chunk), or append
                (later chunks of the same file).
            states: Each row's :data:`aag.model.ROW_STATES`, if the object has them.
        """
        uri = self.bronze_uri(source_system, source_object)
        if (
            not self.io.create(
                uri,
                BRONZE,
                configuration={"delta.dataSkippingStatsColumns": "_batch_id,_row_number,_landed_at"},
            )
            and replace
        ):
            # Bronze tables written before the row states existed gain their columns (once
            # per batch: its first chunk replaces, the later ones append).
            self.io.add_missing_columns(uri, BRONZE)
        con = local_connection()
        con.register("land_rows", rows.select(["_row_number", "_raw", "_row_digest"]))
        con.register("land_ids", record_ids)
        con.register("land_states", states if states is not None else ROW_STATES.empty_table())
        try:
            # Streamed into the Delta writer: raw rows are not copied once more in memory.
            data = con.sql(
                "SELECT ? AS _batch_id, r._row_number, i.record_id AS _record_id, r._raw, "
                "r._row_digest, CAST(? AS TIMESTAMPTZ) AS _landed_at, ? AS _file_name, "
                "s.record_time AS _record_time, s.value_digest AS _value_digest, s.deferred AS _deferred "
                "FROM land_rows r LEFT JOIN land_ids i USING (_row_number) "
                "LEFT JOIN land_states s USING (_row_number)",
                params=[batch_id, now.as_py(), file_name],
            ).to_arrow_reader(batch_size=100_000)
            if replace:
                self.io.replace_where(
                    uri, data.cast(BRONZE), f"_batch_id = {lit(batch_id)}", {"batch_id": batch_id}
                )
            else:
                self.io.append(uri, data.cast(BRONZE), {"batch_id": batch_id})
        finally:
            con.unregister("land_rows")
            con.unregister("land_ids")
            con.unregister("land_states")
        crash_point("bronze-landed")

    def committed_by_object(self) -> dict[tuple[str, str], list[str]]:
        """Ids of every committed batch, by ``(source_system, source_object)`` (one ledger read)."""
        if not self.io.exists(self.ledger_uri):
            return {}
        columns = "source_system, source_object, batch_id"
        ledger = self.io.read(self.ledger_uri, columns, "status = 'committed'")
        out: dict[tuple[str, str], list[str]] = {}
        for system, obj, batch in zip(*(ledger.column(i).to_pylist() for i in range(3)), strict=True):
            out.setdefault((str(system), str(obj)), []).append(str(batch))
        return out

    def bronze_of(
        self, source_system: str, source_object: str, record_ids: Iterable[str], columns: Sequence[str]
    ) -> pa.Table | None:
        """These columns of an object's bronze rows landed under these record ids.

        ``None`` when nothing of the object was ever landed.
        """
        uri = self.bronze_uri(source_system, source_object)
        if not self.io.exists(uri):
            return None
        where = within_sql("_record_id", record_ids, "postgres")
        return self.io.read(uri, columns_sql(columns, "postgres"), where)

    def write_quarantine(self, batch_id: str, rows: pa.Table, replace: bool = True) -> None:
        """Write the batch's quarantine rows (idempotent on re-runs).

        Args:
            batch_id: The batch.
            rows: Its quarantine rows (:data:`aag.model.QUARANTINE`).
            replace: Replace every quarantine row of the batch (its first chunk: clears what
                a crashed run left), or append (later chunks of the same file).
        """
        where = f"batch_id = {lit(batch_id)}"
        if not replace:
            self.io.append(self.quarantine_uri, rows.cast(QUARANTINE), {"batch_id": batch_id})
        elif rows.num_rows or self.io.read(self.quarantine_uri, "batch_id", where).num_rows:
            # With nothing to write and nothing left over, no commit at all.
            self.io.replace_where(self.quarantine_uri, rows.cast(QUARANTINE), where, {"batch_id": batch_id})
        crash_point("quarantine-written")

    def record_batches(self, entries: Sequence[LedgerEntry]) -> None:
        """Append ledger rows (the last write of their batches)."""
        self.io.append(self.ledger_uri, ledger_table(entries))

    def erased_record_keys(self, source_system: str, source_object: str) -> pa.Table:
        """``record_key`` of every erased record of this object (empty if none)."""
        if not self.io.exists(self.erasures_uri):
            return ERASURES.empty_table().select(["record_key"])
        return self.io.read(
            self.erasures_uri,
            "DISTINCT record_key",
            f"source_system = {lit(source_system)} AND source_object = {lit(source_object)}",
        )

    def log_erasure(self, rows: pa.Table) -> None:
        """Append to the erasure log (:data:`aag.model.ERASURES`)."""
        self.io.create(self.erasures_uri, ERASURES)
        self.io.append(self.erasures_uri, rows.cast(ERASURES), {"aag.operation": "erase"})

    def erasures(self) -> pa.Table:
        """The whole erasure log."""
        if not self.io.exists(self.erasures_uri):
            return ERASURES.empty_table()
        return self.io.read(self.erasures_uri).cast(ERASURES)

    def batches(self) -> pa.Table:
        """The whole ledger."""
        return self.io.read(self.ledger_uri).cast(LEDGER)

    def quarantine(self) -> pa.Table:
        """The whole quarantine table."""
        return self.io.read(self.quarantine_uri).cast(QUARANTINE)

    @property
    def intake_root(self) -> Path:
        """The Segment intake spool of ``aag serve`` (local warehouses only)."""
        return Path(self.uri) / "bronze" / "_intake" / "segment" / "identifies"

    @contextlib.contextmanager
    def intake_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Keep the intake worker (of any ``aag serve`` on this warehouse) between batches.

        The worker holds this ``flock`` while it cuts and ingests a micro-batch; an erasure
        takes it before the writer lock (the worker's order too) to rewrite the spool.
        """
        if not self.local:
            yield
            return
        with flocked(self.intake_root / ".worker.lock", timeout, "the intake worker"):
            yield

    @contextlib.contextmanager
    def writer_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Serialise writers of one local warehouse.

        Waits up to ``timeout`` seconds (default ``$AAG_LOCK_TIMEOUT``, else 120) for the
        writer before, then fails with a "warehouse busy ... retry" error. The lock is an
        ``flock``: the kernel drops it when its holder dies, even by SIGKILL. A no-op on
        object stores, where Delta's optimistic concurrency reports conflicts.
        """
        if not self.local:
            yield
            return
        with flocked(Path(self.uri) / ".aag.lock", timeout, "another aag process"):
            yield
