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
    same lists (WINNER_ORDER, STRATEGY_KEYS, PLACEHOLDER_VALUES) and ranks by the same
    keys (order_by); tests/test_gold.py and tests/test_survivorship.py keep them
    equal. NULLs sort last in every direction, as DuckDB does by default (Spark would
    put them first on ascending keys).

    candidates: a relation or CTE name with source_system, updated_at, confidence,
        target_node_id, value, rel_type and the partition columns.
    partition_by: the columns that identify one contest.

    Returns a SELECT of every candidate column plus priority, the survivorship columns
    (strategy; source_position, set in source_order contests; allowed, always 1 here;
    is_placeholder, set in latest_non_empty contests; holders, set in most_frequent
    contests), competing_values (the number of current candidates in the contest from
    allowed sources) and winner_rank (always 1): one row per contest, its winner; none
    when no allowed source holds a value.

    var('survivorship_strategies') (default: every strategy) must list every strategy the
    survivorship seed uses; aag build passes exactly those (aag.gold.dbt_args), so a
    config of latest rules ranks by the latest order alone.
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
    {#- Only the strategies in force get a sort key (and most_frequent its vote count, a
        second window): aag build lists them from the survivorship seed. -#}
    {%- set used = var('survivorship_strategies', strategy_keys | list) -%}
    {%- set count_holders = 'most_frequent' in used -%}
    {%- set order = [] -%}
    {%- for strategy in strategy_keys if strategy in used and strategy_keys[strategy] -%}
        {%- set key = strategy_keys[strategy] -%}
        {%- do order.append(
            "case when strategy = '" ~ strategy ~ "' then " ~ key.split(' ')[0] ~ " end " ~ key.split(' ')[1]
        ) -%}
    {%- endfor -%}
    {%- set order = order + winner_order -%}
    {%- set partition = partition_by | join(', ') -%}
    {%- if count_holders -%}
        {%- set holders -%}
            case
                when strategy = 'most_frequent'
                    then count(*) over (
                        partition by {{ partition }}, case when strategy = 'most_frequent' then target_node_id end
                    )
            end
        {%- endset -%}
    {%- else -%}
        {%- set holders = 'cast(null as bigint)' -%}
    {%- endif -%}
    select *
    from (
        select
            voted.*,
            row_number() over (
                partition by {{ partition }}
                order by
                    {{ order | join(" nulls last,\n                    ") }} nulls last
            ) as winner_rank,
            count(*) over (partition by {{ partition }}) as competing_values
        from (
            select
                prioritised.*,
                {{ holders }} as holders
            from (
                select
                    c.*,
                    coalesce(p.priority, {{ var('unlisted_source_priority') }}) as priority,
                    coalesce(s.strategy, 'latest') as strategy,
                    case
                        when s.strategy = 'source_order'
                            then coalesce(
                                nullif({{ source_list_position('s.source_order', 'c.source_system') }}, 0),
                                {{ var('unlisted_source_position') }}
                            )
                    end as source_position,
                    case
                        when
                            s.allowed_sources is null
                            or {{ source_list_position('s.allowed_sources', 'c.source_system') }} > 0
                            then 1
                        else 0
                    end as allowed,
                    case
                        when
                            s.strategy = 'latest_non_empty'
                            and lower(trim(c.value)) in ('{{ placeholder_values | join("', '") }}')
                            then 1
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
            -- A value of a source the attribute does not allow never wins, counts as no
            -- competitor and gets no vote: it leaves before the ranking.
            where prioritised.allowed = 1
        ) as voted
    ) as ranked
    where winner_rank = 1
{%- endmacro %}

{#- Where source stands in an a|b|c list, 0 when absent (aag.resolution.winners._in_list). -#}
{% macro source_list_position(list_column, source) -%}
    instr('|' || {{ list_column }} || '|', '|' || {{ source }} || '|')
{%- endmacro %}
