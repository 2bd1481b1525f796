"""The datasets :func:`define` declares: bronze streaming tables, extraction views, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from aag.config import Config, load_config
from aag.databricks.lakeflow.settings import Settings, session_conf
from aag.databricks.lakeflow.translate import (
    _e164_udf,
    _overrides_prepare,
    _prepare_udf,
    key_of,
    landed_schema,
    landed_sql,
    spark_sql,
    without_star_except,
)
from aag.engine.dialect import lit
from aag.engine.spark import pyspark_version
from aag.errors import ConfigError
from aag.model import FIELD_EVENTS, NODES, QUARANTINE
from aag.normalize import country_table
from aag.sources import extractor_for
from aag.sources.base import Extractor, LandingExtractor, landed_table

#: Columns bronze adds to each raw row (besides ``_raw``).
BRONZE_COLUMNS = ("_batch_id", "_row_number", "_landed_at", "_file_name")
#: Change data feed columns of a source table, left out of ``_raw``.
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
#: ``to_json`` options for the timestamps of a source table's rows.
_JSON_TIMES = {"timeZone": "UTC", "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}
#: Name prefix of an object's extraction view, which its events, nodes and quarantine read.
EXTRACTION_VIEW_PREFIX = "aag_ex_rows_"


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
    shapes = _shapes(settings, config)
    specs = [
        s
        for s in config.objects
        if (not settings.objects or f"{s.source_system}.{s.source_object}" in settings.objects)
        and (settings.mode == "files" or f"{s.source_system}.{s.source_object}" in sources)
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
        shape = shapes.get((system, obj), {})

        def landed(
            source: str = bronze_name,
            fields: tuple[str, ...] = extractor.fields,
            shape: dict[str, str] = shape,
        ) -> Any:
            return spark.sql(landed_sql(source, fields, shape))

        dp.temporary_view(name=f"aag_landed_{key}")(landed)
        names.append(f"aag_landed_{key}")
    events, nodes, quarantine = [], [], []
    for spec in specs:
        extractor = extractor_for(spec, config)
        key = key_of(spec.source_system, spec.source_object)
        if isinstance(extractor, LandingExtractor):
            names += _landing_checks(
                spark, dp, extractor, key, landed_names[(spec.source_system, spec.source_object)]
            )
            quarantine.append(f"aag_quarantine_{key}")
            continue
        missing = [o for o in extractor.reads if (spec.source_system, o) not in landed_names]
        if missing:
            continue
        names += _extraction(spark, dp, extractor, key, landed_names)
        events.append(f"aag_events_{key}")
        nodes.append(f"aag_nodes_{key}")
        quarantine.append(f"aag_quarantine_{key}")
    names += _outputs(spark, dp, settings, events, nodes, quarantine)
    names += _landed_batches(spark, dp, settings, [(s.source_system, s.source_object) for s in specs])
    return names


#: The materialized view of every landed batch (under the graph schema).
LANDED_BATCHES = "landed_batches"


def _landed_batches(spark: Any, dp: Any, settings: Settings, objects: list[tuple[str, str]]) -> list[str]:
    """One row per bronze batch: its object, rows landed and file.

    The commit task writes a ledger row for every batch this view names, also one whose
    rows gave no field event and no quarantine row (every row of a change-document
    header, a history of fields AAG does not map), with the rows it landed.
    """
    if not objects:
        return []
    sql = " UNION ALL ".join(
        f"SELECT {lit(system, 'spark')} AS source_system, {lit(obj, 'spark')} AS source_object, "  # noqa: S608 - dataset names from key_of; values via dialect.lit
        f"_batch_id AS batch_id, count(*) AS rows_landed, max(_file_name) AS file_name "
        f"FROM {settings.bronze}.{key_of(system, obj)} GROUP BY _batch_id"
        for system, obj in objects
    )

    def landed(sql: str = sql) -> Any:
        return spark.sql(sql)

    name = f"{settings.graph}.{LANDED_BATCHES}"
    dp.materialized_view(name=name, comment="Every bronze batch: its object, rows landed and file")(landed)
    return [name]


def _shapes(settings: Settings, config: Config) -> dict[tuple[str, str], dict[str, str]]:
    """Each ``aag.shape.<system>.<object>`` setting as that object's column mapping.

    An unknown object or shape is a :class:`~aag.errors.ConfigError`, and so is a shape
    in ``files`` mode: landed files carry the API's field names.
    """
    out: dict[tuple[str, str], dict[str, str]] = {}
    for name, shape in settings.shapes:
        system, _, obj = name.partition(".")
        mapping = config.landing_shape(system, obj, shape)
        if mapping and settings.mode != "tables":
            raise ConfigError(f"aag.shape.{name} = {shape}: landing shapes apply to aag.bronze.mode = tables")
        spec = config.object(system, obj)
        out[(spec.source_system, spec.source_object)] = mapping
    return out


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
            # Connector tables have TIMESTAMP columns: written as UTC text with every
            # digit, whatever the session's time zone.
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in data]), _JSON_TIMES).alias("_raw"),
            F.current_timestamp().alias("_landed_at"),
            F.concat(F.lit(source + "@v"), version).alias("_file_name"),
        )

    dp.table(name=name, comment=f"Raw {system} {obj} rows as received (AAG bronze)")(
        from_table if settings.mode == "tables" else from_files
    )
    return []


def _landing_checks(spark: Any, dp: Any, extractor: LandingExtractor, key: str, landed: str) -> list[str]:
    """Views quarantining the rows of an object that only lands (SAP ADR6, CDHDR).

    The rows stay in bronze for another object's extraction to join; the checks are the
    extractor's own (:meth:`~aag.sources.base.LandingExtractor.checked_rows_sql`).
    """
    tables = {"batch_rows": landed, "ex_rows": f"{EXTRACTION_VIEW_PREFIX}{key}"}
    views = {
        f"{EXTRACTION_VIEW_PREFIX}{key}": extractor.checked_rows_sql(),
        f"aag_quarantine_{key}": extractor.quarantine_sql(
            "", "CAST(current_timestamp AS TIMESTAMPTZ)", batch_sql="r._batch_id"
        ),
    }
    return _sql_views(spark, dp, views, tables)


def _sql_views(spark: Any, dp: Any, views: dict[str, str], tables: dict[str, str]) -> list[str]:
    """Declare one temporary view per canonical SQL (its tables renamed, transpiled); their names."""
    for view, canonical in views.items():

        def query(sql: str = spark_sql(canonical, tables)) -> Any:
            return spark.sql(sql)

        dp.temporary_view(name=view)(query)
    return list(views)


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
        dropped: tuple[str, ...] = ()
        if pyspark_version() < (4, 0):
            # Spark 3.5 has no SELECT * EXCEPT: the columns are dropped from the DataFrame.
            # Spark 4 keeps the SQL whole: a declarative pipeline (Spark Connect) analyses a
            # DataFrame method on a flow's SQL at once, before the datasets it reads exist.
            dedupe_spark, dropped = without_star_except(dedupe_spark)

        def deduped(sql: str = dedupe_spark, dropped: tuple[str, ...] = dropped) -> Any:
            frame = spark.sql(sql)
            return frame.drop(*dropped) if dropped else frame

        dp.temporary_view(name=f"aag_rows_{key}")(deduped)
    else:

        def plain(sql: str = f"SELECT * FROM {source}") -> Any:  # noqa: S608 - dataset names from key_of; values via dialect.lit
            return spark.sql(sql)

        dp.temporary_view(name=f"aag_rows_{key}")(plain)
    names.append(f"aag_rows_{key}")
    tables = {
        "batch_rows": f"aag_rows_{key}",
        "aag_phones": f"aag_phones_{key}",
        "ex_rows": f"{EXTRACTION_VIEW_PREFIX}{key}",
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
        f"{EXTRACTION_VIEW_PREFIX}{key}": extractor.rows_sql(carry=carry, ingest_sql='r."_landed_at"'),
        f"aag_events_{key}": (
            f"SELECT *, {lit(extractor.spec.source_object)} AS source_object, "  # noqa: S608 - dataset names from key_of; values via dialect.lit
            f"{lit(extractor.spec.entity_type)} AS entity_type "
            f"FROM ({extractor.events_sql('', '_batch_id')}) e"
        ),
        f"aag_nodes_{key}": extractor.nodes_sql("CAST(current_timestamp AS TIMESTAMPTZ)"),
        f"aag_quarantine_{key}": extractor.quarantine_sql(
            "", "CAST(current_timestamp AS TIMESTAMPTZ)", batch_sql="r._batch_id"
        ),
    }
    return [*names, *_sql_views(spark, dp, views, tables)]


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

        def union(sql: str = " UNION ALL ".join(f"SELECT {cols} FROM {v}" for v in views)) -> Any:  # noqa: S608 - dataset names from key_of; values via dialect.lit
            return spark.sql(sql)

        dp.materialized_view(name=name, comment=comments[name.split(".")[-1]])(union)
    return list(outputs)
