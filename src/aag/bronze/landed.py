"""Landed rows, the shape every format's reader ends in, made with DuckDB.

A landed row is ``_row_number, _raw, _error, <fields...>, _row_digest``: its place in
the file, its raw content as JSON text (what bronze stores), the reason it goes to
quarantine (``NULL`` if none), one string column per registry field (what extraction
reads) and the md5 of ``_raw``. The reader of each format hands them out in
:class:`Chunk` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from aag.bronze.limits import _KEPT_BYTES, _over_reason
from aag.engine.dialect import ident, json_path, lit


@dataclass(frozen=True)
class Chunk:
    """A slice of one file's landed rows.

    Attributes:
        rows: Landed rows (``_row_number, _raw, _error, <fields...>, _row_digest``), numbered
            by their place in the whole file.
        done: How far the file is read after this chunk, in ``unit``.
        total: The file's size in ``unit``.
        unit: ``bytes`` (JSON Lines) or ``rows`` (CSV, Parquet: counted before reading).
    """

    rows: pa.Table
    done: int
    total: int
    unit: str


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _lit(path: Path) -> str:
    return lit(str(path))


def _field_list(fields: tuple[str, ...]) -> str:
    return "[" + ", ".join(json_path(f) for f in fields) + "]"


def parse_raw(rows: pa.Table, fields: tuple[str, ...]) -> pa.Table:
    """Stored raw rows (bronze ``_raw``, always JSON text) → landed rows again.

    Args:
        rows: A table with ``_raw``; its other columns (``_row_number``, ...) are kept.
        fields: Fields to extract as string columns, as :func:`read_rows` does.

    Returns:
        ``rows``' columns, ``_error`` (``NULL``) and one column per field.
    """
    con = _connect()
    con.register("raw_rows", rows)
    try:
        extracted = "".join(f', vals[{i + 1}] AS "{i}"' for i in range(len(fields)))
        vals = f"json_extract_string(_raw, {_field_list(fields)})" if fields else "NULL"
        table: pa.Table = con.sql(
            f"""
            SELECT * EXCLUDE (vals), CAST(NULL AS VARCHAR) AS _error{extracted}
            FROM (SELECT *, CASE WHEN json_valid(_raw) THEN {vals} END AS vals FROM raw_rows) x
            """  # noqa: S608 - field paths from dialect.json_path; aliases are numbers
        ).to_arrow_table()
    finally:
        con.close()
    return table.rename_columns([*rows.column_names, "_error", *fields])


def _empty(fields: tuple[str, ...]) -> pa.Table:
    return pa.schema(
        [
            pa.field("_row_number", pa.int64()),
            pa.field("_raw", pa.string()),
            pa.field("_error", pa.string()),
            *(pa.field(f, pa.string()) for f in fields),
            pa.field("_row_digest", pa.string()),
        ]
    ).empty_table()


def _with_digest(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pa.Table:
    con.register("landed", table)
    try:
        # md5 is enough for change detection of a row's text (not a security boundary) and
        # cheaper than sha256 on long rows.
        digests: pa.Table = con.sql("SELECT md5(_raw) AS d FROM landed").to_arrow_table()
    finally:
        con.unregister("landed")
    return table.append_column("_row_digest", digests.column("d"))


def _rebatch(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.Table]:
    """Record batches → tables of exactly ``rows`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in reader:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _columns_as_text(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    described = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # noqa: S608 - relation: this package's reader call, its path quoted by dialect.lit
    return [(str(row[0]), str(row[1])) for row in described]


def _text_expr(name: str, dtype: str) -> str:
    col = ident(name)
    if any(token in dtype for token in ("STRUCT", "[]", "MAP", "JSON")):
        return f"CAST(to_json({col}) AS VARCHAR)"
    return f"CAST({col} AS VARCHAR)"


def _landed_sql(
    columns: dict[str, str],
    relation: str,
    fields: tuple[str, ...],
    limit: int,
) -> str:
    """SQL shaping rows of ``relation`` (``_row_number`` + source columns) into landed rows.

    A row whose JSON text is over ``limit`` bytes keeps only its start (as a JSON string)
    and the reason, and no field is extracted from it: it goes to quarantine.
    """
    picks = []
    for i, field in enumerate(fields):
        picks.append(
            f'{_text_expr(field, columns[field])} AS "{i}"'
            if field in columns
            else f'CAST(NULL AS VARCHAR) AS "{i}"'
        )
    rest = [c for c in columns if c != "_row_number"]
    struct = ", ".join(f"{lit(c)}: {ident(c)}" for c in rest)
    raw = f"CAST(to_json({{{struct}}}) AS VARCHAR)" if rest else "'{}'"
    over = f"_size > {int(limit)}"
    # Cut by characters (DuckDB strings are cut at character bounds): the first 1,024.
    kept = f"CAST(to_json(left(_full, {_KEPT_BYTES})) AS VARCHAR)"
    reason = _over_reason("' || _size || '", limit)
    outs = "".join(f', CASE WHEN {over} THEN NULL ELSE "{i}" END AS "{i}"' for i in range(len(fields)))
    # The inner names (_full, _size) differ from the outer ones: DuckDB lets a select list
    # refer to its own earlier aliases, which would make _error test the cut _raw.
    return f"""
        SELECT _row_number, CASE WHEN {over} THEN {kept} ELSE _full END AS _raw,
               CASE WHEN {over} THEN '{reason}' END AS _error{outs if fields else ", NULL AS _none"}
        FROM (
            SELECT *, strlen(_full) AS _size FROM (
                SELECT CAST(_row_number AS BIGINT) AS _row_number, {raw} AS _full
                       {"".join(", " + p for p in picks)}
                FROM {relation}
            ) landed_full
        ) landed_rows
        """  # noqa: S608 - names via dialect.ident/lit, numbers, and a lit-quoted reader call


def _landed_arrow(
    con: duckdb.DuckDBPyConnection, table: pa.Table, fields: tuple[str, ...], limit: int
) -> pa.Table:
    """Landed rows of an Arrow table of source columns plus ``_row_number`` (see :func:`_landed_sql`)."""
    con.register("landed_src", table)
    try:
        columns = dict(_columns_as_text(con, "landed_src"))
        out: pa.Table = con.sql(_landed_sql(columns, "landed_src", fields, limit)).to_arrow_table()
    finally:
        con.unregister("landed_src")
    return out.rename_columns(["_row_number", "_raw", "_error", *fields])
