-- The identity map: one row per customer source record, the customer it belongs to
-- (the same rows as AagService.identity_map()). A record's source_record node holds
-- "system:Object:record_id"; the record id may itself contain colons. Incremental:
-- the rows of the affected customers are redone.
{{ config(
    materialized='incremental',
    unique_key='record_entity_id',
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}
-- depends_on: {{ ref('affected_edges') }}
-- depends_on: {{ ref('affected_nodes') }}
with source_records as (
    select
        r.source_node_id as record_entity_id,
        n.value as record_key
    from {{ graph_edges() }} as r
    inner join {{ graph_nodes() }} as n
        on r.target_node_id = n.node_id
    where
        r.rel_type = 'HAS_SOURCE_RECORD'
        and r.is_current
        and n.node_type = 'source_record'
        {%- if gold_is_incremental() %}
        and r.source_node_id in (
            select records.record_entity_id
            from {{ ref('customer_records') }} as records
            where {{ is_affected_customer('records.customer_id') }}
        )
        {%- endif %}
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
{%- if gold_is_incremental() %}
where {{ is_affected_customer('c.customer_id') }}
{%- endif %}
