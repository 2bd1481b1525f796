-- AAG monitoring check 'freshness' (generated from aag/service/monitoring.py by
-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).
-- Parameter :catalog is the Unity Catalog catalog of databricks/setup.
SELECT
  b.source_system,
  e.latest_event_at,
  b.latest_landing_at,
  b.batches,
  b.rows_landed,
  DATEDIFF(SECOND, e.latest_event_at, CAST(CURRENT_TIMESTAMP() AS TIMESTAMP)) AS event_lag_seconds,
  DATEDIFF(SECOND, b.latest_landing_at, CAST(CURRENT_TIMESTAMP() AS TIMESTAMP)) AS landing_lag_seconds
FROM (
  SELECT
    source_system,
    MAX(finished_at) AS latest_landing_at,
    COUNT(*) AS batches,
    CAST(SUM(rows_landed) AS BIGINT) AS rows_landed
  FROM IDENTIFIER(:catalog || '.graph.batches') AS batches
  WHERE
    status = 'committed'
  GROUP BY
    source_system
) AS b
LEFT JOIN (
  SELECT
    source_system,
    MAX(updated_at) AS latest_event_at
  FROM IDENTIFIER(:catalog || '.graph.relationships') AS relationships
  GROUP BY
    source_system
) AS e
  ON e.source_system = b.source_system
ORDER BY
  b.source_system NULLS LAST;
