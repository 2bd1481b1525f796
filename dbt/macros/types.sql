{#
    An instant in time: DuckDB's TIMESTAMP WITH TIME ZONE (what the Delta timestamps
    read as), Spark/Databricks TIMESTAMP (always an instant there).
#}
{% macro timestamp_type() -%}
    {%- if target.type == 'duckdb' -%} timestamptz {%- else -%} timestamp {%- endif -%}
{%- endmacro %}
