"""Every dataset of :func:`~aag.databricks.lakeflow.define` computed once, in batch, on plain Spark."""

from __future__ import annotations

from typing import Any

from aag.databricks.lakeflow.datasets import EXTRACTION_VIEW_PREFIX, define


class _BatchReader:
    """``spark.read`` standing in for ``spark.readStream`` (see :func:`run_batch`).

    A change data feed is read from the table's first version: each commit is then a
    batch, as for a stream that has followed the table since its creation (a batch read
    of the feed needs a starting version; a stream without one starts from a snapshot).
    """

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def option(self, key: str, value: Any) -> _BatchReader:
        reader = self._reader.option(key, value)
        if key == "readChangeFeed" and str(value).lower() == "true":
            reader = reader.option("startingVersion", 0)
        return _BatchReader(reader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class _BatchSpark:
    """A Spark session whose ``readStream`` is the batch reader (see :func:`run_batch`)."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark

    @property
    def readStream(self) -> Any:
        return _BatchReader(self._spark.read)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spark, name)


class _BatchRunner:
    """Stands in for ``pyspark.pipelines``: computes each dataset once, in declaration order.

    Datasets with a schema-qualified name become tables (Parquet on local Spark), the
    others temporary views, which is all the queries of :func:`define` need. Each object's
    extraction view (``aag_ex_rows_*``) is cached for the run: the three output views read
    it, and would otherwise run it (and the Python UDFs under it) once per output.
    """

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.datasets: list[str] = []
        self.cached: list[Any] = []

    def _declare(self, name: str | None = None, **_: Any) -> Any:
        def register(fn: Any) -> Any:
            df = fn()
            if name and "." in name:
                self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
                self.spark.sql(f"DROP TABLE IF EXISTS {name}")
                df.write.format("parquet").saveAsTable(name)
            else:
                if str(name).startswith(EXTRACTION_VIEW_PREFIX):
                    # Lazy: filled by the first output that reads it.
                    df = df.cache()
                    self.cached.append(df)
                df.createOrReplaceTempView(name)
            self.datasets.append(str(name))
            return fn

        return register

    table = materialized_view = temporary_view = _declare

    def release(self) -> None:
        """Drop the run's cached views from memory (the views stay, computed on read)."""
        for df in self.cached:
            df.unpersist()
        self.cached.clear()


def run_batch(spark: Any, conf: dict[str, str]) -> list[str]:
    """Compute every dataset of :func:`define` once, in batch, on a plain Spark session.

    For checking the pipeline's logic without a pipeline runtime (the tests do, on local
    Spark): streaming sources are read as batches (a change data feed from its first
    version), streaming tables and materialized views become tables, temporary views
    stay views. Returns the datasets in order.
    """
    runner = _BatchRunner(spark)
    try:
        define(_BatchSpark(spark), runner, conf)
    finally:
        runner.release()
    return runner.datasets
