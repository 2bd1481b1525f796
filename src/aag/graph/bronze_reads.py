"""Reads of an object's landed bronze rows, as later batches compare against them.

Every read here is about rows of *committed* batches (the ledger says which), with
rows their batch quarantined treated apart: some of their events were not used, so
they never count as the same content as a new row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from aag.bronze import parse_raw
from aag.engine.dialect import in_list, lit
from aag.graph.warehouse import BRONZE, Warehouse
from aag.model import ROW_STATES


def _quarantined_sql(warehouse: Warehouse, source_system: str, source_object: str) -> str | None:
    """A predicate true on bronze rows with quarantine entries (``None``: there are none)."""
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
    return (
        f"concat(_batch_id, ':', CAST(_row_number AS VARCHAR)) IN ({in_list(f'{b}:{r}' for b, r in pairs)})"
    )


def landed_digests(
    warehouse: Warehouse, source_system: str, source_object: str
) -> pa.RecordBatchReader | None:
    """``_row_digest, _record_id`` of committed rows processed without quarantine entries.

    A row its batch quarantined (whole or one field) is left out, so the same content
    sent again is extracted again and quarantined again under the new batch.
    """
    uri = warehouse.bronze_uri(source_system, source_object)
    batches = warehouse.committed_ids(source_system, source_object) if warehouse.io.exists(uri) else []
    if not batches:
        return None
    where = f"_batch_id IN ({in_list(batches)})"
    bad = _quarantined_sql(warehouse, source_system, source_object)
    if bad is not None:
        where += f" AND NOT ({bad})"
    return warehouse.io.reader(uri, f"SELECT _row_digest, _record_id FROM t WHERE {where}")  # noqa: S608 - ids and config values quoted by dialect.lit/in_list


def landed_rows(
    warehouse: Warehouse, source_system: str, source_object: str, fields: tuple[str, ...]
) -> pa.Table:
    """Rows of this object's committed batches, parsed from bronze like a fresh file.

    Rows without a record id (the ones their batch quarantined) are left out.

    Returns:
        ``_batch_id, _landed_at`` and the landed-row columns of
        :func:`aag.bronze.read_rows` (``_row_number, _raw, _error, <fields...>``).
    """
    uri = warehouse.bronze_uri(source_system, source_object)
    batches = warehouse.committed_ids(source_system, source_object) if warehouse.io.exists(uri) else []
    columns = ("_batch_id", "_landed_at", "_row_number", "_raw")
    raw = (
        warehouse.io.read(
            uri, ", ".join(columns), f"_batch_id IN ({in_list(batches)}) AND _record_id IS NOT NULL"
        )
        if batches
        else pa.schema([BRONZE.field(c) for c in columns]).empty_table()
    )
    return parse_raw(raw, fields)


def record_states(
    warehouse: Warehouse, source_system: str, source_object: str, batch_id: str | None
) -> pa.Table | None:
    """``record_id, record_time, value_digest`` of every landed row of the object's records.

    Rows of committed batches, and of ``batch_id`` (this batch's earlier chunks) if given.
    A row with quarantine entries keeps its time but loses its digest: some of its events
    may have been used, so it equals no other row.
    """
    uri = warehouse.bronze_uri(source_system, source_object)
    batches = warehouse.committed_ids(source_system, source_object) + ([batch_id] if batch_id else [])
    if not batches or not warehouse.io.exists(uri):
        return None
    bad = _quarantined_sql(warehouse, source_system, source_object)
    digest = "_value_digest" if bad is None else f"CASE WHEN {bad} THEN NULL ELSE _value_digest END"
    return warehouse.io.read(
        uri,
        f"_record_id AS record_id, _record_time AS record_time, {digest} AS value_digest",
        f"_batch_id IN ({in_list(batches)}) AND _record_id IS NOT NULL",
    )


def deferred_rows(
    warehouse: Warehouse, source_system: str, source_object: str, batch_id: str | None, since: datetime
) -> pa.Table | None:
    """``_batch_id, _row_number, _record_id, _record_time`` of deferred rows from ``since`` on.

    Those of committed batches, and of ``batch_id`` (this batch's earlier chunks) if given.
    ``None`` when the object has no such batch, or its bronze predates row states.
    """
    uri = warehouse.bronze_uri(source_system, source_object)
    batches = warehouse.committed_ids(source_system, source_object) + ([batch_id] if batch_id else [])
    if not batches or "_deferred" not in warehouse.io.open(uri).schema().to_arrow().names:
        return None
    return warehouse.io.read(
        uri,
        "_batch_id, _row_number, _record_id, _record_time",
        f"_deferred AND _record_time >= TIMESTAMP '{since.astimezone(UTC).isoformat()}' "
        f"AND _batch_id IN ({in_list(batches)})",
    )


def rows_at(warehouse: Warehouse, source_system: str, source_object: str, wanted: pa.Table) -> pa.Table:
    """``_batch_id, _landed_at, _row_number, _raw`` of the rows ``wanted`` names (its batch, row)."""
    uri = warehouse.bronze_uri(source_system, source_object)
    parts = []
    for batch in sorted(set(wanted.column("_batch_id").to_pylist())):
        numbers = wanted.filter(pc.equal(wanted.column("_batch_id").cast(pa.string()), batch)).column(
            "_row_number"
        )
        listed = ", ".join(str(int(n)) for n in numbers.to_pylist())
        parts.append(
            warehouse.io.read(
                uri,
                "_batch_id, _landed_at, _row_number, _raw",
                f"_batch_id = {lit(str(batch))} AND _row_number IN ({listed})",
            )
        )
    # delta-rs reads strings as views; the rows are filtered and parsed in Arrow.
    plain = pa.schema(
        [
            ("_batch_id", pa.string()),
            ("_landed_at", ROW_STATES.field("record_time").type),
            ("_row_number", pa.int64()),
            ("_raw", pa.string()),
        ]
    )
    return pa.concat_tables([p.cast(plain) for p in parts] or [plain.empty_table()])


__all__ = ["deferred_rows", "landed_digests", "landed_rows", "record_states", "rows_at"]
