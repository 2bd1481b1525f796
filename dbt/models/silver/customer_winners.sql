-- One row per customer and profile attribute: the winning value with its source and
-- field time (SPEC §4, macro resolve_winner), long form. customer_profile v2 pivots it.
-- A table of its own because ranking every contest and pivoting the winners in one
-- query keeps both the ranking's rows and the pivot's groups in memory at once: under
-- the gold build's memory limit that spills, and costs twice as much as the two steps.
-- Incremental like the profile: a run after a batch deletes the affected customers'
-- rows (pre-hook) and ranks only their contests.
{{ config(
    materialized='incremental',
    unique_key=['customer_id', 'attribute'],
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

{%- if gold_is_incremental() %}

with candidates as (
    {{ attribute_candidates(attrs, affected_only=true) }}
),

winners as (
    {{ resolve_winner('candidates') }}
)

select
    entity_id as customer_id,
    attribute,
    value,
    source_system,
    updated_at
from winners

{%- else %}

select
    winners.entity_id as customer_id,
    winners.attribute,
    winners.value,
    winners.source_system,
    winners.updated_at
from {{ ref('resolved_attributes') }} as winners
inner join {{ ref('customer_records') }} as records
    on
        winners.entity_id = records.record_entity_id
        and records.is_survivor
where
    winners.attribute in (
        {%- for attr in attrs %}
        '{{ attr }}'{{ "," if not loop.last }}
        {%- endfor %}
    )

{%- endif %}
