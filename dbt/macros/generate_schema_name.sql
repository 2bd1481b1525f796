{#
    Models land in the schema their folder names (silver, gold) and seeds in config,
    without dbt's default "<target schema>_" prefix: the relation names users query
    and `aag export` takes stay the same on every target.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
