{#
    Incremental gold builds.

    After a batch, only the customers whose edges changed since the last build need
    resolving again. The changed rows of relationships come from the Delta change data
    feed: on the local target aag.dbt_plugin writes them into silver.relationship_changes
    (from the Delta version the last `aag build` read); on Databricks the model
    changed_entities reads table_changes() from var('changes_since_version').
    changed_entities -> affected_customers name the customers to resolve again; each
    per-customer gold model deletes those customers' rows (pre-hook, so customers that
    no longer exist - merged into another, erased - go too) and inserts their rows
    computed afresh (delete+insert on DuckDB, merge on Databricks).

    When what changed is not known (no change feed for the range, or plain `dbt build`
    without one), changed_entities holds a row with a NULL entity_id and every
    incremental model recomputes all of its rows. `--full-refresh` rebuilds every table
    from scratch.
#}

{# The incremental strategy of the per-customer models on this target. #}
{% macro gold_incremental_strategy() -%}
    {{ return('merge' if target.type == 'databricks' else 'delete+insert') }}
{%- endmacro %}

{#
    SQL condition: true when this run recomputes every row (the change set is unknown).
#}
{% macro refresh_everything() -%}
    exists (
        select 1 from {{ ref('changed_entities') }} as unknown_changes
        where unknown_changes.entity_id is null
    )
{%- endmacro %}

{#
    SQL condition on `column` (a customer id): the customer's rows are recomputed in this
    run.
#}
{% macro is_affected_customer(column) -%}
    (
        {{ column }} in (select affected.customer_id from {{ ref('affected_customers') }} as affected)
        or {{ refresh_everything() }}
    )
{%- endmacro %}

{#
    Pre-hooks of the incremental models (hooks render when the model runs, so
    is_incremental() is known there): delete the rows this run recomputes. Nothing on a
    first build or a full refresh, which create the table anew.
#}
{% macro delete_affected_customers(column='customer_id') -%}
    {%- if gold_is_incremental() -%}
        delete from {{ this }} where {{ is_affected_customer(column) }}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}

{% macro delete_changed_records() -%}
    {%- if gold_is_incremental() -%}
        delete from {{ this }}
        where
            record_entity_id in (select changed.entity_id from {{ ref('changed_entities') }} as changed)
            or {{ refresh_everything() }}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}

{#
    company_assets depends on more than a customer's own edges: a company's name, its
    assets and their attributes. Its rows to recompute are those of the affected
    customers and of every customer who works at a changed company: one whose own
    edges changed, the target of a changed WORKS_AT or OWNED_BY edge (before or after),
    or the owner now of a changed asset. Returns a subquery of customer ids.
#}
{% macro asset_customers_to_recompute() -%}
    (
        select affected.customer_id
        from {{ ref('affected_customers') }} as affected
        union
        select records.customer_id
        from {{ source('silver', 'relationships') }} as works_at
        inner join {{ ref('customer_records') }} as records
            on works_at.source_node_id = records.record_entity_id
        where
            works_at.is_current
            and works_at.rel_type = '{{ var("works_at_rel_type", "WORKS_AT") }}'
            and works_at.target_node_id in (
                select changed.entity_id
                from {{ ref('changed_entities') }} as changed
                union
                select owned_by.target_node_id
                from {{ source('silver', 'relationships') }} as owned_by
                where
                    owned_by.is_current
                    and owned_by.rel_type = '{{ var("owned_by_rel_type", "OWNED_BY") }}'
                    and owned_by.source_node_id in (
                        select changed.entity_id from {{ ref('changed_entities') }} as changed
                    )
            )
    )
{%- endmacro %}

{% macro delete_asset_customers() -%}
    {%- if gold_is_incremental() -%}
        delete from {{ this }}
        where customer_id in {{ asset_customers_to_recompute() }} or {{ refresh_everything() }}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}

{#
    is_incremental(), except where dbt may not look at the database: `dbt compile
    --no-introspect` on the databricks target (offline in CI) compiles the full-build SQL
    instead of asking the workspace whether the table exists.
#}
{% macro gold_is_incremental() -%}
    {#- (flags is not defined when sqlfluff renders the project) -#}
    {%- if target.type != 'duckdb' and flags is defined and not flags.INTROSPECT -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(is_incremental()) }}
{%- endmacro %}
