-- AAG Databricks setup, step 01 (generated from aag/databricks/job.py by
-- `python -m aag.databricks databricks/setup`; do not edit by hand).
-- Parameter :catalog is the Unity Catalog catalog AAG lives in.
-- Parameter :managed_location is a storage URL for it, or '' for the metastore's.
DECLARE OR REPLACE VARIABLE aag_create_catalog STRING;

SET VAR aag_create_catalog = 'CREATE CATALOG IF NOT EXISTS IDENTIFIER(:catalog)' ||
CASE
  WHEN :managed_location = '' THEN ''
  WHEN instr(:managed_location, '\'') > 0 OR instr(:managed_location, '\\') > 0
    THEN raise_error('managed_location must not contain a quote or a backslash')
  ELSE ' MANAGED LOCATION \'' || :managed_location || '\''
END;

EXECUTE IMMEDIATE aag_create_catalog  -- noqa: PRS
USING :catalog AS catalog;

CREATE SCHEMA IF NOT EXISTS IDENTIFIER(:catalog || '.bronze')
COMMENT 'Raw landed rows per source object, as received (pipeline streaming tables), and quarantine';

CREATE SCHEMA IF NOT EXISTS IDENTIFIER(:catalog || '.graph')
COMMENT 'The AAG graph: nodes, relationships, edge_events, the batches ledger, pipeline field events';

CREATE SCHEMA IF NOT EXISTS IDENTIFIER(:catalog || '.config')
COMMENT 'AAG configuration: attribute registry, source priorities, identity rules (seed CSVs)';

CREATE SCHEMA IF NOT EXISTS IDENTIFIER(:catalog || '.gold')
COMMENT 'Resolved customer profiles and other dbt models';
