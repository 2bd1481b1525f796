-- The customers an incremental build resolves again: the customer each changed entity
-- belongs to now (customer_records, already updated), and each changed entity itself,
-- which covers the customer it belonged to before (a record that was its own customer,
-- or a survivor named by a changed SAME_AS edge). Ids that are no customer at all only
-- make the gold models delete nothing and insert nothing for them.
{{ config(materialized='table') }}

with changed as (
    select entity_id
    from {{ ref('changed_entities') }}
    where entity_id is not null
)

select r.customer_id
from {{ ref('customer_records') }} as r
where r.record_entity_id in (select changed.entity_id from changed)

union distinct

select entity_id as customer_id
from changed
