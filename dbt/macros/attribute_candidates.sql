{#
    The candidates of resolution: every current attribute edge (SAME_AS excluded) that
    points at a value node, with the entity it counts for (a customer record's edges
    count for its customer, the survivor of its identity cluster; any other entity is
    its own) and its attribute name.

    attributes: limit to these attribute names (a list), or all when none.
    affected_only: only the edges of the records of affected_customers (an incremental
        run's customers); companies and assets are then left out. The records are
        found first, so the edge scan is a semi-join on a short id list.

    The edges and value nodes are those the calling model reads (graph_edges,
    graph_nodes): silver, or an incremental run's affected_edges and affected_nodes.
#}
{% macro attribute_candidates(attributes=none, affected_only=false) -%}
    select
    {%- if affected_only %}
            r.customer_id as entity_id,
        {%- else %}
            coalesce(r.customer_id, e.source_node_id) as entity_id,
    {%- endif %}
        a.attribute,
        e.rel_type,
        e.target_node_id,
        v.value,
        e.updated_at,
        e.confidence,
        e.source_system,
        e.source_event_id,
        e.source_node_id as record_entity_id
    from {{ graph_edges() }} as e
    inner join {{ ref('attribute_catalog') }} as a
        on e.rel_type = a.rel_type
    inner join {{ graph_nodes() }} as v
        on e.target_node_id = v.node_id
    {%- if affected_only %}
        inner join (
            select
                records.record_entity_id,
                records.customer_id
            from {{ ref('customer_records') }} as records
            where {{ is_affected_customer('records.customer_id') }}
        ) as r
            on e.source_node_id = r.record_entity_id
    {%- else %}
        left join {{ ref('customer_records') }} as r
            on e.source_node_id = r.record_entity_id
    {%- endif %}
    where
        e.is_current
        and e.rel_type != 'SAME_AS'
        and v.value is not null
    {%- if attributes is not none %}
        and a.attribute in ('{{ attributes | join("', '") }}')
    {%- endif %}
{%- endmacro %}
