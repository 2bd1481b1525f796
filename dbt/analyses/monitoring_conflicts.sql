-- AAG monitoring check 'conflicts' (generated from aag/service/monitoring.py by
-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).
{% if target.type == 'databricks' %}
WITH ce AS (
  SELECT
    COALESCE(m.target_node_id, e.source_node_id) AS customer_id,
    e.source_node_id AS record_id,
    a.attribute,
    e.target_node_id,
    e.source_system,
    e.updated_at
  FROM {{ source('silver', 'relationships') }} AS e
  JOIN {{ source('silver', 'nodes') }} AS c
    ON c.node_id = e.source_node_id AND c.node_type = 'customer'
  JOIN (
    SELECT DISTINCT
      attribute,
      rel_type
    FROM {{ ref('attribute_name_registry') }} AS attribute_name_registry
    WHERE
      role = 'attribute'
      AND attribute IN (
        'email',
        'phone',
        'first_name',
        'last_name',
        'full_name',
        'street',
        'city',
        'postal_code',
        'country',
        'email_marketing_consent'
      )
  ) AS a
    ON a.rel_type = e.rel_type
  LEFT JOIN {{ source('silver', 'relationships') }} AS m
    ON m.source_node_id = e.source_node_id AND m.rel_type = 'SAME_AS' AND m.is_current
  WHERE
    e.is_current
), pairs AS (
  SELECT DISTINCT
    a.customer_id,
    a.attribute,
    a.source_system AS source_a,
    b.source_system AS source_b
  FROM ce AS a
  JOIN ce AS b
    ON a.customer_id = b.customer_id
    AND a.attribute = b.attribute
    AND a.source_system < b.source_system
    AND a.target_node_id <> b.target_node_id
)
SELECT
  attribute,
  source_a,
  source_b,
  COUNT(*) AS customers
FROM pairs
GROUP BY
  attribute,
  source_a,
  source_b
ORDER BY
  customers DESC,
  attribute NULLS LAST,
  source_a NULLS LAST,
  source_b NULLS LAST
{% else %}
WITH ce AS (
  SELECT
    COALESCE(m.target_node_id, e.source_node_id) AS customer_id,
    e.source_node_id AS record_id,
    a.attribute,
    e.target_node_id,
    e.source_system,
    e.updated_at
  FROM {{ source('silver', 'relationships') }} AS e
  JOIN {{ source('silver', 'nodes') }} AS c
    ON c.node_id = e.source_node_id AND c.node_type = 'customer'
  JOIN (
    SELECT DISTINCT
      attribute,
      rel_type
    FROM {{ ref('attribute_name_registry') }} AS attribute_name_registry
    WHERE
      role = 'attribute'
      AND attribute IN (
        'email',
        'phone',
        'first_name',
        'last_name',
        'full_name',
        'street',
        'city',
        'postal_code',
        'country',
        'email_marketing_consent'
      )
  ) AS a
    ON a.rel_type = e.rel_type
  LEFT JOIN {{ source('silver', 'relationships') }} AS m
    ON m.source_node_id = e.source_node_id AND m.rel_type = 'SAME_AS' AND m.is_current
  WHERE
    e.is_current
), pairs AS (
  SELECT DISTINCT
    a.customer_id,
    a.attribute,
    a.source_system AS source_a,
    b.source_system AS source_b
  FROM ce AS a
  JOIN ce AS b
    ON a.customer_id = b.customer_id
    AND a.attribute = b.attribute
    AND a.source_system < b.source_system
    AND a.target_node_id <> b.target_node_id
)
SELECT
  attribute,
  source_a,
  source_b,
  COUNT(*) AS customers
FROM pairs
GROUP BY
  attribute,
  source_a,
  source_b
ORDER BY
  customers DESC,
  attribute,
  source_a,
  source_b
{% endif %}
