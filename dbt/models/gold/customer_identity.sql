-- The identity map: one row per customer source record, the customer it belongs to
-- (the same rows as AagService.identity_map()). A record's source_record node holds
-- "system:Object:record_id"; the record id may itself contain colons.
with source_records as (
    select
        r.source_node_id as record_entity_id,
        n.value as record_key
    from {{ source('silver', 'relationships') }} as r
    inner join {{ source('silver', 'nodes') }} as n
        on r.target_node_id = n.node_id
    where
        r.rel_type = 'HAS_SOURCE_RECORD'
        and r.is_current
        and n.node_type = 'source_record'
),

split as (
    select
        record_entity_id,
        record_key,
        split_part(record_key, ':', 1) as source_system,
        split_part(record_key, ':', 2) as source_object
    from source_records
)

select
    c.customer_id,
    s.source_system,
    s.source_object,
    substr(s.record_key, length(s.source_system) + length(s.source_object) + 3) as source_record_id,
    s.record_entity_id
from split as s
inner join {{ ref('customer_records') }} as c
    on s.record_entity_id = c.record_entity_id
