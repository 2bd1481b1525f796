"""Delta Lake's own Spark connector as the reference reader and writer.

Run by the Delta reference environment (``.venv-delta``, made by ``make delta-reference``:
PySpark 4.2.0 and Delta Lake 4.4.0's jars from the local Maven repository), never by the
project's own environment, and called by ``tests/test_delta_reference.py``::

    python delta_spark.py CLASSPATH_FILE dump OUT_DIR NAME=TABLE [NAME=TABLE ...]
        read each table with Delta-Spark and write its rows to OUT_DIR/NAME.parquet
    python delta_spark.py CLASSPATH_FILE cdf OUT_DIR NAME=TABLE@START [NAME=TABLE@START ...]
        read each table's change data feed from version START with Delta-Spark and write
        it to OUT_DIR/NAME.parquet
    python delta_spark.py CLASSPATH_FILE rewrite TABLE PREDICATE
        switch deletion vectors on, delete the rows matching PREDICATE and append them
        again: the same rows, the old copies now hidden behind deletion vectors

Each call prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession


def session(classpath: Path) -> SparkSession:
    """A local Spark session with Delta Lake's extension and catalog."""
    jars = ",".join(p for p in classpath.read_text().strip().split(":") if p)
    return (
        SparkSession.builder.master("local[2]")
        .appName("aag-delta-reference")
        .config("spark.jars", jars)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        # A local session: snapshots of these small tables need no 50-task rebuild.
        .config("spark.databricks.delta.snapshotPartitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def dump(spark: SparkSession, out: Path, tables: list[str]) -> dict[str, int]:
    """Every table's rows, as Delta-Spark reads them, into ``out/<name>.parquet``."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for entry in tables:
        name, _, path = entry.partition("=")
        rows = spark.read.format("delta").load(path).toArrow()
        pq.write_table(rows, out / f"{name}.parquet")
        counts[name] = rows.num_rows
    return counts


def cdf(spark: SparkSession, out: Path, tables: list[str]) -> dict[str, int]:
    """Every table's change data feed from a version, as Delta-Spark reads it, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for entry in tables:
        name, _, spec = entry.partition("=")
        path, _, start = spec.rpartition("@")
        rows = (
            spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", int(start))
        )
        table = rows.load(path).drop("_commit_timestamp").toArrow()
        pq.write_table(table, out / f"{name}.parquet")
        counts[name] = table.num_rows
    return counts


def rewrite(spark: SparkSession, table: str, predicate: str) -> dict[str, int]:
    """Delete the rows matching ``predicate`` behind deletion vectors, then append them again."""
    target = f"delta.`{table}`"
    spark.sql(f"ALTER TABLE {target} SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    with tempfile.TemporaryDirectory() as tmp:
        kept = f"{tmp}/rows"
        spark.read.format("delta").load(table).where(predicate).write.parquet(kept)
        moved = spark.read.parquet(kept).count()
        spark.sql(f"DELETE FROM {target} WHERE {predicate}")
        spark.read.parquet(kept).write.format("delta").mode("append").save(table)
    detail = spark.sql(f"DESCRIBE DETAIL {target}").collect()[0].asDict()
    return {
        "rows_moved": moved,
        "min_reader_version": int(detail["minReaderVersion"]),
        "min_writer_version": int(detail["minWriterVersion"]),
    }


def main(argv: list[str]) -> None:
    """Parse the command line (see the module docstring) and run one command."""
    classpath, command, *args = argv
    spark = session(Path(classpath))
    try:
        if command == "dump":
            result: dict[str, int] = dump(spark, Path(args[0]), args[1:])
        elif command == "cdf":
            result = cdf(spark, Path(args[0]), args[1:])
        elif command == "rewrite":
            result = rewrite(spark, args[0], args[1])
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        spark.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
