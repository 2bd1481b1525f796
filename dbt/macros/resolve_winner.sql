{#
    The resolution rule of SPEC §4, held once.

    Among the candidate rows of one contest (by default one entity and one rel_type: the
    current edges of all its records and sources), the winner has the latest updated_at,
    then the highest confidence, then the lowest source priority number (source_priority
    seed; an unlisted source gets var('unlisted_source_priority')), then the lowest
    source_system and the lowest target_node_id. aag.resolution.WINNER_ORDER is the same
    list for the Python engine; tests/test_gold.py keeps the two equal. NULLs sort last
    in every direction, as DuckDB does by default (Spark would put them first on
    ascending keys).

    candidates: a relation or CTE name with source_system, updated_at, confidence,
        target_node_id and the partition columns.
    partition_by: the columns that identify one contest.

    Returns a SELECT of every candidate column plus priority, competing_values (the
    number of current candidates in the contest) and winner_rank (always 1): one row
    per contest, its winner.
#}
{% macro resolve_winner(candidates, partition_by=['entity_id', 'rel_type']) -%}
    {%- set winner_order = [
        'updated_at desc',
        'confidence desc',
        'priority asc',
        'source_system asc',
        'target_node_id asc',
    ] -%}
    {%- set partition = partition_by | join(', ') -%}
    select *
    from (
        select
            prioritised.*,
            row_number() over (
                partition by {{ partition }}
                order by
                    {{ winner_order | join(" nulls last,\n                    ") }} nulls last
            ) as winner_rank,
            count(*) over (partition by {{ partition }}) as competing_values
        from (
            select
                c.*,
                coalesce(p.priority, {{ var('unlisted_source_priority') }}) as priority
            from {{ candidates }} as c
            left join {{ ref('source_priority') }} as p
                on c.source_system = p.source_system
        ) as prioritised
    ) as ranked
    where winner_rank = 1
{%- endmacro %}
