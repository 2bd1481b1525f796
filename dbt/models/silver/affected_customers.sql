-- The customers an incremental build resolves again: the customer each changed entity
-- belongs to now (customer_records, already updated), and each changed entity itself,
-- which covers the customer it belonged to before (a record that was its own customer,
-- or a survivor named by a changed SAME_AS edge). Ids that are no customer at all only
-- make the gold models delete nothing and insert nothing for them. Also every customer
-- who works at a changed company: company_assets holds the company's name and its
-- assets on their rows. A changed company is a changed entity (its own edges changed,
-- or it is the old or new target of a changed WORKS_AT or OWNED_BY edge) or the
-- company a changed asset belongs to now.
{{ config(materialized='table') }}

with changed as (
    select entity_id
    from {{ ref('changed_entities') }}
    where entity_id is not null
),

changed_companies as (
    select changed.entity_id as company_id
    from changed

    union distinct

    select owned_by.target_node_id as company_id
    from {{ source('silver', 'relationships') }} as owned_by
    where
        owned_by.is_current
        and owned_by.rel_type = '{{ var("owned_by_rel_type", "OWNED_BY") }}'
        and owned_by.source_node_id in (select changed.entity_id from changed)
)

select r.customer_id
from {{ ref('customer_records') }} as r
where r.record_entity_id in (select changed.entity_id from changed)

union distinct

select entity_id as customer_id
from changed

union distinct

select r.customer_id
from {{ source('silver', 'relationships') }} as works_at
inner join {{ ref('customer_records') }} as r
    on works_at.source_node_id = r.record_entity_id
where
    works_at.is_current
    and works_at.rel_type = '{{ var("works_at_rel_type", "WORKS_AT") }}'
    and works_at.target_node_id in (select changed_companies.company_id from changed_companies)
