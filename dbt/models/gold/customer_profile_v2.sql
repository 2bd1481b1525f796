-- Profile v2: one row per customer (the survivor of each identity cluster) with every
-- canonical attribute's winning value, the source it came from and the time that
-- field last changed there. Column order matches aag.resolution.profile_sql.
with customers as (
    select customer_id
    from {{ ref('customer_records') }}
    where is_survivor
),

winners as (
    select
        entity_id,
        attribute,
        value,
        source_system,
        updated_at
    from {{ ref('resolved_attributes') }}
    where attribute in (
        {%- for attr in var('customer_attributes') %}
        '{{ attr }}'{{ "," if not loop.last }}
        {%- endfor %}
    )
)

select
    c.customer_id
    {%- for attr in var('customer_attributes') %},
    max(case when w.attribute = '{{ attr }}' then w.value end) as {{ attr }},
    max(case when w.attribute = '{{ attr }}' then w.source_system end) as {{ attr }}_source,
    max(case when w.attribute = '{{ attr }}' then w.updated_at end) as {{ attr }}_updated_at{% endfor %}
from customers as c
left join winners as w
    on c.customer_id = w.entity_id
group by c.customer_id
