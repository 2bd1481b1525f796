"""Table schemas of the warehouse (SPEC §2 for the two graph tables).

Timestamps are UTC instants (Arrow ``timestamp[us, UTC]``, Delta/Spark
``TIMESTAMP``). The ``properties`` maps of edges carry the version's lineage
(``valid_to``, ``source_field``, ...); see :data:`EDGE_PROPERTY_KEYS`.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
PROPS = pa.map_(pa.string(), pa.string())

NODES = pa.schema(
    [
        pa.field("node_id", pa.string()),
        pa.field("node_type", pa.string()),
        pa.field("value", pa.string()),
        pa.field("checksum", pa.string()),
        pa.field("created_at", TS),
        pa.field("properties", PROPS),
    ]
)

#: A landed row's state, kept in bronze for deferral (:mod:`aag.pipeline.deferral`): its
#: parsed record time, a digest of its values but the record time, and whether its
#: extraction was deferred.
ROW_STATES = pa.schema(
    [
        pa.field("_row_number", pa.int64()),
        pa.field("record_time", TS),
        pa.field("value_digest", pa.string()),
        pa.field("deferred", pa.bool_()),
    ]
)

RELATIONSHIPS = pa.schema(
    [
        pa.field("source_node_id", pa.string()),
        pa.field("target_node_id", pa.string()),
        pa.field("rel_type", pa.string()),
        pa.field("updated_at", TS),
        pa.field("confidence", pa.float32()),
        pa.field("is_current", pa.bool_()),
        pa.field("source_system", pa.string()),
        pa.field("source_event_id", pa.string()),
        pa.field("properties", PROPS),
    ]
)

#: The edge key K (SPEC §3): one source entity's one attribute as one system states it.
#: Every version of a key is replaced together.
EDGE_KEY = pa.schema([RELATIONSHIPS.field(c) for c in ("source_node_id", "rel_type", "source_system")])

#: Keys AAG writes into ``relationships.properties``.
#: ``valid_to``: start of the next version or time of the removal that ended this one
#: (absent on the current version); ``closed_by``: ``change`` or ``removal``;
#: ``closed_by_event``: the event that ended it; ``source_field``: the source column the
#: value came from; ``batch_id``: the batch that brought the version's first event.
EDGE_PROPERTY_KEYS = ("valid_to", "closed_by", "closed_by_event", "source_field", "batch_id")

#: One field-level event, the unit the edge rules work on (internal, engine-neutral).
#: ``target_node_id`` NULL means "value removed".
FIELD_EVENTS = pa.schema(
    [
        pa.field("source_node_id", pa.string()),
        pa.field("rel_type", pa.string()),
        pa.field("source_system", pa.string()),
        pa.field("target_node_id", pa.string()),
        pa.field("updated_at", TS),
        pa.field("source_event_id", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("source_field", pa.string()),
        pa.field("batch_id", pa.string()),
    ]
)

#: Events that a version absorbed (later events of a run, repeated removals). They are
#: the only events not visible in ``relationships`` itself, and keeping them is what lets
#: a late event split a run exactly as if all events had arrived in order (SPEC §3).
EDGE_EVENTS = FIELD_EVENTS

QUARANTINE = pa.schema(
    [
        pa.field("source_system", pa.string()),
        pa.field("source_object", pa.string()),
        pa.field("batch_id", pa.string()),
        pa.field("row_number", pa.int64()),
        pa.field("record_id", pa.string()),
        pa.field("level", pa.string()),
        pa.field("source_field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("quarantined_at", TS),
    ]
)

LEDGER = pa.schema(
    [
        pa.field("batch_id", pa.string()),
        pa.field("source_system", pa.string()),
        pa.field("source_object", pa.string()),
        pa.field("file_name", pa.string()),
        pa.field("file_sha256", pa.string()),
        pa.field("status", pa.string()),
        pa.field("rows_landed", pa.int64()),
        pa.field("rows_unchanged", pa.int64()),
        pa.field("rows_suppressed", pa.int64()),
        pa.field("rows_processed", pa.int64()),
        pa.field("rows_quarantined", pa.int64()),
        pa.field("fields_rejected", pa.int64()),
        pa.field("field_events", pa.int64()),
        pa.field("nodes_written", pa.int64()),
        pa.field("edge_versions_written", pa.int64()),
        pa.field("edge_rows_rewritten", pa.int64()),
        pa.field("started_at", TS),
        pa.field("finished_at", TS),
    ]
)

#: The erasure log: who erased which customer when, and a one-way key per erased source
#: record (``sha256("system:object:record_id")``) so later batches can suppress it. It
#: holds none of the erased values.
ERASURES = pa.schema(
    [
        pa.field("erasure_id", pa.string()),
        pa.field("erased_at", TS),
        pa.field("requested_by", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("source_system", pa.string()),
        pa.field("source_object", pa.string()),
        pa.field("record_key", pa.string()),
    ]
)

#: Columns AAG adds to every landed bronze row.
BRONZE_META = ("_batch_id", "_row_number", "_landed_at", "_file_name")
