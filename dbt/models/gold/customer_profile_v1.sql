-- Profile v1 (deprecated): customer_id and the winning value of every canonical
-- attribute; v2 without the lineage columns. Incremental like v2: the affected
-- customers' rows are copied from v2 again.
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}

select
    customer_id
    {%- for attr in var('customer_attributes') %},
    {{ attr }}{% endfor %}
from {{ ref('customer_profile', v=2) }}
{%- if gold_is_incremental() %}
where {{ is_affected_customer('customer_id') }}
{%- endif %}
