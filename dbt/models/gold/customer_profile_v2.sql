-- Profile v2: one row per customer (the survivor of each identity cluster) with every
-- canonical attribute's winning value, the source it came from and the time that
-- field last changed there. Column order matches aag.resolution.profile_sql.
-- Incremental: a run after a batch ranks only the affected customers' contests
-- (macro incremental.sql); a full build ranks every contest once, through
-- resolved_attributes.
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}
-- depends_on: {{ ref('affected_edges') }}
-- depends_on: {{ ref('affected_nodes') }}
-- depends_on: {{ ref('attribute_catalog') }}
-- depends_on: {{ ref('source_priority') }}
-- depends_on: {{ ref('survivorship') }}
{%- set attrs = var('customer_attributes') %}

with deleted_records as (
    {{ deleted_records() }}
),

customers as (
    select customer_id
    from {{ ref('customer_records') }}
    where
        is_survivor
        and customer_id not in (select deleted.record_entity_id from deleted_records as deleted)
        and {% if gold_is_incremental() %}{{ is_affected_customer('customer_id') }}{% else %}true{% endif %}
),

{%- if gold_is_incremental() %}

candidates as (
    {{ attribute_candidates(attrs, affected_only=true) }}
),

winners as {{ materialized_cte() }}(
    {{ resolve_winner('candidates') }}
),

{%- else %}

winners as {{ materialized_cte() }}(
    select
        entity_id,
        attribute,
        value,
        source_system,
        updated_at
    from {{ ref('resolved_attributes') }}
    where attribute in (
        {%- for attr in attrs %}
        '{{ attr }}'{{ "," if not loop.last }}
        {%- endfor %}
    )
),

{%- endif %}

pivoted as (
    select
        c.customer_id
        {%- for attr in attrs %},
        max(case when w.attribute = '{{ attr }}' then w.value end) as {{ attr }},
        max(case when w.attribute = '{{ attr }}' then w.source_system end) as {{ attr }}_source,
        max(case when w.attribute = '{{ attr }}' then w.updated_at end) as {{ attr }}_updated_at{% endfor %}
    from customers as c
    left join winners as w
        on c.customer_id = w.entity_id
    group by c.customer_id
)

select * from pivoted
