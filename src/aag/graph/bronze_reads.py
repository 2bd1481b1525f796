"""Reads of landed bronze rows, as a batch compares its rows against earlier ones.

Every read here is about rows of *committed* batches (the ledger says which), with
rows their batch quarantined treated apart: some of their events were not used, so
they never count as the same content as a new row. A :class:`LandedBronze` is one
batch's view: the ledger is read once, when first needed, and stays as it was for
the batch (the writer lock keeps other batches out meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from aag.bronze import parse_raw
from aag.engine.dialect import in_list, lit
from aag.graph.deletion_vectors import keyed_rows
from aag.graph.delta import is_local
from aag.graph.warehouse import BRONZE, Warehouse
from aag.model import ROW_STATES

#: ``_batch_id, _landed_at, _row_number, _raw`` as :meth:`LandedBronze.rows_at` returns them
#: (delta-rs reads strings as views; the rows are filtered and parsed in Arrow).
RAW_ROWS = pa.schema(
    [
        ("_batch_id", pa.string()),
        ("_landed_at", ROW_STATES.field("record_time").type),
        ("_row_number", pa.int64()),
        ("_raw", pa.string()),
    ]
)

#: A chunk reads the landed states of its own records only when they are at most this
#: many, and at most :data:`KEYED_SHARE` of the landed rows; otherwise it reads (once
#: per batch) those of every record, which then costs less.
KEYED_STATES = 100_000
KEYED_SHARE = 0.05


class LandedBronze:
    """The landed rows of committed batches, as one batch sees them.

    Args:
        warehouse: Whose bronze, quarantine and ledger are read.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._committed: dict[tuple[str, str], list[str]] | None = None
        self._columns: dict[str, list[str]] = {}
        self._states: dict[tuple[str, str], pa.Table] = {}
        self._landed_rows: dict[str, int] = {}

    def committed_ids(self, source_system: str, source_object: str) -> list[str]:
        """Ids of the object's committed batches (one ledger read serves every object)."""
        if self._committed is None:
            self._committed = self.warehouse.committed_by_object()
        return self._committed.get((source_system, source_object), [])

    def _uri(self, source_system: str, source_object: str) -> str | None:
        """The object's bronze table, ``None`` while nothing of it was ever landed."""
        uri = self.warehouse.bronze_uri(source_system, source_object)
        return uri if self.warehouse.io.exists(uri) else None

    def exists(self, source_system: str, source_object: str) -> bool:
        """Whether anything of the object was ever landed (by any batch, this one too)."""
        return self._uri(source_system, source_object) is not None

    def _has_column(self, uri: str, name: str) -> bool:
        # Only a column found is remembered: this batch's landing may be adding it.
        if name not in self._columns.get(uri, []):
            self._columns[uri] = self.warehouse.io.open(uri).schema().to_arrow().names
        return name in self._columns[uri]

    def _quarantined_sql(self, source_system: str, source_object: str) -> str | None:
        """A predicate true on bronze rows with quarantine entries (``None``: there are none).

        Read on every call: a batch's earlier chunks add entries of their own.
        """
        warehouse = self.warehouse
        if not warehouse.io.exists(warehouse.quarantine_uri):
            return None
        bad = warehouse.io.read(
            warehouse.quarantine_uri,
            "DISTINCT batch_id, row_number",
            f"source_system = {lit(source_system)} AND source_object = {lit(source_object)}",
        )
        if not bad.num_rows:
            return None
        pairs = zip(bad.column(0).to_pylist(), bad.column(1).to_pylist(), strict=True)
        listed = in_list(f"{b}:{r}" for b, r in pairs)
        return f"concat(_batch_id, ':', CAST(_row_number AS VARCHAR)) IN ({listed})"

    def _keyed(self, uri: str, keys: pa.Table, column: str, where: str, select: str) -> pa.Table | None:
        """``select`` of the rows whose ``column`` is in ``keys`` (``None``: read them otherwise).

        On a local table DuckDB's Parquet reader decodes the key column and the other
        columns of matching rows only; delta-rs would decode every row the filter leaves.
        """
        if not is_local(uri):
            return None
        keyed = keyed_rows(self.warehouse.io.open(uri), keys, column, where, select, without_vectors=True)
        if keyed is None:
            return None
        try:
            return keyed.reader.read_all()
        finally:
            keyed.close()

    def digests(
        self, source_system: str, source_object: str, digests: pa.Table | None = None
    ) -> pa.Table | pa.RecordBatchReader | None:
        """``_row_digest, _record_id`` of committed rows processed without quarantine entries.

        A row its batch quarantined (whole or one field) is left out, so the same content
        sent again is extracted again and quarantined again under the new batch. Given
        ``digests`` (a ``_row_digest`` column), only rows with one of them are read.
        """
        uri = self._uri(source_system, source_object)
        batches = self.committed_ids(source_system, source_object) if uri else []
        if uri is None or not batches:
            return None
        where = f"_batch_id IN ({in_list(batches)})"
        bad = self._quarantined_sql(source_system, source_object)
        if bad is not None:
            where += f" AND NOT ({bad})"
        if digests is not None:
            found = self._keyed(uri, digests, "_row_digest", where, "t._row_digest, t._record_id")
            if found is not None:
                return found
        return self.warehouse.io.reader(uri, f"SELECT _row_digest, _record_id FROM t WHERE {where}")  # noqa: S608 - ids and config values quoted by dialect.lit/in_list

    def raw(self, source_system: str, source_object: str) -> pa.RecordBatchReader | None:
        """``_raw`` of committed rows with a record id, streamed (``None``: there are none)."""
        uri = self._uri(source_system, source_object)
        batches = self.committed_ids(source_system, source_object) if uri else []
        if uri is None or not batches:
            return None
        return self.warehouse.io.reader(
            uri,
            f"SELECT _raw FROM t WHERE _batch_id IN ({in_list(batches)}) AND _record_id IS NOT NULL",  # noqa: S608 - batch ids via in_list
        )

    def rows(self, source_system: str, source_object: str, fields: tuple[str, ...]) -> pa.Table:
        """Rows of this object's committed batches, parsed from bronze like a fresh file.

        Rows without a record id (the ones their batch quarantined) are left out.

        Returns:
            ``_batch_id, _landed_at`` and the landed-row columns of
            :func:`aag.bronze.read_rows` (``_row_number, _raw, _error, <fields...>``).
        """
        uri = self._uri(source_system, source_object)
        batches = self.committed_ids(source_system, source_object) if uri else []
        columns = ("_batch_id", "_landed_at", "_row_number", "_raw")
        raw = (
            self.warehouse.io.read(
                uri, ", ".join(columns), f"_batch_id IN ({in_list(batches)}) AND _record_id IS NOT NULL"
            )
            if uri is not None and batches
            else pa.schema([BRONZE.field(c) for c in columns]).empty_table()
        )
        return parse_raw(raw, fields)

    def keyed_states(self, source_system: str, source_object: str, records: int) -> bool:
        """Whether :meth:`states` of that many records reads their rows only (see :data:`KEYED_SHARE`)."""
        uri = self._uri(source_system, source_object)
        if uri is None or records > KEYED_STATES:
            return False
        if uri not in self._landed_rows:
            # From the log's file statistics, once per batch (its own chunks add a little).
            actions = pa.table(self.warehouse.io.open(uri).get_add_actions(flatten=True))
            counts = actions.column("num_records") if "num_records" in actions.column_names else None
            self._landed_rows[uri] = int(pc.sum(counts).as_py() or 0) if counts is not None else 0
        return records <= KEYED_SHARE * self._landed_rows[uri]

    def states(
        self,
        source_system: str,
        source_object: str,
        batch_id: str | None,
        record_ids: pa.Array | None = None,
    ) -> pa.Table | None:
        """``record_id, record_time, value_digest`` of the landed rows of the object's records.

        Rows of committed batches, and of ``batch_id`` (this batch's earlier chunks) if given.
        A row with quarantine entries keeps its time but loses its digest: some of its events
        may have been used, so it equals no other row. Rows equal in all three columns are
        given once (a byte-identical re-sync lands each row again): what the comparison asks
        (the latest time, a missing time or digest, how many digests) does not count them.
        The committed batches' part is read once per batch, unless ``record_ids`` (the
        records asked about) are few: then only their rows are read.
        """
        uri = self._uri(source_system, source_object)
        committed = self.committed_ids(source_system, source_object)
        if uri is None or not (committed or batch_id):
            return None
        if record_ids is not None and self.keyed_states(source_system, source_object, len(record_ids)):
            keys = pa.table({"_record_id": pa.array(record_ids).cast(pa.string())})
            batches = committed + ([batch_id] if batch_id else [])
            found = self._keyed_states(uri, source_system, source_object, batches, keys)
            if found is not None:
                return found
        parts = []
        if committed:
            key = (source_system, source_object)
            if key not in self._states:
                self._states[key] = self._state_rows(uri, source_system, source_object, committed)
            parts.append(self._states[key])
        if batch_id:
            parts.append(self._state_rows(uri, source_system, source_object, [batch_id]))
        return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]

    def _digest_sql(self, source_system: str, source_object: str) -> str:
        """The value digest column, NULL on rows with quarantine entries."""
        bad = self._quarantined_sql(source_system, source_object)
        return "_value_digest" if bad is None else f"CASE WHEN {bad} THEN NULL ELSE _value_digest END"

    def _keyed_states(
        self, uri: str, source_system: str, source_object: str, batches: list[str], keys: pa.Table
    ) -> pa.Table | None:
        """:meth:`_state_rows` of the records in ``keys`` (``None``: not readable that way)."""
        digest = self._digest_sql(source_system, source_object)
        where = f"_batch_id IN ({in_list(batches)})"
        select = f"DISTINCT t._record_id, t._record_time, {digest} AS _value_digest"
        found = self._keyed(uri, keys, "_record_id", where, select)
        # The keyed read keeps the Delta columns' own names.
        return None if found is None else found.rename_columns(["record_id", "record_time", "value_digest"])

    def _state_rows(self, uri: str, source_system: str, source_object: str, batches: list[str]) -> pa.Table:
        digest = self._digest_sql(source_system, source_object)
        return self.warehouse.io.reader(
            uri,
            f"SELECT DISTINCT _record_id AS record_id, _record_time AS record_time, {digest} AS value_digest "  # noqa: S608 - ids and config values quoted by dialect.lit/in_list
            f"FROM t WHERE _batch_id IN ({in_list(batches)}) AND _record_id IS NOT NULL",
        ).read_all()

    def deferred(
        self, source_system: str, source_object: str, batch_id: str | None, since: datetime
    ) -> pa.Table | None:
        """``_batch_id, _row_number, _record_id, _record_time`` of deferred rows from ``since`` on.

        Those of committed batches, and of ``batch_id`` (this batch's earlier chunks) if given.
        ``None`` when the object has no such batch, or its bronze predates row states.
        """
        uri = self._uri(source_system, source_object)
        batches = self.committed_ids(source_system, source_object) + ([batch_id] if batch_id else [])
        if uri is None or not batches or not self._has_column(uri, "_deferred"):
            return None
        return self.warehouse.io.read(
            uri,
            "_batch_id, _row_number, _record_id, _record_time",
            f"_deferred AND _record_time >= TIMESTAMP '{since.astimezone(UTC).isoformat()}' "
            f"AND _batch_id IN ({in_list(batches)})",
        )

    def rows_at(self, source_system: str, source_object: str, wanted: pa.Table) -> pa.Table:
        """:data:`RAW_ROWS` of the rows ``wanted`` names (its ``_batch_id, _row_number``)."""
        uri = self.warehouse.bronze_uri(source_system, source_object)
        batches = wanted.column("_batch_id").cast(pa.string())
        parts = []
        for batch in sorted(set(batches.to_pylist())):
            numbers = wanted.column("_row_number").filter(pc.equal(batches, batch))
            listed = ", ".join(str(int(n)) for n in numbers.to_pylist())
            parts.append(
                self.warehouse.io.read(
                    uri,
                    ", ".join(RAW_ROWS.names),
                    f"_batch_id = {lit(str(batch))} AND _row_number IN ({listed})",
                )
            )
        return pa.concat_tables([p.cast(RAW_ROWS) for p in parts] or [RAW_ROWS.empty_table()])


__all__ = ["RAW_ROWS", "LandedBronze"]
