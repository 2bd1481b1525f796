-- One row per entity x attribute: the winning current value (SPEC §4, macro
-- resolve_winner) with its source, field time, confidence and the number of current
-- values that competed. A customer's entity is its identity cluster: the current
-- edges of all its records compete. Companies and assets are their own entities.
with current_edges as (
    select
        source_node_id,
        target_node_id,
        rel_type,
        updated_at,
        confidence,
        source_system,
        source_event_id
    from {{ source('silver', 'relationships') }}
    where
        is_current
        and rel_type != 'SAME_AS'
),

candidates as (
    select
        coalesce(r.customer_id, e.source_node_id) as entity_id,
        a.attribute,
        e.rel_type,
        e.target_node_id,
        v.value,
        e.updated_at,
        e.confidence,
        e.source_system,
        e.source_event_id,
        e.source_node_id as record_entity_id
    from current_edges as e
    inner join {{ ref('attribute_catalog') }} as a
        on e.rel_type = a.rel_type
    inner join {{ source('silver', 'nodes') }} as v
        on e.target_node_id = v.node_id
    left join {{ ref('customer_records') }} as r
        on e.source_node_id = r.record_entity_id
    where v.value is not null
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
