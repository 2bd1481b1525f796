-- Profile v1 (deprecated): customer_id and the winning value of every canonical
-- attribute; v2 without the lineage columns.
select
    customer_id
    {%- for attr in var('customer_attributes') %},
    {{ attr }}{% endfor %}
from {{ ref('customer_profile', v=2) }}
