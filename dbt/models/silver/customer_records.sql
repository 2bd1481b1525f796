-- One row per customer record (an entity node of type customer, one per source
-- record) and the customer it belongs to: the target of its current SAME_AS edge
-- (the survivor of its identity cluster), or itself when it has none. A table: every
-- gold model maps records to customers through it. Incremental: a record's row
-- depends only on its own node and SAME_AS edge, so only changed records are redone.
{{ config(
    materialized='incremental',
    unique_key='record_entity_id',
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_changed_records() }}",
) }}
-- depends_on: {{ ref('changed_entities') }}

with same_as as (
    select
        source_node_id as record_entity_id,
        target_node_id as customer_id
    from {{ source('silver', 'relationships') }}
    where
        rel_type = 'SAME_AS'
        and source_system = 'aag'
        and is_current
    {%- if gold_is_incremental() %}
    and (
        source_node_id in (select changed.entity_id from {{ ref('changed_entities') }} as changed)
        or {{ refresh_everything() }}
    )
    {%- endif %}
)

select
    n.node_id as record_entity_id,
    coalesce(s.customer_id, n.node_id) as customer_id,
    s.customer_id is null as is_survivor
from {{ source('silver', 'nodes') }} as n
left join same_as as s
    on n.node_id = s.record_entity_id
where
    n.node_type = 'customer'
{%- if gold_is_incremental() %}
and (
    n.node_id in (select changed.entity_id from {{ ref('changed_entities') }} as changed)
    or {{ refresh_everything() }}
)
{%- endif %}
