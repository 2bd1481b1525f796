"""JSON Lines files as chunks of landed rows, in bounded memory.

The file is read in byte blocks cut at line ends; a block's lines are cut out with numpy
and parsed by DuckDB. A line over the row size limit is never held whole: the reader
skips to its end keeping only its start. A chunk's progress is counted in bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aag.bronze.landed import Chunk, _field_list, _with_digest
from aag.bronze.limits import (
    _BLOCK_BYTES,
    _KEPT_BYTES,
    _SKIP_BYTES,
    DEFAULT_MAX_ROW_BYTES,
    not_utf8,
    too_long,
)
from aag.errors import InputError

#: What a blank line may hold: JSON's white space (RFC 8259). Any other character makes the
#: line a row, quarantined if it is not JSON, never skipped silently.
_JSON_SPACE = b" \t\r\n"
_JSON_SPACE_RUN = re.compile(rb"[ \t\r\n]*")


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
            """  # noqa: S608 - field paths from dialect.json_path; aliases are numbers
        ).to_arrow_table()
    finally:
        con.unregister("lines")
    return table.rename_columns(["_row_number", "_raw", "_error", *fields])


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
