"""AAG on Databricks: the Unity Catalog setup, and the graph commit job task.

Layout in one catalog (``:catalog``):

* ``bronze``: raw landed rows (the pipeline's streaming tables) and ``quarantine``;
* ``graph``: ``nodes``, ``relationships``, ``edge_events`` (SPEC §2, Change Data Feed
  on, clustered for the MERGE), the ``batches`` ledger, and the pipeline's
  ``field_events``, ``node_candidates``, ``extract_quarantine`` and ``landed_batches``;
* ``config``: the registry, priorities and identity rules, loaded from the seed CSVs;
* ``gold``: the dbt models.

:func:`setup_sql` generates the files under ``databricks/setup/`` (a test keeps them
equal); :func:`commit_pending` is the job task that turns the pipeline's field events
into graph changes with the Spark engine and commits them with
:class:`~aag.databricks.store.SparkTableGraphStore` (one MERGE per batch group).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aag.config import CONFIG_FILES, Config, default_config_dir, load_config
from aag.databricks.store import (
    CLUSTER_BY,
    GRAPH_COMMENTS,
    GRAPH_SCHEMAS,
    SparkTableBatchLog,
    SparkTableGraphStore,
    create_table_sql,
    plain_catalog,
)
from aag.engine.dialect import in_list, lit
from aag.graph.ledger import LedgerEntry
from aag.identity import IdentitySettings
from aag.model import FIELD_EVENTS, LEDGER, NODES, QUARANTINE
from aag.pipeline.run import BatchRun
from aag.sources.base import EVENTS_TABLE, NODES_TABLE

#: Unity Catalog schemas and what they hold.
SCHEMAS = {
    "bronze": "Raw landed rows per source object, as received (pipeline streaming tables), and quarantine",
    "graph": "The AAG graph: nodes, relationships, edge_events, the batches ledger, pipeline field events",
    "config": "AAG configuration: attribute registry, source priorities, identity rules (seed CSVs)",
    "gold": "Resolved customer profiles and other dbt models",
}

#: Tables the pipeline writes (:mod:`aag.databricks.lakeflow`), by short name.
FIELD_EVENTS_TABLE = "graph.field_events"
NODE_CANDIDATES_TABLE = "graph.node_candidates"
EXTRACT_QUARANTINE_TABLE = "graph.extract_quarantine"
LANDED_BATCHES_TABLE = "graph.landed_batches"
#: Tables of the job task (names shared with :data:`aag.service.monitoring.DATABRICKS_TABLES`).
LEDGER_TABLE = "graph.batches"
QUARANTINE_TABLE = "bronze.quarantine"

#: The dialect of the setup SQL, which runs as it is in a Databricks SQL task.
DIALECT = "databricks"

#: Column types of the config tables that are not strings.
_CONFIG_TYPES = {
    "confidence": "DOUBLE",
    "priority": "INT",
    "max_records_per_source": "INT",
    "future_tolerance_hours": "DOUBLE",
}


def qualified(table: str) -> str:
    """A ``schema.table`` name under the ``:catalog`` parameter (Databricks SQL)."""
    return f"IDENTIFIER(:catalog || '.{table}')"


def _seed_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _value(column: str, text: str) -> str:
    if column in _CONFIG_TYPES:
        return text.strip() if text.strip() else "NULL"
    return lit(text, DIALECT)


def config_sql(folder: Path | None = None) -> str:
    """Config tables created and (re)loaded from the seed CSVs of ``folder``."""
    folder = folder or default_config_dir()
    parts = []
    for name in CONFIG_FILES:
        columns, rows = _seed_rows(folder / name)
        table = qualified("config." + name.removesuffix(".csv"))
        cols = ",\n  ".join(f"{c} {_CONFIG_TYPES.get(c, 'STRING')}" for c in columns)
        parts.append(f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)")
        values = ",\n  ".join(
            "(" + ", ".join(_value(c, row.get(c) or "") for c in columns) + ")" for row in rows
        )
        parts.append(f"INSERT OVERWRITE {table} VALUES\n  {values}")
    return ";\n\n".join(parts) + ";\n"


#: Session variable holding the ``CREATE CATALOG`` statement :func:`catalog_sql` builds.
CREATE_CATALOG_VARIABLE = "aag_create_catalog"


def catalog_sql() -> str:
    """The catalog and its four schemas.

    ``CREATE CATALOG`` takes a ``MANAGED LOCATION`` on metastores without root storage
    (parameter ``:managed_location``: a cloud storage URL under an external location,
    or ``''`` for the metastore's storage). A clause cannot be left out by a parameter,
    so the statement is built as text and run with ``EXECUTE IMMEDIATE``; a location
    with a quote or a backslash is refused rather than spliced into the statement.
    """
    variable = CREATE_CATALOG_VARIABLE
    location = (
        "CASE\n"
        "  WHEN :managed_location = '' THEN ''\n"
        "  WHEN instr(:managed_location, '\\'') > 0 OR instr(:managed_location, '\\\\') > 0\n"
        "    THEN raise_error('managed_location must not contain a quote or a backslash')\n"
        "  ELSE ' MANAGED LOCATION \\'' || :managed_location || '\\''\n"
        "END"
    )
    parts = [
        f"DECLARE OR REPLACE VARIABLE {variable} STRING",
        f"SET VAR {variable} = 'CREATE CATALOG IF NOT EXISTS IDENTIFIER(:catalog)' ||\n{location}",
        # sqlfluff (make lint) has no EXECUTE IMMEDIATE in its Databricks dialect yet.
        f"EXECUTE IMMEDIATE {variable}  -- noqa: PRS\nUSING :catalog AS catalog",
    ]
    for schema, comment in SCHEMAS.items():
        parts.append(f"CREATE SCHEMA IF NOT EXISTS {qualified(schema)}\nCOMMENT {lit(comment, DIALECT)}")
    return ";\n\n".join(parts) + ";\n"


def tables_sql() -> str:
    """The graph tables (Delta, Change Data Feed, liquid clustering), ledger, quarantine, erasure log."""
    parts = [
        create_table_sql(qualified(f"graph.{name}"), schema, True, CLUSTER_BY[name], GRAPH_COMMENTS[name])
        for name, schema in GRAPH_SCHEMAS.items()
    ]
    parts.append(
        create_table_sql(
            qualified(LEDGER_TABLE),
            LEDGER,
            True,
            ("batch_id",),
            "AAG batches ledger: one row per committed batch",
        )
    )
    parts.append(
        create_table_sql(
            qualified(QUARANTINE_TABLE),
            QUARANTINE,
            True,
            ("source_system", "batch_id"),
            "Rows and fields AAG could not use, with the reason and the raw content",
        )
    )
    from aag.databricks.erase import ERASED_ENTITIES_TABLE, ERASURES_TABLE, erased_entities_ddl, erasures_ddl

    parts.append(erasures_ddl(qualified(ERASURES_TABLE)))
    parts.append(erased_entities_ddl(qualified(ERASED_ENTITIES_TABLE)))
    return ";\n\n".join(parts) + ";\n"


def setup_sql(config_dir: Path | None = None) -> dict[str, str]:
    """File name → Databricks SQL of ``databricks/setup/`` (run in this order)."""
    return {
        "01_catalog.sql": catalog_sql(),
        "02_tables.sql": tables_sql(),
        "03_config.sql": config_sql(config_dir),
    }


def statements(sql: str) -> Iterator[str]:
    """The statements of a generated file (split on ``;`` at line ends)."""
    for part in sql.split(";\n"):
        body = "\n".join(line for line in part.splitlines() if not line.startswith("--")).strip()
        if body:
            yield body


def write_setup(folder: Path) -> list[Path]:
    """Write the setup files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, sql in setup_sql().items():
        path = folder / name
        header = (
            f"-- AAG Databricks setup, step {name[:2]} (generated from aag/databricks/job.py by\n"
            "-- `python -m aag.databricks databricks/setup`; do not edit by hand).\n"
            "-- Parameter :catalog is the Unity Catalog catalog AAG lives in.\n"
            + (
                "-- Parameter :managed_location is a storage URL for it, or '' for the metastore's.\n"
                if name == "01_catalog.sql"
                else ""
            )
        )
        path.write_text(header + sql, encoding="utf-8")
        written.append(path)
    return written


# -- the job task ---------------------------------------------------------------------------


def commit_pending(spark: Any, catalog: str, config: Config | None = None) -> list[dict[str, Any]]:
    """Commit every pipeline batch (field events, quarantine rows) the ledger does not hold yet.

    The batches of one source object are planned together (the edge rules are a
    function of the event set, so one plan over several batches writes what they would
    one by one) and committed with one MERGE; then each batch gets its ledger row and
    its extraction quarantine rows are copied to ``bronze.quarantine``.

    Args:
        spark: The Spark session (on Databricks: the job cluster's).
        catalog: Unity Catalog catalog of :func:`setup_sql`.
        config: Registry and identity rules (default: the packaged seeds).

    Returns:
        One dict per committed source object: batches, events and what was written.

    Raises:
        ValueError: ``catalog`` is not one plain name (it is spliced into the SQL).
    """
    from aag.databricks.erase import ERASED_ENTITIES_TABLE, ERASURES_TABLE, suppressed_events_sql
    from aag.engine.spark import SparkEngine
    from aag.graph.delta import now_utc

    plain_catalog(catalog)
    config = config or load_config()
    engine = SparkEngine(spark)
    store = SparkTableGraphStore(engine, f"{catalog}.graph")
    events_table, ledger = f"{catalog}.{FIELD_EVENTS_TABLE}", f"{catalog}.{LEDGER_TABLE}"
    log = SparkTableBatchLog(engine, ledger)
    erasures = spark.catalog.tableExists(f"{catalog}.{ERASURES_TABLE}")
    # Created with the erasure log by this release's setup or erase task.
    by_entity = spark.catalog.tableExists(f"{catalog}.{ERASED_ENTITIES_TABLE}")
    landed_table = f"{catalog}.{LANDED_BATCHES_TABLE}"
    # Written by pipelines of this release on; an older pipeline's first update adds it.
    landed = spark.catalog.tableExists(landed_table)
    also_landed = (
        f"UNION ALL SELECT source_system, source_object, CAST(NULL AS VARCHAR), batch_id FROM {landed_table}"  # noqa: S608 - catalog checked by plain_name
        if landed
        else ""
    )
    # A batch with quarantine rows but no events (all its rows rejected), or with neither
    # (rows that only land, such as SAP CDHDR), is committed too: its ledger row and quarantine.
    pending = engine.query(
        f"""
SELECT source_system, source_object, batch_id, max(entity_type) AS entity_type,
    count(entity_type) AS events
FROM (
    SELECT source_system, source_object, entity_type, batch_id FROM {events_table}
    UNION ALL
    SELECT DISTINCT source_system, source_object, CAST(NULL AS VARCHAR), batch_id
    FROM {catalog}.{EXTRACT_QUARANTINE_TABLE}
    {also_landed}
) e
WHERE NOT EXISTS (SELECT 1 FROM {ledger} b WHERE b.batch_id = e.batch_id AND b.status = 'committed')
GROUP BY source_system, source_object, batch_id
ORDER BY source_system, source_object, batch_id
"""  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
    ).to_pylist()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in pending:
        groups.setdefault((row["source_system"], row["source_object"]), []).append(row)
    out = []
    for (system, obj), batches in groups.items():
        started = now_utc().as_py()
        ids = [str(b["batch_id"]) for b in batches]
        # One object's events all have its entity type; None: no batch of the group has events.
        entity_type = next((b["entity_type"] for b in batches if b["entity_type"]), None)
        engine.materialize(
            EVENTS_TABLE,
            f"SELECT {', '.join(FIELD_EVENTS.names)} FROM {events_table} WHERE batch_id IN ({in_list(ids)})",  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
        )
        if erasures:
            # A source re-sending an erased record: its events go before anything is planned.
            engine.materialize("_aag_kept_events", suppressed_events_sql(catalog, EVENTS_TABLE, by_entity))
            engine.materialize(EVENTS_TABLE, "SELECT * FROM _aag_kept_events")
            engine.drop("_aag_kept_events")
        engine.materialize(
            NODES_TABLE,
            f"""
SELECT {", ".join(NODES.names)} FROM (
    SELECT *, row_number() OVER (PARTITION BY node_id ORDER BY created_at) AS copy
    FROM {catalog}.{NODE_CANDIDATES_TABLE}
    WHERE node_id IN (SELECT source_node_id FROM {EVENTS_TABLE}
                      UNION SELECT target_node_id FROM {EVENTS_TABLE})
) n WHERE copy = 1
""",  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
        )
        identity = IdentitySettings.from_config(config, entity_type) if entity_type else None
        run = BatchRun(engine, store, log, config, identity)
        run.apply({"aag.batches": ",".join(ids), "aag.object": f"{system}.{obj}"})
        quarantine = f"{catalog}.{QUARANTINE_TABLE}"
        extracted = f"SELECT * FROM {catalog}.{EXTRACT_QUARANTINE_TABLE} WHERE batch_id IN ({in_list(ids)})"  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
        counts = {
            str(r["batch_id"]): r
            for r in engine.query(
                "SELECT batch_id, sum(CASE WHEN level = 'row' THEN 1 ELSE 0 END) AS rows_quarantined, "  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
                "sum(CASE WHEN level = 'field' THEN 1 ELSE 0 END) AS fields_rejected "
                f"FROM ({extracted}) q GROUP BY batch_id"
            ).to_pylist()
        }
        bronze = (
            {
                str(r["batch_id"]): r
                for r in engine.query(
                    f"SELECT batch_id, rows_landed, file_name FROM {landed_table} "  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
                    f"WHERE batch_id IN ({in_list(ids)})"
                ).to_pylist()
            }
            if landed
            else {}
        )
        # A rerun after a failure before the ledger write finds the batch's rows already
        # copied (one INSERT, so all or none of them): they are not copied again.
        engine.execute(
            f"INSERT INTO {quarantine} SELECT {', '.join(QUARANTINE.names)} FROM ({extracted}) e "  # noqa: S608 - catalog checked by plain_name; batch ids via in_list
            f"WHERE NOT EXISTS (SELECT 1 FROM {quarantine} q WHERE q.batch_id = e.batch_id)"
        )
        finished = now_utc().as_py()
        run.finish(
            [
                LedgerEntry(
                    batch_id=str(b["batch_id"]),
                    source_system=system,
                    source_object=obj,
                    file_name=bronze.get(str(b["batch_id"]), {}).get("file_name"),
                    rows_landed=bronze.get(str(b["batch_id"]), {}).get("rows_landed"),
                    field_events=int(b["events"]),
                    rows_quarantined=int(counts.get(str(b["batch_id"]), {}).get("rows_quarantined") or 0),
                    fields_rejected=int(counts.get(str(b["batch_id"]), {}).get("fields_rejected") or 0),
                    started_at=started,
                    finished_at=finished,
                )
                for b in batches
            ]
        )
        out.append(
            {
                "object": f"{system}.{obj}",
                "batches": len(ids),
                "field_events": sum(int(b["events"]) for b in batches),
                "nodes_written": run.applied.nodes_written,
                "edge_versions_written": run.applied.new_versions,
                "rule_paths": run.applied.paths,
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m aag.databricks FOLDER`` writes the setup SQL; ``commit`` and ``erase`` run job tasks.

    ``commit --catalog C`` commits the pipeline's pending batches; ``erase --catalog C
    --customer ID --requested-by WHO`` erases one customer (:func:`aag.databricks.erase.erase_cluster`).
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m aag.databricks")
    parser.add_argument("target", help="'commit', 'erase', or a folder to write the setup SQL into")
    parser.add_argument("--catalog", default="aag")
    parser.add_argument("--config-dir", type=Path, help="folder with the config CSVs (default: packaged)")
    parser.add_argument("--customer", help="erase: any record entity id of the customer")
    parser.add_argument("--requested-by", help="erase: who asked (logged)")
    args = parser.parse_args(argv)
    if args.target not in ("commit", "erase"):
        for path in write_setup(Path(args.target)):
            print(path)
        return
    if args.target == "erase" and not (args.customer and args.requested_by):
        parser.error("erase needs --customer and --requested-by")
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    config = load_config(args.config_dir) if args.config_dir else None
    if args.target == "erase":
        from aag.databricks.erase import erase_cluster

        done = erase_cluster(spark, args.catalog, args.customer, args.requested_by, config)
        print(json.dumps(done, default=str))
        return
    for row in commit_pending(spark, args.catalog, config):
        print(json.dumps(row, default=str))


if __name__ == "__main__":
    main()
