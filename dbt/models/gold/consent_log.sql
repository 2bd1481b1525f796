-- Every change of email_marketing_consent per customer, from every record of the
-- customer and every source, current versions and history alike. Each source keeps
-- its own history per record (the edge key), so old_value is that key's value just
-- before: the previous version's value when it was replaced ('change'), NULL when the
-- key held nothing ('set'). A version ended by a removal (the source emptied the field
-- or deleted the record) adds a 'removal' row at the time it ended. A record its
-- source deleted has left its customer and the profiles (macro deleted_records), and
-- its log goes with it; silver keeps the history. Incremental: the
-- affected customers' logs are redone whole (change_seq numbers a customer's log).
{{ config(
    materialized='incremental',
    unique_key=['customer_id', 'change_seq'],
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}
-- depends_on: {{ ref('affected_edges') }}
-- depends_on: {{ ref('affected_nodes') }}
with deleted_records as (
    {{ deleted_records() }}
),

consent_rel_types as (
    select rel_type
    from {{ ref('attribute_catalog') }}
    where attribute = 'email_marketing_consent'
),

versions as (
    select
        r.customer_id,
        e.source_node_id as record_entity_id,
        e.source_system,
        e.updated_at,
        e.source_event_id,
        e.properties['closed_by'] as closed_by,
        e.properties['closed_by_event'] as closed_by_event,
        e.properties['valid_to'] as valid_to,
        v.value,
        lag(v.value) over (
            partition by e.source_node_id, e.rel_type, e.source_system
            order by e.updated_at, e.source_event_id
        ) as previous_value,
        lag(e.properties['closed_by']) over (
            partition by e.source_node_id, e.rel_type, e.source_system
            order by e.updated_at, e.source_event_id
        ) as previous_closed_by
    from {{ graph_edges() }} as e
    inner join consent_rel_types as c
        on e.rel_type = c.rel_type
    inner join {{ graph_nodes() }} as v
        on e.target_node_id = v.node_id
    inner join {{ ref('customer_records') }} as r
        on e.source_node_id = r.record_entity_id
    where
        r.customer_id not in (select deleted.record_entity_id from deleted_records as deleted)
        {%- if gold_is_incremental() %}
        and {{ is_affected_customer('r.customer_id') }}
        {%- endif %}
),

changes as (
    select
        customer_id,
        record_entity_id,
        source_system,
        updated_at as changed_at,
        case when previous_closed_by = 'change' then 'change' else 'set' end as change_type,
        case when previous_closed_by = 'change' then previous_value end as old_value,
        value as new_value,
        source_event_id as event_id
    from versions

    union all

    select
        customer_id,
        record_entity_id,
        source_system,
        cast(valid_to as {{ timestamp_type() }}) as changed_at,
        'removal' as change_type,
        value as old_value,
        cast(null as {{ dbt.type_string() }}) as new_value,
        closed_by_event as event_id
    from versions
    where closed_by = 'removal'
)

select
    customer_id,
    row_number() over (
        partition by customer_id
        order by changed_at, source_system, record_entity_id, event_id, change_type
    ) as change_seq,
    changed_at,
    source_system,
    change_type,
    old_value,
    new_value,
    record_entity_id,
    event_id
from changes
