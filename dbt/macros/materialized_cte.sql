{#
    The keyword that has DuckDB compute a CTE in full before the query reads it on
    (`with x as materialized (...)`), with a trailing space; nothing on Spark/Databricks,
    whose SQL has no such keyword. Written where a ranking feeds a large aggregation: in
    one pipeline DuckDB holds the window's sorted rows and the aggregation's groups at
    once and, under the build's memory limit, spills both (RESULTS.md, session 28).
#}
{% macro materialized_cte() -%}
    {%- if target.type == 'duckdb' -%} materialized {% endif -%}
{%- endmacro %}
