-- The edges an incremental build reads, so the models and tests scan silver.relationships
-- once instead of each on its own: every version (current and history) of every edge
-- whose source is one of
--   * the records of the affected customers (customer_records),
--   * the records whose current SAME_AS edge points at an affected customer (found from
--     the edges, so assert_profile_matches_edge_winners does not depend on
--     customer_records), and the affected customer ids themselves,
--   * the changed entities (assert_no_duplicate_current_edges checks their keys),
--   * the companies the affected customers' records work at now, and those companies'
--     assets (company_assets).
-- Same columns as silver.relationships. Empty when the run does not know what changed
-- (macro changes_are_known; affected_customers is empty then too, and `where false`
-- spares the scans): the models then read silver.
{{ config(materialized='table') }}
-- depends_on: {{ ref('changed_entities') }}

with affected as (
    select affected_customers.customer_id
    from {{ ref('affected_customers') }} as affected_customers
    {%- if not changes_are_known() %}
    where false
    {%- endif %}
),

records as (
    select r.record_entity_id as entity_id
    from {{ ref('customer_records') }} as r
    where r.customer_id in (select affected.customer_id from affected)
),

members as (
    select same_as.source_node_id as entity_id
    from {{ source('silver', 'relationships') }} as same_as
    where
        same_as.is_current
        and same_as.rel_type = 'SAME_AS'
        and same_as.target_node_id in (select affected.customer_id from affected)
),

companies as (
    select works_at.target_node_id as entity_id
    from {{ source('silver', 'relationships') }} as works_at
    where
        works_at.is_current
        and works_at.rel_type = '{{ var("works_at_rel_type", "WORKS_AT") }}'
        and works_at.source_node_id in (select records.entity_id from records)
),

assets as (
    select owned_by.source_node_id as entity_id
    from {{ source('silver', 'relationships') }} as owned_by
    where
        owned_by.is_current
        and owned_by.rel_type = '{{ var("owned_by_rel_type", "OWNED_BY") }}'
        and owned_by.target_node_id in (select companies.entity_id from companies)
),

scope as (
    select records.entity_id from records
    union distinct
    select affected.customer_id as entity_id from affected
    union distinct
    select members.entity_id from members
    union distinct
    select changed.entity_id
    from {{ ref('changed_entities') }} as changed
    where changed.entity_id is not null
    union distinct
    select companies.entity_id from companies
    union distinct
    select assets.entity_id from assets
)

select
    e.source_node_id,
    e.target_node_id,
    e.rel_type,
    e.updated_at,
    e.confidence,
    e.is_current,
    e.source_system,
    e.source_event_id,
    e.properties
from {{ source('silver', 'relationships') }} as e
where e.source_node_id in (select scope.entity_id from scope)
