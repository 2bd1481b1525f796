"""A deletion vector's formats: Z85 text, the portable roaring bitmap array, descriptors, vector files."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroaring import BitMap

#: Magic number of the portable RoaringBitmapArray serialisation (protocol, little-endian).
MAGIC = 1681511377
#: Format version byte of a deletion vector file.
FILE_VERSION = 1
#: Vectors up to this many serialised bytes go inline into the log entry.
INLINE_LIMIT = 64
#: Table feature and property that switch deletion vectors on.
FEATURE = "deletionVectors"
PROPERTY = "delta.enableDeletionVectors"
#: The writer features each legacy writer version implies (protocol "Table Features"): a
#: table moved to writer version 7 must list them to keep them (delta-rs creates
#: ``relationships`` at writer version 4, for its change data feed).
LEGACY_WRITER_FEATURES = {
    1: (),
    2: ("appendOnly", "invariants"),
    3: ("appendOnly", "invariants", "checkConstraints"),
    4: ("appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"),
}

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


# -- Z85 ---------------------------------------------------------------------------------
def z85_encode(data: bytes) -> str:
    """Z85 text of ``data``, zero-padded to a multiple of 4 bytes (as Delta does)."""
    padded = data + b"\0" * (-len(data) % 4)
    out = []
    for (word,) in struct.iter_unpack(">I", padded):
        chars = []
        for _ in range(5):
            word, digit = divmod(word, 85)
            chars.append(_Z85[digit])
        out.append("".join(reversed(chars)))
    return "".join(out)


def z85_decode(text: str, size: int | None = None) -> bytes:
    """The bytes of Z85 ``text``, cut to ``size`` (the length before padding) if given."""
    if len(text) % 5:
        raise ValueError(f"Z85 text of {len(text)} characters (not a multiple of 5)")
    out = bytearray()
    for start in range(0, len(text), 5):
        word = 0
        for char in text[start : start + 5]:
            if char not in _Z85_INDEX:
                raise ValueError(f"{char!r} is not a Z85 character")
            word = word * 85 + _Z85_INDEX[char]
        if word > 0xFFFFFFFF:
            raise ValueError("Z85 group out of range")
        out += struct.pack(">I", word)
    return bytes(out if size is None else out[:size])


# -- the bitmap --------------------------------------------------------------------------
def encode_bitmap(rows: Iterable[int]) -> bytes:
    """Row positions as Delta's portable RoaringBitmapArray (magic number, then buckets).

    Each 32-bit bucket key (the high half of a position) must keep its top bit clear.
    """
    buckets: dict[int, BitMap] = {}
    for row in rows:
        if row < 0 or row >> 63:
            raise ValueError(f"row position {row} out of range")
        buckets.setdefault(row >> 32, BitMap()).add(row & 0xFFFFFFFF)
    parts = [struct.pack("<Iq", MAGIC, len(buckets))]
    for key in sorted(buckets):
        bitmap = buckets[key]
        bitmap.run_optimize()
        parts.append(struct.pack("<I", key) + bitmap.serialize())
    return b"".join(parts)


def decode_bitmap(data: bytes) -> list[int]:
    """The sorted row positions of a serialised RoaringBitmapArray (:func:`encode_bitmap`)."""
    if len(data) < 12:
        raise ValueError("deletion vector shorter than its header")
    magic, count = struct.unpack_from("<Iq", data, 0)
    if magic != MAGIC:
        raise ValueError(f"deletion vector magic number {magic}, expected {MAGIC}")
    rows: list[int] = []
    pos = 12
    for _ in range(count):
        (key,) = struct.unpack_from("<I", data, pos)
        pos += 4
        # The portable format has no length prefix: its header says where it ends (the writer's
        # container kinds, which re-serialising here need not reproduce).
        size = _portable_size(data, pos)
        bitmap = BitMap.deserialize(data[pos : pos + size])
        pos += size
        rows.extend((key << 32) | value for value in bitmap)
    if pos != len(data):
        raise ValueError(f"deletion vector has {len(data) - pos} bytes past its last bucket")
    return rows


def _portable_size(data: bytes, pos: int) -> int:
    """Byte length of the portable 32-bit roaring bitmap that starts at ``pos``."""
    start = pos
    (cookie,) = struct.unpack_from("<I", data, pos)
    serial_cookie_no_run, serial_cookie = 12346, 12347
    if cookie & 0xFFFF == serial_cookie:
        n = (cookie >> 16) + 1
        pos += 4
        run_bits = data[pos : pos + (n + 7) // 8]
        pos += (n + 7) // 8
        has_run = [bool(run_bits[i // 8] >> (i % 8) & 1) for i in range(n)]
    elif cookie == serial_cookie_no_run:
        (n,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8
        has_run = [False] * n
    else:
        raise ValueError("not a portable roaring bitmap")
    cards = [struct.unpack_from("<HH", data, pos + 4 * i)[1] + 1 for i in range(n)]
    pos += 4 * n
    if cookie == serial_cookie_no_run or n >= 4:
        pos += 4 * n  # offset header
    for card, run in zip(cards, has_run, strict=True):
        if run:
            (runs,) = struct.unpack_from("<H", data, pos)
            pos += 2 + 4 * runs
        elif card > 4096:
            pos += 8192
        else:
            pos += 2 * card
    return pos - start


# -- descriptors and files ---------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    """A deletion vector descriptor as the log stores it (protocol field names in JSON)."""

    storage_type: str
    path_or_inline: str
    size_in_bytes: int
    cardinality: int
    offset: int | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Descriptor:
        """Read a ``deletionVector`` object of an ``add`` or ``remove`` action."""
        offset = value.get("offset")
        return cls(
            storage_type=str(value["storageType"]),
            path_or_inline=str(value["pathOrInlineDv"]),
            size_in_bytes=int(value["sizeInBytes"]),
            cardinality=int(value["cardinality"]),
            offset=None if offset is None else int(offset),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``deletionVector`` object for the log."""
        out: dict[str, Any] = {"storageType": self.storage_type, "pathOrInlineDv": self.path_or_inline}
        if self.offset is not None:
            out["offset"] = self.offset
        out["sizeInBytes"] = self.size_in_bytes
        out["cardinality"] = self.cardinality
        return out

    @property
    def unique_id(self) -> str:
        """The id that tells two vectors of one data file apart (protocol "Derived Fields")."""
        base = self.storage_type + self.path_or_inline
        return base if self.offset is None else f"{base}@{self.offset}"

    def file_name(self) -> str | None:
        """Path of the vector's file relative to the table (``None`` unless ``u``)."""
        if self.storage_type != "u":
            return None
        prefix, encoded = self.path_or_inline[:-20], self.path_or_inline[-20:]
        name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(encoded, 16))}.bin"
        return f"{prefix}/{name}" if prefix else name


