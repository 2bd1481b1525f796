-- SPEC §3: at most one current version per edge key (source_node_id, rel_type,
-- source_system). Rows returned here mean a broken SCD2 merge. Keys are grouped by a
-- 64-bit hash first (cheap), and only the keys whose hash repeats are checked exactly.
-- An incremental build checks only the keys of changed entities: a duplicate among the
-- other keys would have failed the build that last read them. (affected_edges holds every
-- edge of the changed entities.)
-- depends_on: {{ ref('affected_edges') }}
with repeated_hashes as (
    select hashed.key_hash
    from (
        select {{ hash_columns(['source_node_id', 'rel_type', 'source_system']) }} as key_hash
        from {{ graph_edges() }}
        where
            is_current
            and (
                source_node_id in (select changed.entity_id from {{ ref('changed_entities') }} as changed)
                or {{ refresh_everything() }}
            )
    ) as hashed
    group by hashed.key_hash
    having count(*) > 1
)

select
    source_node_id,
    rel_type,
    source_system,
    count(*) as current_versions
from {{ graph_edges() }}
where
    is_current
    and {{ hash_columns(['source_node_id', 'rel_type', 'source_system']) }} in (
        select repeated_hashes.key_hash from repeated_hashes
    )
group by source_node_id, rel_type, source_system
having count(*) > 1
