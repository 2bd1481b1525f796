"""Flat edges and relationships rows: the two shapes of one edge version.

The rules work on flat edges (:data:`aag.rules.FLAT_EDGES`: lineage as columns); the
``relationships`` table keeps the lineage in a ``properties`` map. These turn one into the
other in Arrow, for the stores and the read commands.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aag.engine.duckdb import local_connection
from aag.model import RELATIONSHIPS
from aag.rules import FLAT_EDGES, ISO_FORMAT, flatten_sql


def flatten_edges(relationships: pa.Table | pa.RecordBatchReader, where: str = "") -> pa.Table:
    """Relationships rows → flat edges (:data:`aag.rules.FLAT_EDGES`)."""
    con = local_connection()
    con.register("rel_src", relationships)
    try:
        sql = flatten_sql("rel_src") + (f" WHERE {where}" if where else "")
        out: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister("rel_src")
    return out.cast(FLAT_EDGES)


#: Lineage keys of a version's ``properties``, in map order. Open versions carry the last
#: two; closed versions all five (as :func:`aag.rules.unflatten_sql` writes them).
_LINEAGE_KEYS = ("valid_to", "closed_by", "closed_by_event", "source_field", "batch_id")
_OPEN_KEYS = 2
#: Rows per relationships batch handed to the writer. delta-rs keeps a number of batches in
#: flight, so smaller ones bound that memory: 5.5M rows peaked at +0.97 GB in 64k-row
#: batches and +0.48 GB in 16k-row ones, at the same speed.
_UNFLATTEN_ROWS = 16 * 1024


def unflatten_batch(flat: pa.RecordBatch) -> pa.RecordBatch:
    """Flat edges (:data:`aag.rules.FLAT_EDGES`) → relationships rows, built in Arrow.

    Equal to :func:`aag.rules.unflatten_sql` row for row (a test holds them together), and
    about twice as fast for a large append: a per-row ``MAP(...)`` in SQL cost more than
    encoding the rest of the row.
    """
    if flat.schema != FLAT_EDGES:  # e.g. from an engine with other string or time types
        flat = flat.cast(FLAT_EDGES)
    n = flat.num_rows
    kept = [flat.column(f.name) for f in RELATIONSHIPS if f.name != "properties"]
    if flat.column("valid_to").null_count == n:
        # Open versions only (every batch of an initial load): the same two keys in every
        # row, so the layout is fixed and only the values are gathered.
        offsets, keys, order = _open_layout(n)
        values = pa.concat_arrays([flat.column(k) for k in _LINEAGE_KEYS[-_OPEN_KEYS:]]).take(order)
        properties = pa.MapArray.from_arrays(
            offsets, keys, values, type=RELATIONSHIPS.field("properties").type
        )
        return pa.RecordBatch.from_arrays([*kept, properties], schema=RELATIONSHIPS)
    closed = flat.column("valid_to").is_valid().to_numpy(zero_copy_only=False)
    slots = len(_LINEAGE_KEYS)
    slot = np.broadcast_to(np.arange(slots), (n, slots))
    present = closed[:, None] | (slot >= slots - _OPEN_KEYS)
    # The values of every slot side by side (slot j of row i at j*n + i), then picked in
    # row order for the slots each row carries.
    stamp = pc.strftime(flat.column("valid_to"), format=ISO_FORMAT.replace(".%f", ""))
    columns = [stamp, *(flat.column(k) for k in _LINEAGE_KEYS[1:])]
    values = pa.concat_arrays([c.cast(pa.string()) for c in columns])
    picked = (slot * n + np.arange(n)[:, None])[present]
    offsets = np.concatenate(([0], np.cumsum(present.sum(axis=1)))).astype(np.int32)
    properties = pa.MapArray.from_arrays(
        pa.array(offsets),
        pa.array(_LINEAGE_KEYS).take(pa.array(slot[present])),
        values.take(pa.array(picked)),
        type=RELATIONSHIPS.field("properties").type,
    )
    return pa.RecordBatch.from_arrays([*kept, properties], schema=RELATIONSHIPS)


@functools.lru_cache(maxsize=4)
def _open_layout(n: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Offsets, keys and value order of ``n`` open versions' maps (cached: batches repeat sizes)."""
    offsets = pa.array(np.arange(0, _OPEN_KEYS * n + 1, _OPEN_KEYS, dtype=np.int32))
    keys = pa.array(_LINEAGE_KEYS[-_OPEN_KEYS:] * n, pa.string())
    # Row i's values sit at i (first key) and n + i (second key) of the concatenated columns.
    order = pa.array(np.stack([np.arange(n), np.arange(n) + n], axis=1).ravel())
    return offsets, keys, order


def relationships_stream(flat: pa.RecordBatchReader, *more: Any) -> pa.RecordBatchReader:
    """Relationships rows from a stream of flat edges, then from further row streams.

    Args:
        flat: Flat edges (:data:`aag.rules.FLAT_EDGES`).
        more: Zero-argument callables opening streams of relationships rows; each is
            opened only after the one before it is read to the end (an engine may hold
            one open result at a time).
    """

    def batches() -> Any:
        for batch in flat:
            for start in range(0, batch.num_rows, _UNFLATTEN_ROWS):
                yield unflatten_batch(batch.slice(start, _UNFLATTEN_ROWS))
        for opener in more:
            for batch in opener():
                yield batch.cast(RELATIONSHIPS)

    return pa.RecordBatchReader.from_batches(RELATIONSHIPS, batches())
