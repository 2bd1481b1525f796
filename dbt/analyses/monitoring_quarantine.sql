-- AAG monitoring check 'quarantine' (generated from aag/service/monitoring.py by
-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).
{% if target.type == 'databricks' %}
SELECT
  source_system,
  source_object,
  level,
  COUNT(*) AS entries,
  COUNT(DISTINCT batch_id) AS batches,
  MAX(quarantined_at) AS latest_at
FROM {{ source('landing', 'quarantine') }} AS quarantine
GROUP BY
  source_system,
  source_object,
  level
ORDER BY
  source_system NULLS LAST,
  source_object NULLS LAST,
  level NULLS LAST
{% else %}
SELECT
  source_system,
  source_object,
  level,
  COUNT(*) AS entries,
  COUNT(DISTINCT batch_id) AS batches,
  MAX(quarantined_at) AS latest_at
FROM {{ source('landing', 'quarantine') }} AS quarantine
GROUP BY
  source_system,
  source_object,
  level
ORDER BY
  source_system,
  source_object,
  level
{% endif %}
