-- The nodes an incremental build reads with affected_edges: each edge's target (values,
-- source records, survivors, companies) and the affected customers' own nodes. The
-- columns the models read of silver.nodes. Empty on a full build (so is affected_customers).
{{ config(materialized='table') }}

with wanted as (
    select affected_edges.target_node_id as node_id
    from {{ ref('affected_edges') }} as affected_edges
    union distinct
    select affected.customer_id as node_id
    from {{ ref('affected_customers') }} as affected
)

select
    n.node_id,
    n.node_type,
    n.value
from {{ source('silver', 'nodes') }} as n
where n.node_id in (select wanted.node_id from wanted)
