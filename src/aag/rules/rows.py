"""The shapes the edge rules read and write: keys, flat edge rows, lineage maps.

Stored relationships rows keep their lineage in the map ``properties``; the rules work on
them flat (:data:`FLAT_EDGES`) and build the map again for the rows they write.
"""

from __future__ import annotations

import pyarrow as pa

from aag.model import TS

KEY = "source_node_id, rel_type, source_system"

#: Flat form of a relationships row: the map ``properties`` spread into columns.
FLAT_EDGES = pa.schema(
    [
        pa.field("source_node_id", pa.string()),
        pa.field("target_node_id", pa.string()),
        pa.field("rel_type", pa.string()),
        pa.field("updated_at", TS),
        pa.field("confidence", pa.float32()),
        pa.field("is_current", pa.bool_()),
        pa.field("source_system", pa.string()),
        pa.field("source_event_id", pa.string()),
        pa.field("valid_to", TS),
        pa.field("closed_by", pa.string()),
        pa.field("closed_by_event", pa.string()),
        pa.field("source_field", pa.string()),
        pa.field("batch_id", pa.string()),
    ]
)

_EVENT_COLS = (
    "source_node_id, rel_type, source_system, target_node_id, updated_at, "
    "source_event_id, confidence, source_field, batch_id"
)
_FLAT_COLS = ", ".join(FLAT_EDGES.names)


def flatten_sql(source: str) -> str:
    """SQL reading relationships rows from ``source`` with ``properties`` spread into columns."""
    return f"""
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
       source_system, source_event_id,
       CAST(properties['valid_to'] AS TIMESTAMPTZ) AS valid_to,
       properties['closed_by'] AS closed_by,
       properties['closed_by_event'] AS closed_by_event,
       properties['source_field'] AS source_field,
       properties['batch_id'] AS batch_id
FROM {source}
"""


#: Stored relationships rows (``existing_rel``), flat.
SQL_FLATTEN = flatten_sql("existing_rel")

#: Event times written into ``properties`` (ISO 8601 UTC, microseconds).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def unflatten_sql(flat_sql: str) -> str:
    """Wrap SQL returning flat edges so it returns relationships rows (lineage in a map).

    :func:`aag.graph.store.unflatten_batch` builds the same rows from flat Arrow batches.
    """
    return f"""
SELECT source_node_id, target_node_id, rel_type, updated_at, confidence, is_current,
    source_system, source_event_id,
    CASE WHEN valid_to IS NULL
         THEN MAP(['source_field', 'batch_id'], [source_field, batch_id])
         ELSE MAP(['valid_to', 'closed_by', 'closed_by_event', 'source_field', 'batch_id'],
                  [strftime(valid_to, '{ISO_FORMAT}'), closed_by, closed_by_event, source_field,
                   batch_id])
    END AS properties
FROM ({flat_sql}) flat
"""
