-- Every cell of customer_profile v2 against the winners computed straight from the
-- edge table (not through resolved_attributes or customer_records): the same
-- customers, and per customer and attribute the same value, source and field time.
-- Each row returned is a customer whose profile row disagrees, with the attributes
-- that differ. An incremental build checks the customers it resolved again
-- (affected_customers), from the edges in affected_edges: those of every record whose
-- current SAME_AS edge names such a customer, found from the edges as here. A full
-- build checks every customer, from silver.
-- depends_on: {{ ref('affected_edges') }}
-- depends_on: {{ ref('affected_nodes') }}
{%- set attrs = var('customer_attributes') %}
{%- set in_scope -%}
    (
        customer_id in (select affected.customer_id from {{ ref('affected_customers') }} as affected)
        or {{ refresh_everything() }}
    )
{%- endset %}

with members as (
    select
        source_node_id as record_entity_id,
        target_node_id as customer_id
    from {{ graph_edges() }}
    where
        is_current
        and rel_type = 'SAME_AS'
),

scope as (
    -- The records whose edges count for the customers checked: their members, and the
    -- survivors themselves (a customer's id is its survivor record's id).
    select record_entity_id
    from members
    where {{ in_scope }}
    union all
    select affected.customer_id as record_entity_id
    from {{ ref('affected_customers') }} as affected
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
    from {{ graph_edges() }} as e
    inner join {{ graph_nodes() }} as v
        on e.target_node_id = v.node_id
    left join members as m
        on e.source_node_id = m.record_entity_id
    where
        e.is_current
        and e.rel_type in (
            select profile_attributes.rel_type
            from {{ ref('attribute_catalog') }} as profile_attributes
            where profile_attributes.attribute in (
                {%- for attr in attrs %}
                '{{ attr }}'{{ "," if not loop.last }}
                {%- endfor %}
            )
        )
        and v.value is not null
        and (
            e.source_node_id in (select scope.record_entity_id from scope)
            or {{ refresh_everything() }}
        )
),

winners as (
    {{ resolve_winner('candidates') }}
),

deleted_records as (
    {{ deleted_records() }}
),

customers as (
    select n.node_id as customer_id
    from {{ graph_nodes() }} as n
    left join members as m
        on n.node_id = m.record_entity_id
    where
        n.node_type = 'customer'
        and m.record_entity_id is null
        and n.node_id not in (select deleted.record_entity_id from deleted_records as deleted)
        and (
            n.node_id in (select affected.customer_id from {{ ref('affected_customers') }} as affected)
            or {{ refresh_everything() }}
        )
),

expected as (
    select
        c.customer_id
        {%- for attr in attrs %},
        max(case when a.attribute = '{{ attr }}' then w.value end) as {{ attr }},
        max(case when a.attribute = '{{ attr }}' then w.source_system end) as {{ attr }}_source,
        max(case when a.attribute = '{{ attr }}' then w.updated_at end) as {{ attr }}_updated_at{% endfor %}
    from customers as c
    left join winners as w
        on c.customer_id = w.entity_id
    left join {{ ref('attribute_catalog') }} as a
        on w.rel_type = a.rel_type
    group by c.customer_id
),

profile as (
    select *
    from {{ ref('customer_profile', v=2) }}
    where {{ in_scope }}
)

select
    coalesce(e.customer_id, p.customer_id) as customer_id,
    case
        when p.customer_id is null then 'customer missing from the profile'
        when e.customer_id is null then 'profile row for a record that is not a customer'
        else 'cells differ'
    end as problem,
    concat_ws(
        ', '
        {%- for attr in attrs %},
        case
            when
                e.{{ attr }} is distinct from p.{{ attr }}
                or e.{{ attr }}_source is distinct from p.{{ attr }}_source
                or e.{{ attr }}_updated_at is distinct from p.{{ attr }}_updated_at
                then '{{ attr }}'
        end{% endfor %}
    ) as differing_attributes
from expected as e
full outer join profile as p
    on e.customer_id = p.customer_id
where
    e.customer_id is null
    or p.customer_id is null
    {%- for attr in attrs %}
    or e.{{ attr }} is distinct from p.{{ attr }}
    or e.{{ attr }}_source is distinct from p.{{ attr }}_source
    or e.{{ attr }}_updated_at is distinct from p.{{ attr }}_updated_at
    {%- endfor %}
