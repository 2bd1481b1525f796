{#
    A 64-bit hash of some columns, to group long string keys cheaply. Equal inputs give
    equal hashes; callers that need exactness re-check the rows that share a hash.
#}
{% macro hash_columns(columns) -%}
    {%- if target.type == 'duckdb' -%} hash( {%- else -%} xxhash64( {%- endif -%}
    {{ columns | join(', ') }})
{%- endmacro %}