def read_vector(table_root: str | Path, descriptor: Descriptor) -> list[int]:
    """The row positions a descriptor marks deleted (inline, or read from its file)."""
    if descriptor.storage_type == "i":
        data = z85_decode(descriptor.path_or_inline, descriptor.size_in_bytes)
    else:
        if descriptor.storage_type == "u":
            path = Path(table_root) / str(descriptor.file_name())
        elif descriptor.storage_type == "p":
            path = Path(descriptor.path_or_inline.removeprefix("file://"))
        else:
            raise ValueError(f"unknown deletion vector storage type {descriptor.storage_type!r}")
        with path.open("rb") as handle:
            if handle.read(1) != bytes([FILE_VERSION]):
                raise ValueError(f"{path}: not a version-{FILE_VERSION} deletion vector file")
            handle.seek(descriptor.offset if descriptor.offset is not None else 1)
            (size,) = struct.unpack(">I", handle.read(4))
            if size != descriptor.size_in_bytes:
                raise ValueError(f"{path}: vector of {size} bytes, the log says {descriptor.size_in_bytes}")
            data = handle.read(size)
            (checksum,) = struct.unpack(">I", handle.read(4))
        if zlib.crc32(data) != checksum:
            raise ValueError(f"{path}: deletion vector checksum mismatch")
    rows = decode_bitmap(data)
    if len(rows) != descriptor.cardinality:
        raise ValueError(f"deletion vector holds {len(rows)} rows, the log says {descriptor.cardinality}")
    return rows


class VectorFile:
    """One ``deletion_vector_<uuid>.bin`` holding every on-disk vector of a commit."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.content = bytearray([FILE_VERSION])

    @property
    def name(self) -> str:
        """The file name inside the table's folder."""
        return f"deletion_vector_{self.id}.bin"

    def add(self, data: bytes, cardinality: int) -> Descriptor:
        """Append one serialised vector; returns its descriptor (offset into this file)."""
        offset = len(self.content)
        self.content += struct.pack(">I", len(data)) + data + struct.pack(">I", zlib.crc32(data))
        return Descriptor("u", z85_encode(self.id.bytes), len(data), cardinality, offset)


def vector_descriptor(rows: Iterable[int], store: VectorFile, inline_limit: int = INLINE_LIMIT) -> Descriptor:
    """Serialise positions, inline when small enough, else appended to ``store``."""
    ordered = sorted(set(rows))
    data = encode_bitmap(ordered)
    if len(data) <= inline_limit:
        return Descriptor("i", z85_encode(data), len(data), len(ordered))
    return store.add(data, len(ordered))


# -- the log -----------------------------------------------------------------------------
