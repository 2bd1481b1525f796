-- The gold layer must have been rebuilt within var('gold_recency_hours'): a scheduled
-- `dbt test` (or `aag build`) over tables a failing job stopped refreshing fails here
-- instead of serving stale profiles in silence. No build row at all fails too.
with build as (
    select max(built_at) as built_at
    from {{ ref('gold_build_info') }}
)

select built_at
from build
where
    built_at is null
    or built_at < {{ dbt.current_timestamp() }} - interval {{ var('gold_recency_hours') | int }} hour
