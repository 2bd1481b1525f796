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
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aag.errors import InputError

#: Rows per chunk unless ``$AAG_CHUNK_ROWS`` says otherwise. Sized so that one chunk of a
#: typical CRM export (12 field events per row) stays well under a GB in the pipeline.
DEFAULT_CHUNK_ROWS = 500_000
#: Bytes of JSON Lines per chunk unless ``$AAG_CHUNK_BYTES`` says otherwise: bounds a
#: chunk of very long rows, where the row count alone would not.
DEFAULT_CHUNK_BYTES = 256 * 1024 * 1024
#: JSON Lines are read in blocks of at most this size (a chunk is one or more blocks).
_BLOCK_BYTES = 16 * 1024 * 1024
#: Largest row accepted unless ``$AAG_MAX_ROW_BYTES`` (``aag ingest --max-row-bytes``) says
#: otherwise. A longer row is quarantined, not loaded: one huge row costs many times its
#: size in memory once parsed, extracted and written.
DEFAULT_MAX_ROW_BYTES = 16 * 1024 * 1024
#: Bytes of a row over the limit kept as its quarantined content, so it can be recognised.
_KEPT_BYTES = 1024
#: The rest of a line over the limit is read past in blocks of this size.
_SKIP_BYTES = 1024 * 1024
#: DuckDB's CSV max_line_size: out of reach (see :func:`_csv_chunks_utf8`).
_DUCKDB_MAX_LINE = 1 << 40

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


