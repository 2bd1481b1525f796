"""AAG on Databricks: the graph in Unity Catalog tables, the declarative pipeline, the job.

:mod:`~aag.databricks.store` keeps the graph as Spark catalog tables,
:mod:`~aag.databricks.lakeflow` declares the pipeline (bronze → field events) and
:mod:`~aag.databricks.job` writes the catalog's setup SQL and runs the graph commit task
(``aag-databricks``, ``python -m aag.databricks``). Nothing is imported here, so the
store and the pipeline load without the job's modules.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    """The ``aag-databricks`` command: :func:`aag.databricks.job.main`."""
    from aag.databricks.job import main as job_main

    job_main(argv)
