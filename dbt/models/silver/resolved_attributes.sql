-- One row per entity x attribute: the winning current value (SPEC §4, macro
-- resolve_winner) with its source, field time, confidence and the number of current
-- values that competed. A customer's entity is its identity cluster: the current
-- edges of all its records compete. Companies and assets are their own entities.
with candidates as (
    {{ attribute_candidates() }}
),

winners as (
    {{ resolve_winner('candidates') }}
)

select
    entity_id,
    attribute,
    rel_type,
    value,
    target_node_id as value_node_id,
    source_system,
    source_event_id,
    record_entity_id,
    updated_at,
    confidence,
    priority,
    competing_values
from winners
