-- AAG Databricks setup, step 02 (generated from aag/databricks/job.py by
-- `python -m aag.databricks databricks/setup`; do not edit by hand).
-- Parameter :catalog is the Unity Catalog catalog AAG lives in.
CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.nodes') (
  node_id STRING,
  node_type STRING,
  value STRING,
  checksum STRING,
  created_at TIMESTAMP,
  properties MAP<STRING, STRING>
)
USING DELTA
CLUSTER BY (node_type, node_id)
COMMENT 'AAG graph nodes (SPEC 2): content-addressed value nodes and entity nodes'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.relationships') (
  source_node_id STRING,
  target_node_id STRING,
  rel_type STRING,
  updated_at TIMESTAMP,
  confidence FLOAT,
  is_current BOOLEAN,
  source_system STRING,
  source_event_id STRING,
  properties MAP<STRING, STRING>
)
USING DELTA
CLUSTER BY (source_node_id)
COMMENT 'AAG graph edges (SPEC 2): one row per version of an edge, field-level updated_at'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.edge_events') (
  source_node_id STRING,
  rel_type STRING,
  source_system STRING,
  target_node_id STRING,
  updated_at TIMESTAMP,
  source_event_id STRING,
  confidence FLOAT,
  source_field STRING,
  batch_id STRING
)
USING DELTA
CLUSTER BY (source_node_id)
COMMENT 'AAG absorbed field events: the events no version row shows (aag.rules)'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.batches') (
  batch_id STRING,
  source_system STRING,
  source_object STRING,
  file_name STRING,
  file_sha256 STRING,
  status STRING,
  rows_landed BIGINT,
  rows_unchanged BIGINT,
  rows_suppressed BIGINT,
  rows_processed BIGINT,
  rows_quarantined BIGINT,
  fields_rejected BIGINT,
  field_events BIGINT,
  nodes_written BIGINT,
  edge_versions_written BIGINT,
  edge_rows_rewritten BIGINT,
  started_at TIMESTAMP,
  finished_at TIMESTAMP
)
USING DELTA
CLUSTER BY (batch_id)
COMMENT 'AAG batches ledger: one row per committed batch'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.bronze.quarantine') (
  source_system STRING,
  source_object STRING,
  batch_id STRING,
  row_number BIGINT,
  record_id STRING,
  level STRING,
  source_field STRING,
  reason STRING,
  raw STRING,
  quarantined_at TIMESTAMP
)
USING DELTA
CLUSTER BY (source_system, batch_id)
COMMENT 'Rows and fields AAG could not use, with the reason and the raw content'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.erasures') (
  erasure_id STRING,
  erased_at TIMESTAMP,
  requested_by STRING,
  customer_id STRING,
  source_system STRING,
  source_object STRING,
  record_key STRING
)
USING DELTA
CLUSTER BY (source_system, source_object)
COMMENT 'AAG erasure log: who erased which customer when, one one-way key per record, no values'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.graph.erased_entities') (
  erasure_id STRING,
  entity_id STRING
)
USING DELTA
CLUSTER BY (entity_id)
COMMENT 'AAG erased record entities (ids only): a re-sent field history of one is dropped'
TBLPROPERTIES (
  'delta.enableChangeDataFeed' = 'true',
  'delta.enableDeletionVectors' = 'true',
  'delta.autoOptimize.optimizeWrite' = 'true',
  'delta.autoOptimize.autoCompact' = 'true'
);
