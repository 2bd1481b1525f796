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
  very SQL the embedded engine runs, not a copy;
* ``<graph>.field_events``, ``<graph>.node_candidates`` and
  ``<graph>.extract_quarantine``: materialized views over all objects.

The edge rules, identity and the commit into ``graph.nodes`` / ``graph.relationships``
run after the pipeline, in the job task :func:`aag.databricks.commit_pending`, with the
same Spark engine: the rules need the stored history of the keys a batch touches and
a MERGE, which a declarative flow cannot express (see ``docs/deployment.md``).

Settings (pipeline ``configuration``):

``aag.bronze.mode``
    ``files`` (default): JSON Lines files under ``aag.landing.path``/``<system>/<object>/``;
    ``tables``: the change data feed of the table named by ``aag.source.<system>.<object>``
    (Fivetran tables, Segment's ``identifies``); objects without one are left out.
``aag.schema.bronze`` / ``aag.schema.graph``
    Schemas of the datasets (default ``bronze`` and ``graph``).
``aag.objects``
    Comma-separated ``system.Object`` list (default: every configured object).
``aag.config.dir``
    Folder of the config CSVs (default: the packaged seeds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from aag.config import Config, load_config
from aag.engine.base import CANONICAL_DIALECT
from aag.engine.spark import fix_for_spark, spark_arrow_schema
from aag.model import FIELD_EVENTS, NODES, QUARANTINE
from aag.normalize import country_table, normalise_phones
from aag.sources import extractor_for
from aag.sources.base import Extractor, landed_table

#: Columns bronze adds to each raw row (besides ``_raw``).
BRONZE_COLUMNS = ("_batch_id", "_row_number", "_landed_at", "_file_name")
#: Change data feed columns of a source table, left out of ``_raw``.
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class Settings:
    """Pipeline settings, read from the pipeline configuration."""

    mode: str = "files"
    landing: str = "/Volumes/aag/bronze/landing"
    bronze: str = "bronze"
    graph: str = "graph"
    objects: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    config_dir: str = ""

    @classmethod
    def from_conf(cls, conf: dict[str, str]) -> Settings:
        """Settings from ``aag.*`` configuration keys."""
        objects = tuple(o.strip() for o in conf.get("aag.objects", "").split(",") if o.strip())
        sources = tuple(
            (key.removeprefix("aag.source."), value)
            for key, value in sorted(conf.items())
            if key.startswith("aag.source.")
        )
        return cls(
            mode=conf.get("aag.bronze.mode", "files"),
            landing=conf.get("aag.landing.path", cls.landing),
            bronze=conf.get("aag.schema.bronze", "bronze"),
            graph=conf.get("aag.schema.graph", "graph"),
            objects=objects,
            sources=sources,
            config_dir=conf.get("aag.config.dir", ""),
        )


def key_of(system: str, obj: str) -> str:
    """``system_object`` in lower case, safe as a table name."""
    return re.sub(r"\W", "_", f"{system}_{obj}".lower())


def spark_sql(canonical: str, tables: dict[str, str]) -> str:
    """Canonical SQL → Spark SQL, with engine table names replaced by pipeline datasets."""
    tree = sqlglot.parse_one(canonical, read=CANONICAL_DIALECT)
    for table in list(tree.find_all(exp.Table)):
        if not table.db and table.name in tables:
            alias = table.alias_or_name
            table.replace(exp.to_table(tables[table.name]).as_(alias))
    return tree.transform(fix_for_spark).sql(dialect="spark")


def landed_sql(source: str, fields: tuple[str, ...]) -> str:
    """Spark SQL parsing bronze rows into landed rows (what :func:`aag.bronze.parse_raw` gives)."""
    picks = [
        f"get_json_object(_raw, '$.{field}') AS `{field}`"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field)
        else f"get_json_object(_raw, '$[\\'{field}\\']') AS `{field}`"
        for field in fields
    ]
    error = (
        "CASE WHEN get_json_object(_raw, '$') IS NULL THEN 'invalid JSON' "
        "WHEN NOT startswith(ltrim(_raw), '{') THEN 'not a JSON object' END"
    )
    return (
        f"SELECT _batch_id, _landed_at, _row_number, _raw, {error} AS _error"
        + "".join(", " + p for p in picks)
        + f" FROM {source}"
    )


def _prepare_udf(extractor: Extractor, schema: pa.Schema) -> Any:
    """A pandas UDF running the extractor's ``prepare`` (Arrow in, Arrow out) on a row struct.

    (``mapInArrow`` would be the natural fit, but pipeline query functions may not
    trigger analysis, which it does through Spark Connect.)
    """
    from pyspark.sql.pandas import functions
    from pyspark.sql.pandas.types import from_arrow_schema

    pandas_udf: Any = functions.pandas_udf  # the type hints of the function select its kind

    def prepare(rows: pd.DataFrame) -> pd.DataFrame:
        table = pa.Table.from_pandas(rows, preserve_index=False)
        return extractor.prepare(table).cast(schema).to_pandas()

    return pandas_udf(prepare, returnType=from_arrow_schema(schema))


def _e164_udf() -> Any:
    """A pandas UDF normalising (raw phone, region) pairs with :func:`aag.normalize.normalise_phones`."""
    from pyspark.sql.pandas import functions

    pandas_udf: Any = functions.pandas_udf

    def e164(raw: pd.Series, region: pd.Series) -> pd.Series:
        table = normalise_phones(
            zip(raw.tolist(), [r if isinstance(r, str) else None for r in region], strict=True)
        )
        return pd.Series(table.column("e164").to_pylist(), dtype=object)

    from pyspark.sql.types import StringType

    return pandas_udf(e164, returnType=StringType())


def _overrides_prepare(extractor: Extractor) -> bool:
    return type(extractor).prepare is not Extractor.prepare


def landed_schema(extractor: Extractor, prepared: bool = True) -> pa.Schema:
    """Schema of the landed rows the extractor reads (after its ``prepare``, unless not ``prepared``)."""
    base = pa.schema(
        [
            pa.field("_batch_id", pa.string()),
            pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
            pa.field("_row_number", pa.int64()),
            pa.field("_raw", pa.string()),
            pa.field("_error", pa.string()),
            *[pa.field(f, pa.string()) for f in extractor.fields],
        ]
    )
    if not prepared:
        return base
    return spark_arrow_schema(extractor.prepare(base.empty_table()).schema)


def session_conf(spark: Any, prefix: str = "") -> dict[str, str]:
    """The session's configuration keys starting with ``prefix`` (the pipeline settings).

    ``spark.conf.getAll`` exists from PySpark 4.0 on; a pipeline on a Spark 3.5 runtime
    lists the settings with ``SET`` instead, so the same source file runs on both.
    """
    get_all = getattr(spark.conf, "getAll", None)
    if get_all is None:
        pairs = {str(row[0]): str(row[1]) for row in spark.sql("SET").collect()}
    else:
        pairs = dict(get_all() if callable(get_all) else get_all)
    return {k: v for k, v in pairs.items() if k.startswith(prefix)}


def define(spark: Any, dp: Any | None = None, conf: dict[str, str] | None = None) -> list[str]:
    """Declare the pipeline's datasets; returns their names.

    Args:
        spark: The pipeline's Spark session (``spark`` inside a pipeline source file).
        dp: The ``pyspark.pipelines`` module (imported when omitted).
        conf: Settings (default: the ``aag.*`` keys of the session configuration).
    """
    if dp is None:
        from pyspark import pipelines

        dp = pipelines
    if conf is None:
        conf = session_conf(spark, "aag.")
    settings = Settings.from_conf(conf)
    config: Config = load_config(Path(settings.config_dir) if settings.config_dir else None)
    sources = dict(settings.sources)
    specs = [
        s
        for s in config.objects
        if (not settings.objects or f"{s.source_system}.{s.source_object}" in settings.objects)
        and (settings.mode == "files" or f"{s.source_system}.{s.source_object}" in sources)
        # Field histories and change documents (rows about another object's records) are
        # pivoted into their owner's columns before extraction; the pipeline does not do
        # that yet, so they are loaded with `aag ingest` (see docs/deployment.md).
        and extractor_for(s, config).belongs_to is None
    ]
    names: list[str] = []

    def countries() -> Any:
        return spark.createDataFrame(country_table().to_pandas())

    dp.temporary_view(name="aag_countries")(countries)

    names.append("aag_countries")
    landed_names: dict[tuple[str, str], str] = {}
    for spec in specs:
        system, obj = spec.source_system, spec.source_object
        key = key_of(system, obj)
        bronze_name = f"{settings.bronze}.{key}"
        names.append(bronze_name)
        names += _bronze(spark, dp, settings, bronze_name, system, obj, sources.get(f"{system}.{obj}", ""))
        extractor = extractor_for(spec, config)
        landed_names[(system, obj)] = f"aag_landed_{key}"

        def landed(source: str = bronze_name, fields: tuple[str, ...] = extractor.fields) -> Any:
            return spark.sql(landed_sql(source, fields))

        dp.temporary_view(name=f"aag_landed_{key}")(landed)
        names.append(f"aag_landed_{key}")
    events, nodes, quarantine = [], [], []
    for spec in specs:
        extractor = extractor_for(spec, config)
        if not extractor.emits_events:
            continue
        missing = [o for o in extractor.reads if (spec.source_system, o) not in landed_names]
        if missing:
            continue
        key = key_of(spec.source_system, spec.source_object)
        names += _extraction(spark, dp, extractor, key, landed_names)
        events.append(f"aag_events_{key}")
        nodes.append(f"aag_nodes_{key}")
        quarantine.append(f"aag_quarantine_{key}")
    names += _outputs(spark, dp, settings, events, nodes, quarantine)
    return names


def _bronze(
    spark: Any, dp: Any, settings: Settings, name: str, system: str, obj: str, source: str
) -> list[str]:
    """The streaming table of one object's raw rows."""
    from pyspark.sql import functions as F

    def from_files() -> Any:
        path = f"{settings.landing.rstrip('/')}/{system}/{obj}"
        df = spark.readStream.format("text").load(path)
        file_name = F.col("_metadata.file_path")
        return df.select(
            F.substring(F.sha2(F.concat_ws("/", F.lit(system), F.lit(obj), file_name), 256), 1, 32).alias(
                "_batch_id"
            ),
            F.xxhash64(file_name, F.monotonically_increasing_id()).alias("_row_number"),
            F.col("value").alias("_raw"),
            F.current_timestamp().alias("_landed_at"),
            file_name.alias("_file_name"),
        ).where(F.trim(F.col("_raw")) != "")

    def from_table() -> Any:
        # Fivetran (and Segment's destination) keep one row per record; with Change Data
        # Feed on, each commit's inserts and updates are the next batch of rows.
        df = spark.readStream.option("readChangeFeed", "true").table(source)
        df = df.where(F.col("_change_type").isin("insert", "update_postimage"))
        data = [c for c in df.columns if c not in CDF_COLUMNS]
        version = F.col("_commit_version").cast("string")
        return df.select(
            F.substring(F.sha2(F.concat_ws("/", F.lit(system), F.lit(obj), version), 256), 1, 32).alias(
                "_batch_id"
            ),
            F.xxhash64(version, F.monotonically_increasing_id()).alias("_row_number"),
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in data])).alias("_raw"),
            F.current_timestamp().alias("_landed_at"),
            F.concat(F.lit(source + "@v"), version).alias("_file_name"),
        )

    dp.table(name=name, comment=f"Raw {system} {obj} rows as received (AAG bronze)")(
        from_table if settings.mode == "tables" else from_files
    )
    return []


