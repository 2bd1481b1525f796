"""Reading input files (SPEC §7) into landed rows, without losing any row.

A file becomes one batch. Each row keeps its raw content as JSON text
(``_raw``, what bronze stores) next to one string column per registry field of
the object (what extraction reads). A row that cannot be parsed is kept too,
with ``_error`` set, so it ends in quarantine instead of vanishing. A file that
cannot be read at all raises :class:`aag.errors.InputError` before anything is
written.

Files are read in chunks (:func:`read_chunks`) so that memory stays bounded
whatever the file size: JSON Lines by byte blocks cut at line ends, CSV and
Parquet as DuckDB streams. A chunk's rows carry their position in the whole file
(``_row_number``), so the chunks of a file together are exactly the rows of a
one-shot read (:func:`read_rows`).

Modules, each depending only on those before it: :mod:`~aag.bronze.limits` (chunk
and row size limits, quarantine marks), :mod:`~aag.bronze.landed` (the landed row
shape, made with DuckDB), :mod:`~aag.bronze.jsonl`, :mod:`~aag.bronze.csvfile` and
:mod:`~aag.bronze.parquet` (one reader per format), :mod:`~aag.bronze.read` (the
entry points).
"""

from aag.bronze.jsonl import _decode_lines as _decode_lines  # the fault tests drive it directly
from aag.bronze.jsonl import _decode_lines_slowly as _decode_lines_slowly
from aag.bronze.landed import Chunk, parse_raw
from aag.bronze.limits import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_ROW_BYTES,
    chunk_limits,
    max_row_bytes,
    not_utf8,
    too_long,
)
from aag.bronze.read import FORMATS, file_format, file_sha256, read_chunks, read_rows

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_MAX_ROW_BYTES",
    "FORMATS",
    "Chunk",
    "chunk_limits",
    "file_format",
    "file_sha256",
    "max_row_bytes",
    "not_utf8",
    "parse_raw",
    "read_chunks",
    "read_rows",
    "too_long",
]
