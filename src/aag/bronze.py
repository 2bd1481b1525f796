"""Reading input files (SPEC §7) into landed rows, without losing any row.

A file becomes one batch. Each row keeps its raw content as JSON text
(``_raw``, what bronze stores) next to one string column per registry field of
the object (what extraction reads). A row that cannot be parsed is kept too,
with ``_error`` set, so it ends in quarantine instead of vanishing. A file that
cannot be read at all raises :class:`aag.errors.InputError` before anything is
written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow as pa

from aag.errors import InputError

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}


def file_format(path: Path) -> str:
    """The bronze format of a file, from its extension."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl, .csv or .parquet)")
    return fmt


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _field_list(fields: tuple[str, ...]) -> str:
    return "[" + ", ".join("'$.\"" + f.replace('"', '\\"').replace("'", "''") + "\"'" for f in fields) + "]"


def _from_json_lines(con: duckdb.DuckDBPyConnection, lines: pa.Table, fields: tuple[str, ...]) -> pa.Table:
    """Lines (``_row_number``, ``_line``, ``_error``) → landed rows."""
    con.register("lines", lines)
    try:
        extracted = ", ".join(f'vals[{i + 1}] AS "{i}"' for i in range(len(fields)))
        table: pa.Table = con.sql(
            f"""
            SELECT _row_number, _line AS _raw,
                CASE WHEN _error IS NOT NULL THEN _error
                     WHEN NOT json_valid(_line) THEN 'invalid JSON'
                     WHEN json_type(_line::JSON) <> 'OBJECT' THEN 'not a JSON object'
                END AS _error,
                {extracted}
            FROM (
                SELECT *, CASE WHEN _error IS NULL AND json_valid(_line)
                               THEN json_extract_string(_line, {_field_list(fields)}) END AS vals
                FROM lines
            ) x
            """
        ).to_arrow_table()
    finally:
        con.unregister("lines")
    return table.rename_columns(["_row_number", "_raw", "_error", *fields])


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
            """
        ).to_arrow_table()
    finally:
        con.close()
    return table.rename_columns([*rows.column_names, "_error", *fields])


def _read_lines_fast(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    result: pa.Table = con.sql(
        f"""
        SELECT * FROM (
            SELECT CAST(row_number() OVER () AS BIGINT) AS _row_number, line AS _line,
                   CAST(NULL AS VARCHAR) AS _error
            FROM read_csv({_lit(path)}, columns={{'line': 'VARCHAR'}}, delim='\x01', quote='',
                          escape='', header=false, new_line='\\n', strict_mode=false)
        ) numbered
        WHERE _line IS NOT NULL AND trim(_line) <> ''
        """
    ).to_arrow_table()
    return result


def _read_lines_slow(path: Path) -> pa.Table:
    """Line-by-line fallback that survives invalid UTF-8 and odd bytes."""
    numbers: list[int] = []
    texts: list[str | None] = []
    errors: list[str | None] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            stripped = raw.strip()
            if not stripped:
                continue
            numbers.append(number)
            try:
                texts.append(stripped.decode("utf-8"))
                errors.append(None)
            except UnicodeDecodeError:
                texts.append(json.dumps(stripped.decode("utf-8", errors="replace")))
                errors.append("invalid UTF-8")
    return pa.table(
        {
            "_row_number": pa.array(numbers, pa.int64()),
            "_line": pa.array(texts, pa.string()),
            "_error": pa.array(errors, pa.string()),
        }
    )


def read_rows(path: Path, fields: tuple[str, ...]) -> pa.Table:
    """Read one input file into landed rows.

    Args:
        path: A ``.jsonl``, ``.csv`` or ``.parquet`` file.
        fields: Registry fields of the object to extract as string columns.

    Returns:
        Table ``_row_number, _raw, _error, <fields...>, _row_digest`` (all strings but the
        number; the md5 digest of ``_raw``).

    Raises:
        InputError: If the file is missing, of an unknown type, or unreadable as a whole.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = file_format(path)
    con = _connect()
    try:
        if fmt == "jsonl":
            try:
                lines = _read_lines_fast(con, path)
            except duckdb.Error:
                lines = _read_lines_slow(path)
            table = _from_json_lines(con, lines, fields)
        elif fmt == "csv":
            table = _read_csv(con, path, fields)
        else:
            table = _read_parquet(con, path, fields)
        con.register("landed", table)
        # md5 is enough for change detection of a row's text (not a security boundary) and
        # cheaper than sha256 on long rows.
        digests: pa.Table = con.sql("SELECT md5(_raw) AS d FROM landed").to_arrow_table()
        return table.append_column("_row_digest", digests.column("d"))
    finally:
        con.close()


