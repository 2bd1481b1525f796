-- Profile v3: v2 plus, per attribute, the survivorship rule (survivorship seed) that
-- ranked its winner: <attr>_rule, NULL where no value won. The rule is a property of
-- the attribute, so v3 copies v2's cells and adds the rule in force at this build; a
-- change to the seed changes the build's fingerprint and rebuilds everything.
-- Incremental like v1: the affected customers' rows are copied from v2 again.
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}
{%- set attrs = var('customer_attributes') %}

with rules as (
    -- One row: the strategy in force for each attribute (survivorship seed; default latest).
    select
        count(*) as seeded_rules
        {%- for attr in attrs %},
        coalesce(
            max(case when attribute = '{{ attr }}' then strategy end), 'latest'
        ) as {{ attr }}_rule{% endfor %}
    from {{ ref('survivorship') }}
)

select
    p.customer_id
    {%- for attr in attrs %},
    p.{{ attr }},
    p.{{ attr }}_source,
    p.{{ attr }}_updated_at{% endfor %}
    {%- for attr in attrs %},
    case when p.{{ attr }} is not null then r.{{ attr }}_rule end as {{ attr }}_rule{% endfor %}
from {{ ref('customer_profile', v=2) }} as p
cross join rules as r
{%- if gold_is_incremental() %}
where {{ is_affected_customer('p.customer_id') }}
{%- endif %}
