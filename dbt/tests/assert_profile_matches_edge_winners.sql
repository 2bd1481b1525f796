-- Every cell of customer_profile v2 against the winners computed straight from the
-- edge table (not through resolved_attributes): the same customers, and per customer
-- and attribute the same value, source and field time. Any row returned is a
-- disagreement (expected_* from the edges, profile_* from the gold model).
{%- set attrs = var('customer_attributes') %}

with current_edges as (
    select *
    from {{ source('silver', 'relationships') }}
    where is_current
),

members as (
    select
        source_node_id as record_entity_id,
        target_node_id as customer_id
    from current_edges
    where rel_type = 'SAME_AS'
),

candidates as (
    select
        coalesce(m.customer_id, e.source_node_id) as entity_id,
        e.rel_type,
        e.target_node_id,
        v.value,
        e.updated_at,
        e.confidence,
        e.source_system
    from current_edges as e
    inner join {{ source('silver', 'nodes') }} as v
        on e.target_node_id = v.node_id
    left join members as m
        on e.source_node_id = m.record_entity_id
    where
        e.rel_type != 'SAME_AS'
        and v.value is not null
),

winners as (
    {{ resolve_winner('candidates') }}
),

customers as (
    select n.node_id as customer_id
    from {{ source('silver', 'nodes') }} as n
    left join members as m
        on n.node_id = m.record_entity_id
    where
        n.node_type = 'customer'
        and m.record_entity_id is null
),

expected as (
    select
        c.customer_id,
        a.attribute,
        w.value,
        w.source_system,
        w.updated_at
    from customers as c
    inner join winners as w
        on c.customer_id = w.entity_id
    inner join {{ ref('attribute_catalog') }} as a
        on w.rel_type = a.rel_type
    where a.attribute in ('{{ attrs | join("', '") }}')
),

profile as (
    select *
    from {{ ref('customer_profile', v=2) }}
),

actual as (
    {%- for attr in attrs %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select
        customer_id,
        '{{ attr }}' as attribute,
        {{ attr }} as value,
        {{ attr }}_source as source_system,
        {{ attr }}_updated_at as updated_at
    from profile
    where {{ attr }} is not null
    {%- endfor %}
),

cell_mismatches as (
    select
        coalesce(e.customer_id, a.customer_id) as customer_id,
        coalesce(e.attribute, a.attribute) as attribute,
        e.value as expected_value,
        a.value as profile_value,
        e.source_system as expected_source,
        a.source_system as profile_source,
        e.updated_at as expected_updated_at,
        a.updated_at as profile_updated_at
    from expected as e
    full outer join actual as a
        on
            e.customer_id = a.customer_id
            and e.attribute = a.attribute
    where
        e.customer_id is null
        or a.customer_id is null
        or e.value != a.value
        or e.source_system != a.source_system
        or e.updated_at != a.updated_at
),

customer_mismatches as (
    select
        coalesce(c.customer_id, p.customer_id) as customer_id,
        'customer_id' as attribute,
        c.customer_id as expected_value,
        p.customer_id as profile_value,
        cast(null as {{ dbt.type_string() }}) as expected_source,
        cast(null as {{ dbt.type_string() }}) as profile_source,
        cast(null as {{ timestamp_type() }}) as expected_updated_at,
        cast(null as {{ timestamp_type() }}) as profile_updated_at
    from customers as c
    full outer join profile as p
        on c.customer_id = p.customer_id
    where
        c.customer_id is null
        or p.customer_id is null
)

select * from cell_mismatches
union all
select * from customer_mismatches
