-- Entities whose edges changed since the last gold build, from the Delta change data
-- feed of relationships (rows inserted or deleted by batches, identity updates and
-- erasures): each changed edge's source entity, and the target of a changed SAME_AS,
-- WORKS_AT or OWNED_BY edge (the survivor a record joins or leaves, the company a
-- record or an asset points at, before and after). One row with a NULL entity_id means
-- the change set is not known: the incremental models then recompute everything.
{{ config(materialized='table') }}

{%- if target.type == 'duckdb' %}
    {%- set changes = source('silver', 'relationship_changes') %}
{%- elif var('changes_since_version', none) is not none %}
{%- set changes -%}
table_changes('{{ source('silver', 'relationships') }}', {{ var('changes_since_version') | int + 1 }})
{%- endset %}
{%- else %}
{%- set changes = none %}
{%- endif %}

{%- if changes is none %}

select cast(null as {{ dbt.type_string() }}) as entity_id

{%- else %}

with changes as (
    select
        source_node_id,
        target_node_id,
        rel_type,
        {%- if target.type == 'duckdb' %}
        change_type
        {%- else %}
        _change_type as change_type
        {%- endif %}
    from {{ changes }}
)

select source_node_id as entity_id
from changes
where change_type in ('insert', 'delete')

union distinct

select target_node_id as entity_id
from changes
where
    change_type in ('insert', 'delete')
    and rel_type in (
        'SAME_AS',
        '{{ var("works_at_rel_type", "WORKS_AT") }}',
        '{{ var("owned_by_rel_type", "OWNED_BY") }}'
    )

union distinct

select cast(null as {{ dbt.type_string() }}) as entity_id
from changes
where change_type = 'unknown'

{%- endif %}