def _columns_as_text(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    described = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return [(str(row[0]), str(row[1])) for row in described]


def _text_expr(name: str, dtype: str) -> str:
    col = '"' + name.replace('"', '""') + '"'
    if any(token in dtype for token in ("STRUCT", "[]", "MAP", "JSON")):
        return f"CAST(to_json({col}) AS VARCHAR)"
    return f"CAST({col} AS VARCHAR)"


def _landed(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    fields: tuple[str, ...],
    errors_sql: str = "CAST(NULL AS VARCHAR)",
) -> pa.Table:
    columns = dict(_columns_as_text(con, relation))
    picks = []
    for i, field in enumerate(fields):
        picks.append(
            f'{_text_expr(field, columns[field])} AS "{i}"'
            if field in columns
            else f'CAST(NULL AS VARCHAR) AS "{i}"'
        )
    rest = [c for c in columns if c != "_row_number"]
    struct = ", ".join(
        f"'{c.replace(chr(39), chr(39) * 2)}': " + '"' + c.replace('"', '""') + '"' for c in rest
    )
    table: pa.Table = con.sql(
        f"""
        SELECT CAST(_row_number AS BIGINT) AS _row_number,
               CAST(to_json({{{struct}}}) AS VARCHAR) AS _raw, {errors_sql} AS _error,
               {", ".join(picks) if picks else "NULL AS _none"}
        FROM {relation} ORDER BY _row_number
        """
    ).to_arrow_table()
    return table.rename_columns(["_row_number", "_raw", "_error", *fields])


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path, fields: tuple[str, ...]) -> pa.Table:
    try:
        con.execute(
            f"""CREATE TEMP TABLE src AS
            SELECT row_number() OVER () + 1 AS _row_number, *
            FROM read_csv({_lit(path)}, all_varchar=true, header=true, store_rejects=true,
                          strict_mode=true)"""
        )
        rejects = con.sql("SELECT line, csv_line, error_message FROM reject_errors ORDER BY line").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}") from exc
    landed = _landed(con, "src", fields)
    if not rejects:
        return landed
    # Rows DuckDB could not parse are kept with their raw line and the parser's reason.
    bad = pa.table(
        {
            "_row_number": pa.array([int(r[0]) for r in rejects], pa.int64()),
            "_raw": pa.array([json.dumps(r[1]) for r in rejects], pa.string()),
            "_error": pa.array(
                ["malformed CSV row: " + str(r[2]).splitlines()[0] for r in rejects], pa.string()
            ),
            **{f: pa.nulls(len(rejects), pa.string()) for f in fields},
        }
    )
    return pa.concat_tables([landed, bad.select(landed.column_names).cast(landed.schema)])


def _read_parquet(con: duckdb.DuckDBPyConnection, path: Path, fields: tuple[str, ...]) -> pa.Table:
    try:
        con.execute(
            f"CREATE TEMP TABLE src AS SELECT row_number() OVER () AS _row_number, * "
            f"FROM read_parquet({_lit(path)})"
        )
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from exc
    return _landed(con, "src", fields)
