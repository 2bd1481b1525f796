-- Attribute name <-> rel_type, from the registry rows with role attribute (an empty
-- role means attribute, as in the engine). The schema tests require a one-to-one
-- mapping: an attribute stored under two rel_types, or one rel_type carrying two
-- attributes, would make the profile depend on registry row order.
select
    trim(attribute) as attribute,
    trim(rel_type) as rel_type
from {{ ref('attribute_name_registry') }}
where
    coalesce(nullif(trim(role), ''), 'attribute') = 'attribute'
    and nullif(trim(attribute), '') is not null
    and nullif(trim(rel_type), '') is not null
group by trim(attribute), trim(rel_type)
