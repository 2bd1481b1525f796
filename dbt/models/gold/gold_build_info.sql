-- One row describing the last gold build: when it ran (assert_gold_recency checks it),
-- how many customers it produced, and the latest field time it saw in silver.
select
    {{ dbt.current_timestamp() }} as built_at,
    '{{ invocation_id }}' as invocation_id,
    (select count(*) from {{ ref('customer_profile', v=2) }}) as customers,
    (
        select max(updated_at)
        from {{ source('silver', 'relationships') }}
        where is_current
    ) as silver_latest_change
