"""Which of a file's rows a batch extracts.

Rows of erased records are dropped before landing, rows already landed by a committed
batch skip extraction, re-sent calls land but are not extracted; the landed rows of
other objects an extractor joins are made queryable.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from aag.engine.base import Engine
from aag.engine.dialect import ident, json_path, lit
from aag.engine.duckdb import local_connection
from aag.graph.bronze_reads import LandedBronze
from aag.graph.warehouse import Warehouse
from aag.sources import extractor_for
from aag.sources.base import Extractor, landed_table


def split_unchanged(
    engine: Engine, rows: pa.Table, landed: pa.Table | pa.RecordBatchReader | None
) -> tuple[pa.Table, pa.Table]:
    """Split landed rows into fresh rows and rows already landed in a committed batch.

    A row whose raw content is byte-identical to an earlier committed row yields exactly
    the events that row did (same values, same times, same event ids), and those are
    already in the graph, so it can skip extraction and the rules. This is what makes a
    no-change full re-sync cheap; a re-sync in another format simply goes the long way.

    Returns:
        The fresh rows, and ``_row_number, record_id`` of the unchanged ones.
    """
    empty_ids = pa.table({"_row_number": pa.array([], pa.int64()), "record_id": pa.array([], pa.string())})
    if landed is None:
        return rows, empty_ids
    engine.register("su_rows", rows.select(["_row_number", "_row_digest"]))
    engine.register("su_landed", landed)
    try:
        ids = engine.query(
            "SELECT r._row_number, any_value(s._record_id) AS record_id FROM su_rows r JOIN ("
            "SELECT DISTINCT _row_digest, _record_id FROM su_landed "
            "WHERE _row_digest IN (SELECT _row_digest FROM su_rows)) s USING (_row_digest) "
            "GROUP BY r._row_number"
        )
    finally:
        for name in ("su_rows", "su_landed"):
            engine.drop(name)
    if ids.num_rows == 0:
        # A re-sync with later record times changes every row's text: nothing to set apart.
        return rows, empty_ids
    # Set apart in Arrow: a filter keeps the chunk's order and copies less than a query
    # that hands every field back.
    fresh = rows.filter(pc.invert(pc.is_in(rows.column("_row_number"), ids.column("_row_number"))))
    return fresh, ids.cast(empty_ids.schema)


def register_reads(landed: LandedBronze, engine: Engine, extractor: Extractor) -> list[str]:
    """Make the landed rows of every object the extractor reads queryable in the engine.

    Each object's rows from committed batches are parsed from their raw text into the
    columns that object's own extractor lands, and registered as
    :func:`~aag.sources.base.landed_table`. Returns the names to drop afterwards.
    """
    config = landed.warehouse.config
    system = extractor.spec.source_system
    names = []
    for obj in extractor.reads:
        reader = extractor_for(config.object(system, obj), config)
        name = landed_table(obj)
        engine.register(name, landed.rows(system, reader.spec.source_object, reader.fields))
        names.append(name)
    return names


def suppress_erased(
    warehouse: Warehouse, engine: Engine, extractor: Extractor, rows: pa.Table
) -> tuple[pa.Table, int]:
    """Drop the rows of erased records before anything is written.

    Returns the remaining rows and how many were dropped. The erasure log keeps a
    one-way key per erased record, so a CRM that re-sends an erased contact cannot bring
    it back. Costs nothing while nothing of the object was erased.
    """
    spec = extractor.spec
    erased = warehouse.erased_record_keys(spec.source_system, spec.source_object)
    if erased.num_rows == 0 or rows.num_rows == 0:
        return rows, 0
    ids = extractor.record_ids(engine, rows)
    engine.register("se_rows", rows)
    engine.register("se_ids", ids)
    engine.register("se_erased", erased)
    try:
        prefix = lit(f"{spec.source_system}:{spec.source_object}:")
        kept = engine.query(
            "SELECT r.* FROM se_rows r JOIN se_ids i USING (_row_number) "  # noqa: S608 - the record key prefix via dialect.lit
            f"WHERE i.record_id IS NULL OR sha256(concat({prefix}, i.record_id)) "
            "NOT IN (SELECT record_key FROM se_erased) ORDER BY r._row_number"
        )
    finally:
        for name in ("se_rows", "se_ids", "se_erased"):
            engine.drop(name)
    return kept.cast(rows.schema), rows.num_rows - kept.num_rows


def drop_resent(landed: LandedBronze, extractor: Extractor, rows: pa.Table) -> tuple[pa.Table, int]:
    """Drop the rows whose :attr:`~aag.sources.base.Extractor.first_wins_key` is stored already.

    A call delivered twice must not change the profile, even when the second copy differs
    (a client re-sending a message id with new content): the first call a committed batch
    holds wins. Committed bronze rows are streamed, so memory does not grow with history.

    Returns:
        The rows to extract, and how many were dropped.
    """
    key = extractor.first_wins_key
    spec = extractor.spec
    # Rows without a record id were quarantined whole and changed nothing: not a first call.
    stored = landed.raw(spec.source_system, spec.source_object) if key is not None and rows.num_rows else None
    if key is None or stored is None:
        return rows, 0
    # Reading a key out of stored raw JSON text is a local conversion: Spark SQL has no
    # json_valid, and the stored rows stream from the Delta table into this process anyway.
    con = local_connection()
    con.register("dr_rows", rows)
    con.register("dr_stored", stored)
    path = json_path(key)
    column = ident(key)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dr_keys AS "  # noqa: S608 - the key via dialect.ident/json_path
            f"SELECT DISTINCT trim({column}) AS k FROM dr_rows WHERE nullif(trim({column}), '') IS NOT NULL"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dr_seen AS SELECT DISTINCT k FROM "  # noqa: S608 - the key via dialect.ident/json_path
            f"(SELECT trim(json_extract_string(_raw, {path})) AS k FROM dr_stored WHERE json_valid(_raw)) s "
            "WHERE k IN (SELECT k FROM dr_keys)"
        )
        kept: pa.Table = con.sql(
            f"SELECT * FROM dr_rows WHERE nullif(trim({column}), '') IS NULL "  # noqa: S608 - the key via dialect.ident/json_path
            f"OR trim({column}) NOT IN (SELECT k FROM dr_seen) ORDER BY _row_number"
        ).to_arrow_table()
    finally:
        con.unregister("dr_rows")
        con.unregister("dr_stored")
        con.execute("DROP TABLE IF EXISTS dr_keys")
        con.execute("DROP TABLE IF EXISTS dr_seen")
    return kept.cast(rows.schema), rows.num_rows - kept.num_rows
