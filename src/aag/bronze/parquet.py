"""Parquet files as chunks of landed rows, streamed by DuckDB's Parquet reader.

Every column is decoded once to the end before the first chunk, so a corrupt file is
rejected before anything is written. Each row lands as the JSON text of its columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb

from aag.bronze.landed import (
    Chunk,
    _columns_as_text,
    _connect,
    _empty,
    _landed_sql,
    _lit,
    _rebatch,
    _with_digest,
)
from aag.errors import InputError


def _parquet_chunks(
    con: duckdb.DuckDBPyConnection, path: Path, fields: tuple[str, ...], max_rows: int, limit: int
) -> Iterator[Chunk]:
    source = f"read_parquet({_lit(path)})"
    try:
        columns = dict(_columns_as_text(con, source))
        total = int(con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0])  # noqa: S608 - file path quoted by dialect.lit
        if columns:
            # Every column decoded once to the end: a page corrupt deep inside the file fails
            # here, before the caller writes anything.
            con.sql(f"SELECT max(hash(COLUMNS(*))) FROM {source}").fetchall()  # noqa: S608 - file path quoted by dialect.lit
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from exc
    if "file_row_number" in columns:
        # DuckDB names its row position ``file_row_number``; a file with a column of that
        # name is numbered by a window instead, which reads the file in one piece.
        relation = f"(SELECT row_number() OVER () AS _row_number, * FROM {source})"  # noqa: S608 - file path quoted by dialect.lit
    else:
        relation = (
            f"(SELECT file_row_number + 1 AS _row_number, * EXCLUDE (file_row_number) "  # noqa: S608 - file path quoted by dialect.lit
            f"FROM read_parquet({_lit(path)}, file_row_number=true))"
        )
    sql = _landed_sql(columns, relation, fields, limit)
    stream_con = _connect()
    done = 0
    produced = False
    try:
        reader = stream_con.sql(sql).to_arrow_reader(batch_size=min(max_rows, 100_000))
        names = ["_row_number", "_raw", "_error", *fields]
        for table in _rebatch(reader, max_rows):
            done += table.num_rows
            produced = True
            yield Chunk(_with_digest(con, table.rename_columns(names)), done, total, "rows")
        reader.close()
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as Parquet (it changed while being read?): {exc}") from exc
    finally:
        stream_con.close()
    if not produced:
        yield Chunk(_empty(fields), 0, 0, "rows")
