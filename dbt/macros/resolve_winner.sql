{#
    The resolution rule of SPEC §4, held once, with the survivorship strategies of the
    survivorship seed.

    Among the candidate rows of one contest (by default one entity and one rel_type: the
    current edges of all its records and sources), the winner has the latest updated_at,
    then the highest confidence, then the lowest source priority number (source_priority
    seed; an unlisted source gets var('unlisted_source_priority')), then the lowest
    source_system and the lowest target_node_id. An attribute the survivorship seed
    gives another strategy puts that strategy's sort key (strategy_keys) before this
    order; a source outside its allowed_sources can never win. aag.resolution holds the
    same lists (WINNER_ORDER, STRATEGY_KEYS, PLACEHOLDER_VALUES) and renders them the
    same way (order_by); tests/test_gold.py and tests/test_survivorship.py keep them
    equal. NULLs sort last in every direction, as DuckDB does by default (Spark would
    put them first on ascending keys).

    candidates: a relation or CTE name with source_system, updated_at, confidence,
        target_node_id, value, rel_type and the partition columns.
    partition_by: the columns that identify one contest.

    Returns a SELECT of every candidate column plus priority, the survivorship columns
    (strategy, source_order, allowed_sources, source_position, allowed, is_placeholder,
    holders), competing_values (the number of current candidates in the contest from
    allowed sources) and winner_rank (always 1): one row per contest, its winner; none
    when no allowed source holds a value.
#}
{% macro resolve_winner(candidates, partition_by=['entity_id', 'rel_type']) -%}
    {%- set winner_order = [
        'updated_at desc',
        'confidence desc',
        'priority asc',
        'source_system asc',
        'target_node_id asc',
    ] -%}
    {%- set strategy_keys = {
        'latest': none,
        'source_order': 'source_position asc',
        'most_frequent': 'holders desc',
        'oldest': 'updated_at asc',
        'latest_non_empty': 'is_placeholder asc',
    } -%}
    {%- set placeholder_values = ['-', '--', '.', '?', 'n/a', 'na', 'none', 'null', 'unknown'] -%}
    {%- set order = ['allowed desc'] -%}
    {%- for strategy, key in strategy_keys.items() if key -%}
        {%- do order.append(
            "case when strategy = '" ~ strategy ~ "' then " ~ key.split(' ')[0] ~ " end " ~ key.split(' ')[1]
        ) -%}
    {%- endfor -%}
    {%- set order = order + winner_order -%}
    {%- set partition = partition_by | join(', ') -%}
    select *
    from (
        select
            voted.*,
            row_number() over (
                partition by {{ partition }}
                order by
                    {{ order | join(" nulls last,\n                    ") }} nulls last
            ) as winner_rank,
            count(case when allowed = 1 then 1 end) over (partition by {{ partition }}) as competing_values
        from (
            select
                prioritised.*,
                count(case when allowed = 1 then 1 end) over (
                    partition by {{ partition }}, target_node_id
                ) as holders
            from (
                select
                    c.*,
                    coalesce(p.priority, {{ var('unlisted_source_priority') }}) as priority,
                    coalesce(s.strategy, 'latest') as strategy,
                    s.source_order,
                    s.allowed_sources,
                    coalesce(
                        nullif({{ source_list_position('s.source_order', 'c.source_system') }}, 0),
                        {{ var('unlisted_source_position') }}
                    ) as source_position,
                    case
                        when
                            s.allowed_sources is null
                            or {{ source_list_position('s.allowed_sources', 'c.source_system') }} > 0
                            then 1
                        else 0
                    end as allowed,
                    case
                        when lower(trim(c.value)) in ('{{ placeholder_values | join("', '") }}') then 1
                        else 0
                    end as is_placeholder
                from {{ candidates }} as c
                left join {{ ref('source_priority') }} as p
                    on c.source_system = p.source_system
                left join (
                    -- The seed keyed by rel_type, its lists without spaces (the engine
                    -- reads them the same way: aag.config.Config.survivorship_table).
                    select
                        catalog.rel_type,
                        lower(trim(rules.strategy)) as strategy,
                        nullif(replace(rules.source_order, ' ', ''), '') as source_order,
                        nullif(replace(rules.allowed_sources, ' ', ''), '') as allowed_sources
                    from {{ ref('survivorship') }} as rules
                    inner join {{ ref('attribute_catalog') }} as catalog
                        on trim(rules.attribute) = catalog.attribute
                ) as s
                    on c.rel_type = s.rel_type
            ) as prioritised
        ) as voted
    ) as ranked
    where winner_rank = 1 and allowed = 1
{%- endmacro %}

{#- Where source stands in an a|b|c list, 0 when absent (aag.resolution._in_list). -#}
{% macro source_list_position(list_column, source) -%}
    instr('|' || {{ list_column }} || '|', '|' || {{ source }} || '|')
{%- endmacro %}
