"""The Spark engine: the same canonical SQL, transpiled to Spark SQL by sqlglot.

Locally (tests, benchmarks) it runs PySpark in ``local[2]`` mode over Arrow
and Parquet; on Databricks it runs against the cluster's session. Only how
results are committed differs, and that lives in the store, not here.
"""

from __future__ import annotations

import atexit
import inspect
import os
import shutil
import tempfile
from typing import Any

import pyarrow as pa

from aag.engine.base import Capability, Engine
from aag.engine.dialect import to_dialect


def _plain_type(t: pa.DataType) -> pa.DataType:
    """An Arrow type Spark can convert: view and large layouts become the plain ones.

    delta-rs (DataFusion) hands out ``string_view`` and friends, which PySpark's Arrow
    conversion does not accept.
    """
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_map(t):
        return pa.map_(_plain_type(t.key_type), _plain_type(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    return t


def spark_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every type Spark cannot take from Arrow replaced by its plain form."""
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema])


#: Environment variable naming a file that lists Delta Lake's Spark jars (``path:path:...``,
#: as ``mvn dependency:build-classpath`` writes it; ``make`` builds ``.venv/delta-classpath.txt``).
DELTA_CLASSPATH_ENV = "AAG_SPARK_DELTA_CLASSPATH"


def delta_jars(classpath_file: str) -> list[str]:
    """The jar paths a Delta classpath file lists (one ``:``-separated line).

    Raises:
        FileNotFoundError: The file, or a jar it lists, is missing: a session without
            Delta would silently take the non-MERGE path instead.
    """
    with open(classpath_file, encoding="utf-8") as handle:
        jars = [p for p in handle.read().strip().split(os.pathsep) if p]
    missing = [j for j in jars if not os.path.isfile(j)]
    if not jars or missing:
        raise FileNotFoundError(f"{classpath_file}: no jars, or missing jars {missing[:3]}")
    return jars


def local_session(app_name: str = "aag") -> Any:
    """A small local Spark session configured like AAG expects (UTC, Arrow on).

    With ``AAG_SPARK_DELTA_CLASSPATH`` naming a classpath file (:func:`delta_jars`), the
    session loads Delta Lake's jars, extension and catalog: catalog tables can be Delta
    tables and ``MERGE INTO`` works (:func:`session_can_merge`). Without it, plain Spark.
    An already active session is returned as it is.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = os.environ.get("AAG_SPARK_MASTER", "local[2]")
    builder = SparkSession.builder
    classpath = os.environ.get(DELTA_CLASSPATH_ENV)
    if classpath:
        builder = (
            builder.config("spark.jars", ",".join(delta_jars(classpath)))
            .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
            # Delta's SQL parser loses Spark 4.1+'s textual substitution of parameter
            # markers (statements with named parameters, as the setup SQL has, fail as
            # unbound); markers bound by the analyzer, as in Spark 4.0, work.
            .config("spark.sql.legacy.parameterSubstitution.constantsOnly", "true")
            # Delta rebuilds a table's snapshot with 50 tasks by default, sized for clusters;
            # on a local session that fixed cost dominated every small query and commit.
            .config(
                "spark.databricks.delta.snapshotPartitions",
                os.environ.get("AAG_SPARK_SNAPSHOT_PARTITIONS", "1"),
            )
        )
    return (
        builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", os.environ.get("AAG_SPARK_PARTITIONS", "4"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("AAG_SPARK_DRIVER_MEMORY", "4g"))
        # Catalog tables (SparkTableGraphStore) go to a private folder unless one is given,
        # never into the working directory.
        .config(
            "spark.sql.warehouse.dir",
            os.environ.get("AAG_SPARK_WAREHOUSE") or _private_warehouse(),
        )
        .getOrCreate()
    )


_private_folders: list[str] = []


def _private_warehouse() -> str:
    """A temporary Spark warehouse folder, deleted when the process exits."""
    folder = tempfile.mkdtemp(prefix="aag-spark-warehouse-")
    if not _private_folders:
        atexit.register(remove_private_folders)
    _private_folders.append(folder)
    return folder


def remove_private_folders() -> None:
    """Delete the temporary Spark warehouse folders this process made.

    Runs at interpreter exit; the CLI, which leaves through ``os._exit``, calls it itself.
    """
    while _private_folders:
        shutil.rmtree(_private_folders.pop(), ignore_errors=True)


def session_can_merge(session: Any) -> bool:
    """Whether ``MERGE INTO`` works on the session's tables: Databricks, or Delta Lake configured."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    extensions = str(session.conf.get("spark.sql.extensions", "") or "")
    return "DeltaSparkSessionExtension" in extensions


def pyspark_version() -> tuple[int, int]:
    """The (major, minor) version of the installed PySpark (or Databricks Connect) client."""
    import pyspark

    major, minor = (int(part) for part in pyspark.__version__.split(".")[:2])
    return major, minor


def create_frame(session: Any, table: pa.Table) -> Any:
    """A Spark DataFrame of an Arrow table, on PySpark 4.x and 3.5 alike.

    PySpark 4.0 takes a ``pyarrow.Table`` itself. PySpark 3.5 (Databricks runtimes
    13.3-15.4, serverless environments 1-3) takes pandas, converted with Arrow
    (``spark.sql.execution.arrow.pyspark.enabled``) under the table's own Spark schema:
    timestamps stay UTC instants, maps go as dicts, integer nulls stay nulls.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = spark_arrow_schema(table.schema)
    if schema != table.schema:
        table = table.cast(schema)
    if table.num_rows == 0:
        # Spark infers nothing from an empty table's batches; give it the schema.
        return session.createDataFrame([], schema=from_arrow_schema(schema))
    if pyspark_version() >= (4, 0):
        return session.createDataFrame(table)
    frame = table.to_pandas(integer_object_nulls=True, maps_as_pydicts="strict")
    return session.createDataFrame(frame, schema=from_arrow_schema(schema))


def collect_arrow(df: Any) -> pa.Table:
    """A Spark DataFrame's rows as an Arrow table, on PySpark 4.x and 3.5 alike.

    ``DataFrame.toArrow`` exists from PySpark 4.0 on. On 3.5 the classic DataFrame
    collects its Arrow batches itself (``_collect_as_arrow``, what its ``toPandas`` uses),
    and any other (Spark Connect) goes through pandas; both are cast to the Arrow form
    of the DataFrame's Spark schema, as ``toArrow`` gives it (timestamps UTC).
    """
    to_arrow = getattr(df, "toArrow", None)
    if to_arrow is not None:
        result: pa.Table = to_arrow()
        return result
    from pyspark.sql.pandas.types import to_arrow_schema

    # PySpark 4.x asks for the zone of timestamps; 3.5 always gives UTC.
    takes_zone = "timezone" in inspect.signature(to_arrow_schema).parameters
    utc: dict[str, Any] = {"timezone": "UTC"} if takes_zone else {}
    schema = to_arrow_schema(df.schema, **utc)
    collect = getattr(df, "_collect_as_arrow", None)
    if collect is not None:
        batches = [b.cast(schema) if b.schema != schema else b for b in collect()]
        return pa.Table.from_batches(batches, schema=schema)
    frame = df.toPandas()
    # pandas has the session's local times, without their zone.
    zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
    for field in schema:
        naive = getattr(frame[field.name].dtype, "kind", "") == "M"  # numpy datetime64, no zone
        if pa.types.is_timestamp(field.type) and field.type.tz and naive:
            frame[field.name] = frame[field.name].dt.tz_localize(zone)
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


class SparkEngine(Engine):
    """Runs canonical SQL on a Spark session.

    Capabilities: it always reads and writes the session's catalog tables
    (:attr:`Capability.CATALOG_TABLES`); it has :attr:`Capability.MERGE` where the session
    can MERGE into Delta tables (on Databricks, or with Delta Lake configured: see
    :func:`local_session`). Pass ``merge`` to override detection.
    """

    dialect = "spark"
    name = "spark"

    def __init__(self, session: Any | None = None, merge: bool | None = None) -> None:
        self.spark = session or local_session()
        can_merge = session_can_merge(self.spark) if merge is None else merge
        caps = {Capability.CATALOG_TABLES}
        if can_merge:
            caps.add(Capability.MERGE)
        self.capabilities = frozenset(caps)

    def register(self, name: str, table: pa.Table | pa.RecordBatchReader) -> None:
        """Register Arrow data as a temp view."""
        if isinstance(table, pa.RecordBatchReader):
            table = table.read_all()
        create_frame(self.spark, table).createOrReplaceTempView(name)

    def query(self, sql: str) -> pa.Table:
        """Run transpiled SQL; collect as Arrow."""
        return collect_arrow(self.spark.sql(to_dialect(sql, "spark")))

    def materialize(self, name: str, sql: str) -> None:
        """Cache the result as a temp view."""
        df = self.spark.sql(to_dialect(sql, "spark")).localCheckpoint()
        df.createOrReplaceTempView(name)

    def view(self, name: str, sql: str) -> None:
        """Create a temp view from SQL (lazy)."""
        self.spark.sql(to_dialect(sql, "spark")).createOrReplaceTempView(name)

    def rename(self, name: str, new_name: str) -> None:
        """Point ``new_name`` at the same checkpointed frame (no job runs)."""
        self.spark.table(name).createOrReplaceTempView(new_name)
        self.drop(name)

    def drop(self, name: str) -> None:
        """Drop a temp view."""
        self.spark.catalog.dropTempView(name)

    def execute(self, sql: str) -> None:
        """Run one canonical statement, transpiled to Spark SQL."""
        self.spark.sql(to_dialect(sql, self.dialect))

    def execute_native(self, sql: str) -> None:
        """Run one Spark SQL statement as it is (no canonical form; see :meth:`Engine.execute_native`)."""
        self.spark.sql(sql)
