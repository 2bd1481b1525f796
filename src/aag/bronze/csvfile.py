"""CSV files as chunks of landed rows, streamed by DuckDB's CSV reader.

DuckDB drops a line that is not UTF-8, or over its own line size limit, without a
reject entry. Such lines are found first, and DuckDB reads a copy in which they are
replaced, so every line stays a row; their rows are then quarantined with their
original content. The whole file is parsed once before the first chunk, so a file
DuckDB cannot read is rejected before anything is written.
"""

from __future__ import annotations

import codecs
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from aag.bronze.landed import Chunk, _columns_as_text, _connect, _landed_arrow, _lit, _rebatch, _with_digest
from aag.bronze.limits import _BLOCK_BYTES, _KEPT_BYTES, _SKIP_BYTES, not_utf8, too_long
from aag.errors import InputError

#: DuckDB's CSV max_line_size: out of reach (see :func:`_csv_chunks_utf8`).
_DUCKDB_MAX_LINE = 1 << 40


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
        good = int(con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0])  # noqa: S608 - file path quoted by dialect.lit
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
        reader = stream_con.sql(f"SELECT * FROM {source}").to_arrow_reader(batch_size=min(max_rows, 100_000))  # noqa: S608 - file path quoted by dialect.lit
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
