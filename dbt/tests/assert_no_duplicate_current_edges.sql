-- SPEC §3: at most one current version per edge key (source_node_id, rel_type,
-- source_system). Rows returned here mean a broken SCD2 merge.
select
    source_node_id,
    rel_type,
    source_system,
    count(*) as current_versions
from {{ source('silver', 'relationships') }}
where is_current
group by source_node_id, rel_type, source_system
having count(*) > 1
