{#
    Records their source deleted (Salesforce IsDeleted, SAP LOEVM): every version of
    their HAS_SOURCE_RECORD edge has ended. Such a record holds no identifier any more,
    so it is a customer of its own with nothing current; the gold models leave it out,
    and its history stays in silver. A restored record opens a new current version.
#}
{% macro deleted_records() -%}
    select source_node_id as record_entity_id
    from {{ graph_edges() }}
    where rel_type = 'HAS_SOURCE_RECORD'
    group by source_node_id
    having not bool_or(is_current)
{%- endmacro %}
