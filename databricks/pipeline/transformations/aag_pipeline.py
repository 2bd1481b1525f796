"""AAG declarative pipeline: bronze streaming tables → field events (Lakeflow / Spark SDP).

Every dataset is declared by :func:`aag.databricks.lakeflow.define` from the AAG
configuration (attribute registry) with the extractors' own SQL, so this file holds no
rules. The ``spark`` session is provided by the pipeline runtime (Databricks, or the
open-source ``spark-pipelines`` CLI). Settings come from the pipeline configuration
(``aag.*`` keys, see ``pipeline.yml`` and ``spark-pipeline.yml``).
"""

from pyspark import pipelines as dp

from aag.databricks.lakeflow import define

define(spark, dp)  # type: ignore[name-defined]  # noqa: F821 - injected by the pipeline runtime
