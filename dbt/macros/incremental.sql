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
    computed afresh (delete+insert on DuckDB, merge on Databricks). The edges they need
    are read from silver once, into affected_edges and affected_nodes: scanning the
    whole edge table in every model would cost each of them as much as a full build's
    scan, whatever the size of the batch.

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
    A run that knows what changed (changes_are_known) gets the literal false: its
    changed_entities never holds the unknown row, and without the subquery in an OR the
    optimizer pushes the filters on the changed ids down into the scans.
#}
{% macro refresh_everything() -%}
    {%- if changes_are_known() -%}
        false
    {%- else -%}
        exists (
            select 1 from {{ ref('changed_entities') }} as unknown_changes
            where unknown_changes.entity_id is null
        )
    {%- endif -%}
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
    Whether this run knows which edges changed, decided when the SQL is compiled: on the
    local target when $AAG_SILVER_CHANGES_SINCE names the base version (aag.dbt_plugin
    then reads the change feed; `aag build` sets it for an incremental build), on
    Databricks when var('changes_since_version') does. Never while dbt parses: dbt ties
    a parsed file to the values of the environment variables it read, and every switch
    between full and incremental builds would make it parse the project again.
#}
{% macro changes_are_known() -%}
    {%- if execute is defined and not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if target.type == 'duckdb' -%}
        {{ return(env_var('AAG_SILVER_CHANGES_SINCE', '') | trim != '') }}
    {%- endif -%}
    {{ return(var('changes_since_version', none) is not none) }}
{%- endmacro %}

{#
    Whether the calling model or test reads the affected records' edges from
    affected_edges (and their nodes from affected_nodes) instead of scanning silver:
    an incremental model, or a data test, in a run that knows what changed. Every other
    run reads silver whole (full builds, and runs where the change set is unknown).
#}
{% macro reads_affected_edges() -%}
    {%- if not changes_are_known() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if model is defined and model.resource_type == 'test' -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(gold_is_incremental()) }}
{%- endmacro %}

{#
    The edge and node relations a model or test reads (see reads_affected_edges). A caller
    names ref('affected_edges') and ref('affected_nodes') in depends_on comments, so dbt
    runs them first on every build.
#}
{% macro graph_edges() -%}
    {%- if reads_affected_edges() -%}
        {{ ref('affected_edges') }}
    {%- else -%}
        {{ source('silver', 'relationships') }}
    {%- endif -%}
{%- endmacro %}

{% macro graph_nodes() -%}
    {%- if reads_affected_edges() -%}
        {{ ref('affected_nodes') }}
    {%- else -%}
        {{ source('silver', 'nodes') }}
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
