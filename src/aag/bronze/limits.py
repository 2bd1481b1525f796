"""The limits bronze reads within, and the quarantine marks of rows that break them.

Chunks bound a file's memory, the row size limit one row's. A row over that limit, or
whose bytes are not UTF-8, is not loaded: it lands as a quarantine row, its content and
reason made here so that every format marks such rows alike.
"""

from __future__ import annotations

import codecs
import json
import os

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


def chunk_limits(chunk_rows: int | None = None, chunk_bytes: int | None = None) -> tuple[int, int]:
    """Rows and bytes per chunk: the arguments, else ``$AAG_CHUNK_ROWS`` / ``$AAG_CHUNK_BYTES``."""
    rows = chunk_rows or _setting("AAG_CHUNK_ROWS", DEFAULT_CHUNK_ROWS)
    size = chunk_bytes or _setting("AAG_CHUNK_BYTES", DEFAULT_CHUNK_BYTES)
    return rows, size


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
