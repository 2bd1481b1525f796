-- AAG monitoring check 'freshness' (generated from aag/service/monitoring.py by
-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).
{% if target.type == 'databricks' %}
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
  FROM {{ source('ledger', 'batches') }} AS batches
  WHERE
    status = 'committed'
  GROUP BY
    source_system
) AS b
LEFT JOIN (
  SELECT
    source_system,
    MAX(updated_at) AS latest_event_at
  FROM {{ source('silver', 'relationships') }} AS relationships
  GROUP BY
    source_system
) AS e
  ON e.source_system = b.source_system
ORDER BY
  b.source_system NULLS LAST
{% else %}
SELECT
  b.source_system,
  e.latest_event_at,
  b.latest_landing_at,
  b.batches,
  b.rows_landed,
  DATE_DIFF('SECOND', e.latest_event_at, CAST(CURRENT_TIMESTAMP AS TIMESTAMPTZ)) AS event_lag_seconds,
  DATE_DIFF('SECOND', b.latest_landing_at, CAST(CURRENT_TIMESTAMP AS TIMESTAMPTZ)) AS landing_lag_seconds
FROM (
  SELECT
    source_system,
    MAX(finished_at) AS latest_landing_at,
    COUNT(*) AS batches,
    CAST(SUM(rows_landed) AS BIGINT) AS rows_landed
  FROM {{ source('ledger', 'batches') }} AS batches
  WHERE
    status = 'committed'
  GROUP BY
    source_system
) AS b
LEFT JOIN (
  SELECT
    source_system,
    MAX(updated_at) AS latest_event_at
  FROM {{ source('silver', 'relationships') }} AS relationships
  GROUP BY
    source_system
) AS e
  ON e.source_system = b.source_system
ORDER BY
  b.source_system
{% endif %}
