"""Reading one input file: its format, its hash, and its rows as chunks.

The entry points of bronze: :func:`read_chunks` checks the file and hands it to the
reader of its format (:mod:`aag.bronze.jsonl`, :mod:`aag.bronze.csvfile`,
:mod:`aag.bronze.parquet`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from aag.bronze.csvfile import _csv_chunks
from aag.bronze.jsonl import _jsonl_chunks
from aag.bronze.landed import Chunk, _connect
from aag.bronze.limits import chunk_limits, max_row_bytes
from aag.bronze.parquet import _parquet_chunks
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


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """SHA-256 of a file's bytes (streamed).

    Args:
        path: The file.
        on_bytes: Called with the number of bytes hashed so far, every 64 MiB.
    """
    digest = hashlib.sha256()
    done = 0
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                done += len(chunk)
                if on_bytes is not None and done % (64 << 20) == 0:
                    on_bytes(done)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def read_chunks(
    path: Path,
    fields: tuple[str, ...],
    chunk_rows: int | None = None,
    chunk_bytes: int | None = None,
    row_bytes: int | None = None,
) -> Iterator[Chunk]:
    """Read one input file as a sequence of chunks of landed rows, in bounded memory.

    Whatever can make the file unreadable as a whole is checked before the first chunk
    is produced (CSV and Parquet are parsed once to the end first), so a caller that
    writes nothing before that chunk changes nothing for a rejected file. At least one
    chunk comes out, empty for an empty file.

    A row over the size limit is kept as a quarantine row (its first bytes and the reason),
    never as itself. A JSON Lines or CSV line over the limit is never held whole in memory:
    the reader skips to its line end keeping only its start. A CSV row whose quoted field
    spans lines, and a Parquet row, are measured as the JSON text they land as.

    Args:
        path: A ``.jsonl``, ``.csv`` or ``.parquet`` file.
        fields: Registry fields of the object to extract as string columns.
        chunk_rows: Rows per chunk (default :func:`chunk_limits`).
        chunk_bytes: JSON Lines bytes per chunk (default :func:`chunk_limits`).
        row_bytes: The row size limit in bytes (default :func:`max_row_bytes`).

    Yields:
        The chunks, in file order.

    Raises:
        InputError: If the file is missing, of an unknown type, or unreadable as a whole.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = file_format(path)
    max_rows, max_bytes = chunk_limits(chunk_rows, chunk_bytes)
    limit = max_row_bytes(row_bytes)
    con = _connect()
    try:
        if fmt == "jsonl":
            yield from _jsonl_chunks(con, path, fields, max_rows, max_bytes, limit)
        elif fmt == "csv":
            yield from _csv_chunks(con, path, fields, max_rows, limit)
        else:
            yield from _parquet_chunks(con, path, fields, max_rows, limit)
    finally:
        con.close()


def read_rows(path: Path, fields: tuple[str, ...], row_bytes: int | None = None) -> pa.Table:
    """Read one input file into landed rows, all at once (small files, tests).

    Args:
        path: A ``.jsonl``, ``.csv`` or ``.parquet`` file.
        fields: Registry fields of the object to extract as string columns.
        row_bytes: The row size limit in bytes (default :func:`max_row_bytes`).

    Returns:
        Table ``_row_number, _raw, _error, <fields...>, _row_digest`` (all strings but the
        number; the md5 digest of ``_raw``).

    Raises:
        InputError: If the file is missing, of an unknown type, or unreadable as a whole.
    """
    unbounded = 1 << 62
    chunks = read_chunks(path, fields, unbounded, unbounded, row_bytes)
    return pa.concat_tables([c.rows for c in chunks])
