-- AAG monitoring check 'completeness' (generated from aag/service/monitoring.py by
-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).
-- Parameter :catalog is the Unity Catalog catalog of databricks/setup.
WITH ce AS (
  SELECT
    COALESCE(m.target_node_id, e.source_node_id) AS customer_id,
    e.source_node_id AS record_id,
    a.attribute,
    e.target_node_id,
    e.source_system,
    e.updated_at
  FROM IDENTIFIER(:catalog || '.graph.relationships') AS e
  JOIN IDENTIFIER(:catalog || '.graph.nodes') AS c
    ON c.node_id = e.source_node_id AND c.node_type = 'customer'
  JOIN (
    SELECT DISTINCT
      attribute,
      rel_type
    FROM IDENTIFIER(:catalog || '.config.attribute_name_registry') AS attribute_name_registry
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
  LEFT JOIN IDENTIFIER(:catalog || '.graph.relationships') AS m
    ON m.source_node_id = e.source_node_id AND m.rel_type = 'SAME_AS' AND m.is_current
  WHERE
    e.is_current
), customers AS (
  SELECT
    COUNT(*) AS n
  FROM IDENTIFIER(:catalog || '.graph.nodes') AS c
  WHERE
    c.node_type = 'customer'
    AND NOT EXISTS(
      SELECT
        1
      FROM IDENTIFIER(:catalog || '.graph.relationships') AS m
      WHERE
        m.source_node_id = c.node_id AND m.rel_type = 'SAME_AS' AND m.is_current
    )
), held AS (
  SELECT
    attribute,
    'any' AS source_system,
    COUNT(DISTINCT customer_id) AS customers
  FROM ce
  GROUP BY
    attribute
  UNION ALL
  SELECT
    attribute,
    source_system,
    COUNT(DISTINCT customer_id)
  FROM ce
  GROUP BY
    attribute,
    source_system
)
SELECT
  h.attribute,
  h.source_system,
  h.customers,
  c.n AS of_customers,
  ROUND(CAST(h.customers AS DOUBLE) / NULLIF(c.n, 0), 4) AS share
FROM held AS h
CROSS JOIN customers AS c
ORDER BY
  h.attribute NULLS LAST,
  CASE WHEN h.source_system = 'any' THEN 0 ELSE 1 END NULLS LAST,
  h.source_system NULLS LAST;
