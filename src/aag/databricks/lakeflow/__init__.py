"""The declarative pipeline (``pyspark.pipelines``): bronze → field events.

:func:`define` declares, for every configured source object, the datasets of a
Lakeflow Declarative Pipeline (Databricks) / Spark Declarative Pipeline (open source):

* ``<bronze>.<system>_<object>``: a streaming table of raw rows as received, one
  ``_raw`` JSON text per row, with ``_batch_id`` (one input file, or one commit
  version of a Fivetran table, is one batch), ``_row_number``, ``_landed_at``,
  ``_file_name``;
* temporary views that parse the landed rows into the columns AAG's extractors read
  and run the extractor's own SQL (:meth:`~aag.sources.base.Extractor.rows_sql`,
  ``events_sql``, ``nodes_sql``, ``quarantine_sql``, transpiled to Spark SQL): the
  very SQL the embedded engine runs, not a copy. Field histories (Salesforce
  ``ContactHistory``, SAP ``CDPOS``) are pivoted into their record object's columns
  first (``enrich_sql``); rows that only land (SAP ``ADR6``, ``CDHDR``) are only checked
  (``checked_rows_sql``, into quarantine);
* ``<graph>.field_events``, ``<graph>.node_candidates`` and
  ``<graph>.extract_quarantine``: materialized views over all objects, and
  ``<graph>.landed_batches``: one row per bronze batch (rows landed, file), so that
  the commit task logs batches that gave neither events nor quarantine rows too.

The edge rules, identity and the commit into ``graph.nodes`` / ``graph.relationships``
run after the pipeline, in the job task :func:`aag.databricks.job.commit_pending`, with the
same Spark engine: the rules need the stored history of the keys a batch touches and
a MERGE, which a declarative flow cannot express (see ``docs/deployment.md``).

Settings (pipeline ``configuration``):

``aag.bronze.mode``
    ``files`` (default): JSON Lines files under ``aag.landing.path``/``<system>/<object>/``;
    ``tables``: the change data feed of the table named by ``aag.source.<system>.<object>``
    (Fivetran tables, Segment's ``identifies``); objects without one (or with an empty
    one) are left out.
``aag.shape.<system>.<object>``
    ``tables`` mode: the column names of that source table, a shape of
    ``landing_shapes.csv`` (``fivetran``, ``segment_warehouse``); ``api`` (default) is the
    registry's own names. The bronze rows stay as the connector wrote them; the landed
    view reads each registry field from the shape's column.
``aag.schema.bronze`` / ``aag.schema.graph``
    Schemas of the datasets (default ``bronze`` and ``graph``).
``aag.objects``
    Comma-separated ``system.Object`` list (default: every configured object).
``aag.config.dir``
    Folder of the config CSVs (default: the packaged seeds).

Modules: :mod:`~aag.databricks.lakeflow.settings` (the settings), :mod:`~aag.databricks.lakeflow.translate`
(extractor SQL as Spark SQL, extractor Python as UDFs), :mod:`~aag.databricks.lakeflow.datasets`
(:func:`define`), :mod:`~aag.databricks.lakeflow.batch` (:func:`run_batch`).
"""

from aag.databricks.lakeflow.batch import run_batch
from aag.databricks.lakeflow.datasets import BRONZE_COLUMNS, CDF_COLUMNS, define
from aag.databricks.lakeflow.settings import Settings, session_conf
from aag.databricks.lakeflow.translate import key_of, landed_schema, landed_sql, spark_sql

__all__ = [
    "BRONZE_COLUMNS",
    "CDF_COLUMNS",
    "Settings",
    "define",
    "key_of",
    "landed_schema",
    "landed_sql",
    "run_batch",
    "session_conf",
    "spark_sql",
]