def _extraction(
    spark: Any, dp: Any, extractor: Extractor, key: str, landed: dict[tuple[str, str], str]
) -> list[str]:
    """Temporary views running the extractor's SQL over one object's landed rows."""
    from pyspark.sql.pandas.types import from_arrow_schema

    system = extractor.spec.source_system
    reads = {landed_table(o): landed[(system, o)] for o in extractor.reads}
    names = []
    schema = landed_schema(extractor)
    carry = ("_batch_id", "_landed_at")

    base = [c for c in landed_schema(extractor, prepared=False).names]

    # UDFs are made here: a pipeline query function may not trigger analysis.
    prepare_udf = _prepare_udf(extractor, schema) if _overrides_prepare(extractor) else None
    e164_udf = _e164_udf()

    def rows() -> Any:
        from pyspark.sql import functions as F

        df = spark.read.table(landed[(system, extractor.spec.source_object)])
        if prepare_udf is not None:
            udf = prepare_udf
            df = df.select(udf(F.struct(*[F.col(f"`{c}`") for c in base])).alias("p")).select("p.*")
        return df

    dp.temporary_view(name=f"aag_prepared_{key}")(rows)
    names.append(f"aag_prepared_{key}")
    source = f"aag_prepared_{key}"
    enrich = extractor.enrich_sql("aag_enrich_in", list(schema.names))
    if enrich is not None:
        enrich_spark = spark_sql(enrich, {"aag_enrich_in": source, **reads})

        def enriched(sql: str = enrich_spark) -> Any:
            return spark.sql(sql)

        dp.temporary_view(name=f"aag_enriched_{key}")(enriched)
        names.append(f"aag_enriched_{key}")
        source = f"aag_enriched_{key}"
    dedupe = extractor.dedupe_sql("aag_dedupe_in")
    if dedupe is not None:
        dedupe_spark = spark_sql(dedupe, {"aag_dedupe_in": source})

        def deduped(sql: str = dedupe_spark) -> Any:
            return spark.sql(sql)

        dp.temporary_view(name=f"aag_rows_{key}")(deduped)
    else:

        def plain(sql: str = f"SELECT * FROM {source}") -> Any:
            return spark.sql(sql)

        dp.temporary_view(name=f"aag_rows_{key}")(plain)
    names.append(f"aag_rows_{key}")
    tables = {
        "batch_rows": f"aag_rows_{key}",
        "aag_phones": f"aag_phones_{key}",
        "ex_rows": f"aag_ex_rows_{key}",
    }
    pairs_sql = extractor.phone_pairs_sql()
    phone_schema = from_arrow_schema(
        pa.schema([("raw", pa.string()), ("region", pa.string()), ("e164", pa.string())])
    )

    def phones(sql: str | None = spark_sql(pairs_sql, tables) if pairs_sql else None) -> Any:
        from pyspark.sql import functions as F

        if sql is None:
            return spark.createDataFrame([], phone_schema)
        return spark.sql(sql).select("raw", "region", e164_udf(F.col("raw"), F.col("region")).alias("e164"))

    dp.temporary_view(name=f"aag_phones_{key}")(phones)
    names.append(f"aag_phones_{key}")
    views = {
        f"aag_ex_rows_{key}": extractor.rows_sql(carry=carry, ingest_sql='r."_landed_at"'),
        f"aag_events_{key}": (
            f"SELECT *, {_lit(extractor.spec.source_object)} AS source_object, "
            f"{_lit(extractor.spec.entity_type)} AS entity_type "
            f"FROM ({extractor.events_sql('', '_batch_id')}) e"
        ),
        f"aag_nodes_{key}": extractor.nodes_sql("CAST(current_timestamp AS TIMESTAMPTZ)"),
        f"aag_quarantine_{key}": extractor.quarantine_sql(
            "", "CAST(current_timestamp AS TIMESTAMPTZ)", batch_sql="r._batch_id"
        ),
    }
    for view, canonical in views.items():

        def query(sql: str = spark_sql(canonical, tables)) -> Any:
            return spark.sql(sql)

        dp.temporary_view(name=view)(query)
        names.append(view)
    return names


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _outputs(
    spark: Any, dp: Any, settings: Settings, events: list[str], nodes: list[str], quarantine: list[str]
) -> list[str]:
    """The materialized views the graph commit reads."""
    extra = "source_object, entity_type"
    outputs = {
        f"{settings.graph}.field_events": (events, f"{', '.join(FIELD_EVENTS.names)}, {extra}"),
        f"{settings.graph}.node_candidates": (nodes, ", ".join(NODES.names)),
        f"{settings.graph}.extract_quarantine": (quarantine, ", ".join(QUARANTINE.names)),
    }
    comments = {
        "field_events": "AAG field events of every landed row (extractor SQL); the graph commit's input",
        "node_candidates": "Nodes the field events refer to, one per node id and object",
        "extract_quarantine": "Rows and fields extraction set aside, before the commit copies them",
    }
    for name, (views, cols) in outputs.items():
        if not views:
            continue

        def union(sql: str = " UNION ALL ".join(f"SELECT {cols} FROM {v}" for v in views)) -> Any:
            return spark.sql(sql)

        dp.materialized_view(name=name, comment=comments[name.split(".")[-1]])(union)
    return list(outputs)


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
    others temporary views, which is all the queries of :func:`define` need.
    """

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.datasets: list[str] = []

    def _declare(self, name: str | None = None, **_: Any) -> Any:
        def register(fn: Any) -> Any:
            df = fn()
            if name and "." in name:
                self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
                self.spark.sql(f"DROP TABLE IF EXISTS {name}")
                df.write.format("parquet").saveAsTable(name)
            else:
                df.createOrReplaceTempView(name)
            self.datasets.append(str(name))
            return fn

        return register

    table = materialized_view = temporary_view = _declare


def run_batch(spark: Any, conf: dict[str, str]) -> list[str]:
    """Compute every dataset of :func:`define` once, in batch, on a plain Spark session.

    For checking the pipeline's logic without a pipeline runtime (the tests do, on local
    Spark): streaming sources are read as batches (a change data feed from its first
    version), streaming tables and materialized views become tables, temporary views
    stay views. Returns the datasets in order.
    """
    runner = _BatchRunner(spark)
    define(_BatchSpark(spark), runner, conf)
    return runner.datasets