def _setting(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InputError(f"${name} must be a positive integer, not {value!r}") from exc
    if number < 1:
        raise InputError(f"${name} must be a positive integer, not {value!r}")
    return number


def max_row_bytes(value: int | None = None) -> int:
    """The row size limit in bytes: ``value``, else ``$AAG_MAX_ROW_BYTES``, else 16 MiB."""
    return value or _setting("AAG_MAX_ROW_BYTES", DEFAULT_MAX_ROW_BYTES)


def _over_reason(size: str, limit: int) -> str:
    return (
        f"row of {size} bytes is over the limit of {limit} bytes "
        "(raise it with --max-row-bytes or $AAG_MAX_ROW_BYTES); only its start is kept"
    )


def too_long(start: bytes, size: int, limit: int) -> tuple[str, str]:
    r"""A row over the size limit → (its content as JSON text, the quarantine reason).

    The content is the row's first bytes only (as a JSON string, undecodable bytes as
    ``\xNN`` escapes): enough to recognise the row, never the row itself.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    # Not final: a character cut in two at the end is left out rather than escaped.
    text = decoder.decode(start[:_KEPT_BYTES])
    return json.dumps(text), _over_reason(str(size), limit)


def chunk_limits(chunk_rows: int | None = None, chunk_bytes: int | None = None) -> tuple[int, int]:
    """Rows and bytes per chunk: the arguments, else ``$AAG_CHUNK_ROWS`` / ``$AAG_CHUNK_BYTES``."""
    rows = chunk_rows or _setting("AAG_CHUNK_ROWS", DEFAULT_CHUNK_ROWS)
    size = chunk_bytes or _setting("AAG_CHUNK_BYTES", DEFAULT_CHUNK_BYTES)
    return rows, size


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


#: What a blank line may hold: JSON's white space (RFC 8259). Any other character makes the
#: line a row, quarantined if it is not JSON, never skipped silently.
_JSON_SPACE = b" \t\r\n"
_JSON_SPACE_RUN = re.compile(rb"[ \t\r\n]*")


def not_utf8(raw: bytes) -> tuple[str, str]:
    r"""A row whose bytes are not UTF-8 → (its content as JSON text, the quarantine reason).

    The content keeps every byte: the undecodable ones as ``\xNN`` escapes, so the row
    can be read (and fixed) from quarantine.
    """
    try:
        raw.decode("utf-8")
        position = -1  # pragma: no cover - only called with a bad row
    except UnicodeDecodeError as exc:
        position = exc.start
    reason = (
        f"not valid UTF-8 (byte 0x{raw[position]:02X} at byte {position + 1} of the row; "
        "is the file Latin-1 or Windows-1252? re-export it as UTF-8)"
    )
    return json.dumps(raw.decode("utf-8", errors="backslashreplace")), reason


def _lines_table(numbers: list[int], texts: list[str], errors: list[str | None]) -> pa.Table:
    return pa.table(
        {
            "_row_number": pa.array(numbers, pa.int64()),
            "_line": pa.array(texts, pa.string()),
            "_error": pa.array(errors, pa.string()),
        }
    )


def _decode_lines_slowly(data: bytes, first: int, limit: int = DEFAULT_MAX_ROW_BYTES) -> pa.Table:
    """:func:`_decode_lines` line by line, for a block holding invalid UTF-8.

    The bad lines are kept, as JSON text of what could be decoded, and quarantined.
    """
    numbers: list[int] = []
    texts: list[str] = []
    errors: list[str | None] = []
    for number, raw in enumerate(data.split(b"\n"), start=first):
        stripped = raw.strip(_JSON_SPACE)
        if not stripped:
            continue
        numbers.append(number)
        body = raw[:-1] if raw.endswith(b"\r") else raw
        if len(body) > limit:
            content, reason = too_long(body, len(body), limit)
            texts.append(content)
            errors.append(reason)
            continue
        try:
            texts.append(body.decode("utf-8"))
            errors.append(None)
        except UnicodeDecodeError:
            content, reason = not_utf8(stripped)
            texts.append(content)
            errors.append(reason)
    return _lines_table(numbers, texts, errors)


def _decode_lines(data: bytes, first: int, limit: int = DEFAULT_MAX_ROW_BYTES) -> pa.Table:
    r"""Whole lines → ``_row_number, _line, _error`` of the non-blank ones.

    ``data`` ends at a line end (or the end of the file); its first line is number
    ``first``. A line's ``\r\n`` or ``\n`` ending is dropped. The lines are cut out of
    the block with numpy and become one Arrow string array without a Python string per
    line (that per-line work was most of the time of reading a large file). A line of
    more than ``limit`` bytes becomes a quarantine row (:func:`too_long`).
    """
    if not data or len(data) >= 1 << 31:  # nothing, or beyond 32-bit string offsets
        return _decode_lines_slowly(data, first, limit)
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate(([0], newlines + 1))
    stops = np.concatenate((newlines, [len(buf)]))
    # A carriage return just before a line end belongs to the line ending, not the line.
    cr = (stops > starts) & (buf[np.maximum(stops - 1, 0)] == 0x0D)
    stops = stops - cr
    lengths = stops - starts
    over = np.flatnonzero(lengths > limit)
    if len(over):
        return _decode_around_long_lines(data, first, limit, starts, stops, over)
    keep_byte = np.ones(len(buf), dtype=bool)
    keep_byte[newlines] = False
    keep_byte[stops[cr]] = False
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    lines = pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(buf[keep_byte]))
    try:
        lines.validate(full=True)  # UTF-8
    except pa.ArrowInvalid:
        return _decode_lines_slowly(data, first, limit)
    # Only lines not starting with "{" can be blank; the test runs on those.
    maybe_blank = np.flatnonzero((lengths == 0) | (buf[np.minimum(starts, len(buf) - 1)] != 0x7B))
    keep = np.ones(len(lengths), dtype=bool)
    if len(maybe_blank):
        few = lines.take(pa.array(maybe_blank))
        blank = pc.equal(pc.utf8_length(pc.utf8_trim(few, _JSON_SPACE.decode())), 0)
        keep[maybe_blank] = ~blank.to_numpy(zero_copy_only=False)
    numbers = pa.array(np.arange(first, first + len(lengths), dtype=np.int64))
    if keep.all():
        return pa.table({"_row_number": numbers, "_line": lines, "_error": pa.nulls(len(lines), pa.string())})
    kept = pa.array(keep)
    return pa.table(
        {
            "_row_number": numbers.filter(kept),
            "_line": lines.filter(kept),
            "_error": pa.nulls(int(keep.sum()), pa.string()),
        }
    )


def _decode_around_long_lines(
    data: bytes, first: int, limit: int, starts: np.ndarray, stops: np.ndarray, over: np.ndarray
) -> pa.Table:
    """:func:`_decode_lines` of a block with lines over the limit (numbered ``over``)."""
    parts = []
    line = 0  # the first line not decoded yet
    for i in over.tolist():
        if i > line:
            parts.append(_decode_lines(data[starts[line] : starts[i]], first + line, limit))
        body = data[starts[i] : stops[i]]
        if body.strip(_JSON_SPACE):
            parts.append(_long_line_table(_LongLine(body[:_KEPT_BYTES], len(body), False), first + i, limit))
        line = i + 1
    if line < len(starts):
        parts.append(_decode_lines(data[starts[line] :], first + line, limit))
    return pa.concat_tables(parts) if parts else _lines_table([], [], [])


@dataclass(frozen=True)
class _LongLine:
    """A line over the row size limit: its first bytes, its size, and whether it is blank."""

    start: bytes
    size: int
    blank: bool


def _long_line_table(line: _LongLine, number: int, limit: int) -> pa.Table:
    if line.blank:
        return _lines_table([], [], [])
    content, reason = too_long(line.start, line.size, limit)
    return _lines_table([number], [content], [reason])


def _blank(data: bytes) -> bool:
    """Whether ``data`` holds only JSON white space (without copying it)."""
    return _JSON_SPACE_RUN.fullmatch(data) is not None


def _skip_line(handle: BinaryIO, start: _LongLine, last: bytes, block: int) -> tuple[_LongLine, bytes]:
    """Read past the rest of a line whose start (no line end in it) is summed up in ``start``.

    Only the line's first bytes are kept, so a line of any size costs one block of memory.

    Args:
        handle: The file, positioned just after the line's start.
        start: The line so far.
        last: The last byte of the line so far.
        block: Bytes to read at a time.

    Returns:
        The whole line, and what was read after its line end.
    """
    size, blank = start.size, start.blank
    rest = b""
    while data := handle.read(block):
        cut = data.find(b"\n")
        body = data if cut < 0 else data[:cut]
        size += len(body)
        if body:
            last = body[-1:]
            blank = blank and _blank(body)
        if cut >= 0:
            rest = data[cut + 1 :]
            break
    if last == b"\r":  # part of the line ending (or a stray one at the end of the file)
        size -= 1
    return _LongLine(start.start, size, blank), rest


def _jsonl_pieces(handle: BinaryIO, block: int, limit: int) -> Iterator[tuple[bytes | _LongLine, int]]:
    """A JSON Lines file as pieces: runs of whole lines, and lines too long to hold.

    A run ends at a line end (or the end of the file); its lines are at most a block and
    the limit long. A line found to be over the limit before its end is read is skipped to
    its line end (:func:`_skip_line`), so memory stays bounded whatever the line's size.

    Yields:
        Each piece, with the file offset just after it.
    """
    carry = b""  # the start of a line whose end is not read yet
    while block_data := handle.read(block):
        data = carry + block_data
        del block_data
        end = data.rfind(b"\n") + 1
        carry = data[end:]
        if end:
            run = data[:end]
            del data
            yield run, handle.tell() - len(carry)
            del run
        else:
            del data
        if len(carry) > limit + 1:  # over the limit even if it ends in "\r"
            start, last = _LongLine(carry[:_KEPT_BYTES], len(carry), _blank(carry)), carry[-1:]
            carry = b""  # let go of it before reading on
            line, carry = _skip_line(handle, start, last, min(block, _SKIP_BYTES))
            yield line, handle.tell() - len(carry)
    if carry:
        yield carry, handle.tell()


def _jsonl_chunks(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fields: tuple[str, ...],
    max_rows: int,
    max_bytes: int,
    limit: int,
) -> Iterator[Chunk]:
    total = path.stat().st_size
    pending: list[pa.Table] = []  # decoded lines not handed out yet, in order
    held = 0  # rows in ``pending``
    buffered = 0  # bytes of line text in ``pending``
    consumed = 0  # bytes of the file turned into decoded lines
    next_line = 1
    produced = False

    def cut(count: int) -> Chunk:
        nonlocal pending, held, buffered
        lines = pa.concat_tables(pending) if pending else _lines_table([], [], [])
        rest = lines.slice(count)
        lines = lines.slice(0, count)
        pending = [rest] if rest.num_rows else []
        held = rest.num_rows
        buffered = _text_bytes(rest)
        rows = _with_digest(con, _from_json_lines(con, lines, fields))
        # Bytes turned into lines, less those not yet handed out.
        return Chunk(rows, max(0, min(consumed - buffered, total)), total, "bytes")

    try:
        with path.open("rb") as handle:
            for piece, offset in _jsonl_pieces(handle, min(_BLOCK_BYTES, max_bytes), limit):
                consumed = offset
                if isinstance(piece, _LongLine):
                    got = _long_line_table(piece, next_line, limit)
                    next_line += 1
                else:
                    got = _decode_lines(piece, next_line, limit)
                    next_line += piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
                pending.append(got)
                held += got.num_rows
                buffered += _text_bytes(got)
                while held >= max_rows:
                    produced = True
                    yield cut(max_rows)
                if buffered >= max_bytes and held:
                    produced = True
                    yield cut(held)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if held or not produced:
        chunk = cut(held)
        yield Chunk(chunk.rows, total, total, "bytes")


def _text_bytes(lines: pa.Table) -> int:
    """Bytes of line text in decoded lines (what a chunk's byte limit counts)."""
    return int(pc.sum(pc.binary_length(lines.column("_line"))).as_py() or 0) if lines.num_rows else 0


def _lines_not_utf8(path: Path) -> dict[int, bytes]:
    """Line numbers (1-based) and bytes of the lines of a file that are not valid UTF-8.

    One streamed pass with an incremental decoder answers the common case (all UTF-8,
    nothing to return); only a file with a bad byte is read again line by line.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK_BYTES), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return {}
        # DuckDB drops a CSV row that is not UTF-8 without a word (and without a reject
        # entry), so such lines are found here, before DuckDB reads the file.
    except UnicodeDecodeError:
        pass
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    bad: dict[int, bytes] = {}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad[number] = line.rstrip(b"\r\n")
    return bad


def _csv_chunks(
    con: duckdb.DuckDBPyConnection, path: Path, fields: tuple[str, ...], max_rows: int, limit: int
) -> Iterator[Chunk]:
    with tempfile.TemporaryDirectory(prefix="aag-csv-") as folder:
        source = path
        marks: dict[int, tuple[str, str]] = {}
        # Lines over the limit are cut out first (DuckDB would hold them whole, and drops a
        # line over its own max_line_size without a reject entry): a copy has a stand-in.
        long_lines = _long_lines(path, limit) if path.stat().st_size > limit else []
        if long_lines:
            source = Path(folder) / "short.csv"
            marks.update(_without_long_lines(path, source, long_lines, limit))
        stand_ins = set(marks)
        bad_lines = _lines_not_utf8(source)
        if bad_lines:
            if 1 in bad_lines:
                raise InputError(f"{path}: the CSV header is not valid UTF-8 (re-export the file as UTF-8)")
            # DuckDB reads a copy whose bad bytes are replaced (U+FFFD), so every line stays a
            # row; the rows of those lines are then quarantined with their original bytes, escaped.
            copy = Path(folder) / "utf8.csv"
            with source.open("rb") as original, copy.open("wb") as target:
                for line in original:
                    target.write(line.decode("utf-8", errors="replace").encode("utf-8"))
            marks.update({number: not_utf8(raw) for number, raw in bad_lines.items()})
            source = copy
        chunks = _csv_chunks_utf8(con, source, fields, max_rows, limit, name=path, stand_ins=stand_ins)
        for chunk in chunks:
            rows = _mark_rows(con, chunk.rows, marks) if marks else chunk.rows
            yield Chunk(rows, chunk.done, chunk.total, chunk.unit)


#: What replaces a CSV line over the limit in the copy DuckDB reads: one line, no field
#: separator and an even number of quotes, so it is a row of its own (a reject for missing
#: columns, or a value of a one-column file) whose line number meets its mark.
_STAND_IN = b'""'


def _long_lines(path: Path, limit: int) -> list[tuple[int, int, int]]:
    r"""``(line number, first byte, line end)`` of the lines of a file longer than ``limit``.

    One streamed pass; a line's length counts its ``\r`` here (the caller drops it).
    """
    found: list[tuple[int, int, int]] = []
    number, start, offset = 1, 0, 0  # the line that starts at byte ``start``; the block's offset
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK_BYTES), b""):
                ends = offset + np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A)
                if len(ends):
                    starts = np.concatenate(([start], ends[:-1] + 1))
                    found.extend(
                        (number + i, int(starts[i]), int(ends[i]))
                        for i in np.flatnonzero(ends - starts > limit).tolist()
                    )
                    number += len(ends)
                    start = int(ends[-1]) + 1
                offset += len(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if offset - start > limit:
        found.append((number, start, offset))
    return found


def _without_long_lines(
    path: Path, target: Path, lines: list[tuple[int, int, int]], limit: int
) -> dict[int, tuple[str, str]]:
    """Copy ``path`` to ``target`` with each long line replaced by :data:`_STAND_IN`.

    Returns:
        The marks (content, reason) of the long lines, by line number.

    Raises:
        InputError: If the header is over the limit, or a long line holds an odd number of
            quotes (it opens or closes a field spanning lines, so it is not a row of its own).
    """
    marks: dict[int, tuple[str, str]] = {}
    with path.open("rb") as source, target.open("wb") as out:
        done = 0  # bytes of ``path`` copied or replaced
        for number, start, end in lines:
            source.seek(end - 1)
            cr = source.read(1) == b"\r"
            size = end - start - cr
            if size <= limit:
                continue
            if number == 1:
                raise InputError(f"{path}: the CSV header is over the row size limit of {limit} bytes")
            _copy_range(source, out, done, start)
            source.seek(start)
            kept = source.read(_KEPT_BYTES)
            quotes = sum(part.count(b'"') for part in _read_range(source, start, end))
            if quotes % 2:
                raise InputError(
                    f"{path}: line {number} is over the row size limit of {limit} bytes inside a "
                    "quoted field that spans lines (raise it with --max-row-bytes)"
                )
            out.write(_STAND_IN)
            marks[number] = too_long(kept, size, limit)
            done = end - cr  # the line ending itself is copied with what follows
        _copy_range(source, out, done, None)
    return marks


def _read_range(handle: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (the end of the file: ``None``) of a file, in blocks."""
    handle.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        data = handle.read(_SKIP_BYTES if left is None else min(_SKIP_BYTES, left))
        if not data:
            return
        if left is not None:
            left -= len(data)
        yield data


def _copy_range(source: BinaryIO, out: BinaryIO, start: int, end: int | None) -> None:
    for data in _read_range(source, start, end):
        out.write(data)


def _mark_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table, marks: dict[int, tuple[str, str]]) -> pa.Table:
    """Give the rows numbered in ``marks`` its (content, reason): they go to quarantine.

    A CSV row is numbered by its line (see :class:`_LineNumbers`), so the marks, found by
    line, meet their rows; the content replaces the row's text, so the digest is redone.
    """
    numbers = rows.column("_row_number").to_pylist()
    hits = [i for i, n in enumerate(numbers) if n in marks]
    if not hits:
        return rows
    raw = rows.column("_raw").to_pylist()
    errors = rows.column("_error").to_pylist()
    for i in hits:
        raw[i], errors[i] = marks[numbers[i]]
    out = rows.drop_columns(["_row_digest"])
    out = out.set_column(out.schema.get_field_index("_raw"), "_raw", pa.array(raw, pa.string()))
    out = out.set_column(out.schema.get_field_index("_error"), "_error", pa.array(errors, pa.string()))
    return _with_digest(con, out)


def _csv_chunks_utf8(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fields: tuple[str, ...],
    max_rows: int,
    limit: int,
    name: Path | None = None,
    stand_ins: set[int] = frozenset(),  # type: ignore[assignment]
) -> Iterator[Chunk]:
    """:func:`_csv_chunks` of a UTF-8 file (``name``: the file to name in errors).

    ``stand_ins`` are the lines where :data:`_STAND_IN` replaced a line over the limit.
    """
    shown = name or path
    # DuckDB drops a line over its max_line_size (2 MB by default) without a reject entry,
    # so that limit is set out of reach; the row size limit is applied to the landed rows.
    source = (
        f"read_csv({_lit(path)}, all_varchar=true, header=true, store_rejects=true, "
        f"strict_mode=true, max_line_size={_DUCKDB_MAX_LINE})"
    )
    try:
        # The whole file is parsed once before any row is handed out: a file DuckDB cannot
        # read fails here, before the caller writes anything (and the count drives progress).
        good = int(con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0])
        # DuckDB may report several errors for one line (a short row: one per missing
        # column); the line is one row, quarantined once with its first error.
        rejects = con.sql(
            "SELECT line, min_by(csv_line, byte_position), min_by(error_message, byte_position) "
            "FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
        columns = len(_columns_as_text(con, source)) if stand_ins else 0
    except duckdb.Error as exc:
        raise InputError(f"{shown}: cannot read as CSV: {str(exc).splitlines()[0]}") from exc
    rejected = {int(r[0]): r[1] for r in rejects}
    for number in sorted(stand_ins):
        # In a file of several columns the stand-in is a reject of its own line; anything
        # else means the long line was inside a quoted field that spans lines.
        if columns > 1 and str(rejected.get(number, "")).strip("\r\n") != _STAND_IN.decode():
            raise InputError(
                f"{shown}: line {number} is over the row size limit of {limit} bytes inside a "
                "quoted field that spans lines (raise it with --max-row-bytes)"
            )
    total = good + len(rejects)
    done = 0
    template: pa.Table | None = None
    # A connection of its own: its result stays open while ``con`` shapes each chunk.
    stream_con = _connect()
    try:
        reader = stream_con.sql(f"SELECT * FROM {source}").to_arrow_reader(batch_size=min(max_rows, 100_000))
        numbering = _LineNumbers([int(r[0]) for r in rejects])
        for batch in _rebatch(reader, max_rows):
            numbers = numbering.take(batch.num_rows)
            done += batch.num_rows
            landed = _with_digest(
                con, _landed_arrow(con, batch.add_column(0, "_row_number", numbers), fields, limit)
            )
            template = landed
            yield Chunk(landed, done, total, "rows")
        reader.close()
    except duckdb.Error as exc:
        raise InputError(f"{shown}: cannot read as CSV (it changed while being read?): {exc}") from exc
    finally:
        stream_con.close()
    if rejects or template is None:
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
        yield Chunk(_with_digest(con, bad), total, total, "rows")


class _LineNumbers:
    """Row numbers of a CSV's parsed rows: 2, 3, ... skipping the rejected rows' lines.

    DuckDB names the line of a row it rejects but not of the rows it parses. Counting the
    parsed rows from 2 (after the header) past the rejected lines gives every row its own
    number, and the file's line number whenever no quoted field spans lines.
    """

    def __init__(self, rejected: list[int]) -> None:
        self._rejected = sorted(set(rejected))
        self._skip = 0  # rejected lines already passed
        self._next = 2

    def take(self, count: int) -> pa.Array:
        """The next ``count`` numbers."""
        if not self._rejected:
            out = pa.array(range(self._next, self._next + count), pa.int64())
            self._next += count
            return out
        numbers = []
        for _ in range(count):
            while self._skip < len(self._rejected) and self._rejected[self._skip] <= self._next:
                if self._rejected[self._skip] == self._next:
                    self._next += 1
                self._skip += 1
            numbers.append(self._next)
            self._next += 1
        return pa.array(numbers, pa.int64())


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


def _parquet_chunks(
    con: duckdb.DuckDBPyConnection, path: Path, fields: tuple[str, ...], max_rows: int, limit: int
) -> Iterator[Chunk]:
    source = f"read_parquet({_lit(path)})"
    try:
        columns = dict(_columns_as_text(con, source))
        total = int(con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0])
        if columns:
            # Every column decoded once to the end: a page corrupt deep inside the file fails
            # here, before the caller writes anything.
            con.sql(f"SELECT max(hash(COLUMNS(*))) FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from exc
    if "file_row_number" in columns:
        # DuckDB names its row position ``file_row_number``; a file with a column of that
        # name is numbered by a window instead, which reads the file in one piece.
        relation = f"(SELECT row_number() OVER () AS _row_number, * FROM {source})"
    else:
        relation = (
            f"(SELECT file_row_number + 1 AS _row_number, * EXCLUDE (file_row_number) "
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


def _columns_as_text(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    described = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return [(str(row[0]), str(row[1])) for row in described]


def _text_expr(name: str, dtype: str) -> str:
    col = '"' + name.replace('"', '""') + '"'
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
    struct = ", ".join(
        f"'{c.replace(chr(39), chr(39) * 2)}': " + '"' + c.replace('"', '""') + '"' for c in rest
    )
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
        """


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
