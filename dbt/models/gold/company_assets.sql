-- customer -> WORKS_AT -> company <- OWNED_BY <- asset. Ownership is stored on the
-- asset (docs/concepts.md, decision record), so "company OWNS asset" is OWNED_BY read
-- backwards. One row per customer x company x asset over current edges; a company
-- with no (known) asset gives one row with NULL asset columns. Names, serial numbers
-- and status are the resolved winners of the company's and asset's own attributes
-- (resolve_winner over just those attributes' edges). Incremental: the rows of the
-- affected customers are redone (affected_customers includes everyone who works at a
-- changed company); affected_edges holds their companies' and assets' edges.
{{ config(
    materialized='incremental',
    unique_key=['customer_id', 'company_id', 'asset_id'],
    incremental_strategy=gold_incremental_strategy(),
    on_schema_change='fail',
    pre_hook="{{ delete_affected_customers() }}",
) }}
-- depends_on: {{ ref('affected_customers') }}
-- depends_on: {{ ref('changed_entities') }}
-- depends_on: {{ ref('affected_edges') }}
-- depends_on: {{ ref('affected_nodes') }}
with links as (
    select
        source_node_id,
        target_node_id,
        rel_type,
        updated_at
    from {{ graph_edges() }}
    where
        is_current
        and rel_type in (
            '{{ var("works_at_rel_type", "WORKS_AT") }}',
            '{{ var("owned_by_rel_type", "OWNED_BY") }}'
        )
),

works_at as (
    select
        r.customer_id,
        l.target_node_id as company_id,
        max(l.updated_at) as works_at_since
    from links as l
    inner join {{ ref('customer_records') }} as r
        on l.source_node_id = r.record_entity_id
    where
        l.rel_type = '{{ var("works_at_rel_type", "WORKS_AT") }}'
        {%- if gold_is_incremental() %}
        and {{ is_affected_customer('r.customer_id') }}
        {%- endif %}
    group by r.customer_id, l.target_node_id
),

owned_by as (
    select
        source_node_id as asset_id,
        target_node_id as company_id,
        max(updated_at) as owned_since
    from links
    where rel_type = '{{ var("owned_by_rel_type", "OWNED_BY") }}'
    group by source_node_id, target_node_id
),

candidates as (
    {{ attribute_candidates(['company_name', 'asset_name', 'serial_number', 'asset_status']) }}
),

winners as (
    {{ resolve_winner('candidates') }}
),

attributes as (
    select
        entity_id,
        max(case when attribute = 'company_name' then value end) as company_name,
        max(case when attribute = 'asset_name' then value end) as asset_name,
        max(case when attribute = 'serial_number' then value end) as serial_number,
        max(case when attribute = 'asset_status' then value end) as asset_status
    from winners
    group by entity_id
)

select
    w.customer_id,
    w.company_id,
    ca.company_name,
    o.asset_id,
    aa.asset_name,
    aa.serial_number,
    aa.asset_status,
    w.works_at_since,
    o.owned_since
from works_at as w
left join owned_by as o
    on w.company_id = o.company_id
left join attributes as ca
    on w.company_id = ca.entity_id
left join attributes as aa
    on o.asset_id = aa.entity_id
