"""Merge-on-read commits for a local Delta table: deletion vectors instead of file rewrites.

delta-rs's MERGE rewrites every data file that holds a replaced row (copy-on-write), so a
batch touching 1% of the edges rewrites nearly the whole table. Here the replaced rows
are only *marked* deleted, with a Delta deletion vector (DV) per touched file, and the
replacement rows are appended as new files; no existing data file is written again.

One commit holds, for every touched file, a ``remove`` of its old logical file and an
``add`` of the same path with the new vector (the union of the old vector and the newly
deleted positions), an ``add`` per new data file, and a ``cdc`` file with exactly the
changed rows (``delete`` for the replaced rows, ``insert`` for the new ones: the images a
MERGE of delete and insert clauses produces, which is what the incremental gold build
reads). The log entry is put with put-if-absent (a hard link), so a second writer that
took the same version is told with :class:`aag.errors.ConflictError`.

Formats follow the Delta protocol ("Deletion Vectors", "Deletion Vector Format"): a
vector is a 64-bit roaring bitmap in the portable layout behind the magic number, stored
inline in the log (Z85 text) when small and otherwise in a ``deletion_vector_<uuid>.bin``
file of the table (version byte, then per vector: size, data, CRC-32, big-endian).

Local file system only: object stores keep delta-rs's MERGE.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from pyroaring import BitMap

from aag.errors import ConflictError, WarehouseError
from aag.faults import crash_point

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


class _VectorFile:
    """One ``deletion_vector_<uuid>.bin`` holding every on-disk vector of a commit."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.content = bytearray([FILE_VERSION])

    @property
    def name(self) -> str:
        return f"deletion_vector_{self.id}.bin"

    def add(self, data: bytes, cardinality: int) -> Descriptor:
        offset = len(self.content)
        self.content += struct.pack(">I", len(data)) + data + struct.pack(">I", zlib.crc32(data))
        return Descriptor("u", z85_encode(self.id.bytes), len(data), cardinality, offset)


def vector_descriptor(
    rows: Iterable[int], store: _VectorFile, inline_limit: int = INLINE_LIMIT
) -> Descriptor:
    """Serialise positions, inline when small enough, else appended to ``store``."""
    ordered = sorted(set(rows))
    data = encode_bitmap(ordered)
    if len(data) <= inline_limit:
        return Descriptor("i", z85_encode(data), len(data), len(ordered))
    return store.add(data, len(ordered))


# -- the log -----------------------------------------------------------------------------
def _log_dir(root: Path) -> Path:
    return root / "_delta_log"


def live_adds(root: Path, version: int) -> dict[str, dict[str, Any]]:
    """The ``add`` actions of the files in ``version``, by path (replayed from the log).

    Starts from the newest checkpoint at or before ``version`` when there is one.
    """
    log = _log_dir(root)
    live: dict[tuple[str, str], dict[str, Any]] = {}
    start = 0
    checkpoints = sorted(p for p in log.glob("*.checkpoint*.parquet") if int(p.name.split(".")[0]) <= version)
    if checkpoints:
        newest = int(checkpoints[-1].name.split(".")[0])
        for part in (p for p in checkpoints if int(p.name.split(".")[0]) == newest):
            adds = pq.read_table(part, columns=["add"]).column("add").to_pylist()
            for add in adds:
                if add is not None:
                    add["partitionValues"] = dict(add.get("partitionValues") or [])
                    _apply(live, {"add": add})
        start = newest + 1
    for v in range(start, version + 1):
        for line in (log / f"{v:020d}.json").read_text(encoding="utf-8").splitlines():
            if line.strip():
                _apply(live, json.loads(line))
    return {path: add for (path, _), add in live.items()}


def _dv_id(action: Mapping[str, Any]) -> str:
    dv = action.get("deletionVector")
    return Descriptor.from_json(dv).unique_id if dv else ""


def _apply(live: dict[tuple[str, str], dict[str, Any]], action: Mapping[str, Any]) -> None:
    if "add" in action:
        add = action["add"]
        live[(add["path"], _dv_id(add))] = add
    elif "remove" in action:
        remove = action["remove"]
        live.pop((remove["path"], _dv_id(remove)), None)


def _put_if_absent(root: Path, version: int, actions: list[dict[str, Any]]) -> None:
    """Write the log entry of ``version`` unless one exists (then :class:`ConflictError`)."""
    log = _log_dir(root)
    temp = log / f".{version:020d}.{uuid.uuid4()}.json.tmp"
    temp.write_text("".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions), encoding="utf-8")
    try:
        os.link(temp, log / f"{version:020d}.json")
    except FileExistsError as exc:
        raise ConflictError(
            f"another writer committed version {version} of {root} first; nothing was changed, retry"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def enable(uri: str) -> bool:
    """Add the ``deletionVectors`` feature and switch the property on; returns whether it committed.

    One commit with a ``protocol`` (reader 3, writer 7) and the table's ``metaData`` with
    :data:`PROPERTY` set, written the same put-if-absent way as the data commits.
    """
    root = Path(uri)
    table = DeltaTable(uri)
    protocol = table.protocol()
    meta = table.metadata()
    if FEATURE in (protocol.reader_features or []) and meta.configuration.get(PROPERTY) == "true":
        return False
    writer_version = protocol.min_writer_version
    if writer_version not in (*LEGACY_WRITER_FEATURES, 7) or protocol.min_reader_version not in (1, 3):
        # Column mapping (reader 2, writers 5 and 6) changes the files' column names.
        raise WarehouseError(
            f"{uri}: protocol {protocol.min_reader_version}/{writer_version} cannot take deletion vectors"
        )
    implied = LEGACY_WRITER_FEATURES.get(writer_version, ())
    readers = sorted({*(protocol.reader_features or []), FEATURE})
    writers = sorted({*(protocol.writer_features or []), *implied, FEATURE})
    configuration = {**meta.configuration, PROPERTY: "true"}
    version = int(table.version()) + 1
    actions: list[dict[str, Any]] = [
        {
            "commitInfo": {
                "timestamp": _now_ms(),
                "operation": "SET TBLPROPERTIES",
                "operationParameters": {"properties": json.dumps({PROPERTY: "true"})},
                "readVersion": version - 1,
                "engineInfo": "aag deletion-vector writer",
            }
        },
        {
            "protocol": {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": readers,
                "writerFeatures": writers,
            }
        },
        {
            "metaData": {
                "id": meta.id,
                "name": meta.name,
                "description": meta.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": table.schema().to_json(),
                "partitionColumns": list(meta.partition_columns),
                "createdTime": meta.created_time,
                "configuration": configuration,
            }
        },
    ]
    _put_if_absent(root, version, actions)
    return True


# -- statistics --------------------------------------------------------------------------
def _stat_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # Truncated to milliseconds, as delta-rs and Delta-Spark write timestamp bounds.
        value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


def _stats(table: pa.Table, columns: Iterable[str]) -> str:
    """The ``stats`` JSON of a new data file: row count, and bounds and nulls of ``columns``."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in columns:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if pa.types.is_nested(column.type) or pa.types.is_boolean(column.type):
            continue
        nulls[name] = int(column.null_count)
        if column.null_count < len(column):
            bounds = pc.min_max(column)
            mins[name] = _stat_value(bounds["min"].as_py())
            maxs[name] = _stat_value(bounds["max"].as_py())
    return json.dumps(
        {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def _stats_columns(configuration: Mapping[str, str | None], schema: pa.Schema) -> list[str]:
    listed = configuration.get("delta.dataSkippingStatsColumns")
    if listed:
        return [c.strip() for c in listed.split(",") if c.strip()]
    return list(schema.names[:32])


def _write_parquet(table: pa.Table, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy", row_group_size=64 * 1024)
    return path.stat().st_size


# -- the commit --------------------------------------------------------------------------
def _key_strings(table: pa.Table, key_columns: list[str]) -> pa.ChunkedArray | pa.Array:
    parts = [table.column(c).cast(pa.string()) for c in key_columns]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    # A NULL part would make the whole key NULL, never equal to a listed key (as in SQL).
    return joined


def _candidates(adds: dict[str, dict[str, Any]], first: str, lo: Any, hi: Any) -> list[str]:
    """Files whose statistics do not rule out a key with ``first`` between ``lo`` and ``hi``."""
    out = []
    for path, add in adds.items():
        stats = json.loads(add.get("stats") or "{}")
        fmin = (stats.get("minValues") or {}).get(first)
        fmax = (stats.get("maxValues") or {}).get(first)
        if stats.get("numRecords") == 0:
            continue
        if fmin is not None and fmax is not None and (fmax < lo or fmin > hi):
            continue
        out.append(path)
    return out


@dataclass
class PendingCommit:
    """A merge-on-read change whose files are written and whose log entry is not yet."""

    root: Path
    version: int
    actions: list[dict[str, Any]]
    #: The data, vector and change files written for it (orphans until committed).
    files: list[Path]
    metrics: dict[str, Any]

    def commit(self) -> dict[str, Any]:
        """Put the log entry; returns the metrics with the committed ``version``.

        Raises:
            ConflictError: Another writer committed this version first.
        """
        if self.actions:
            # A crash here leaves files no log entry names: the table reads as before, and
            # drop_orphans removes them.
            crash_point("dv-files-written")
            _put_if_absent(self.root, self.version, self.actions)
            self.metrics["version"] = self.version
        return self.metrics


def replace_keys(
    uri: str,
    keys: pa.Table,
    rows: pa.Table,
    metadata: Mapping[str, Any] | None = None,
    inline_limit: int = INLINE_LIMIT,
) -> dict[str, Any]:
    """Replace every row whose key (the columns of ``keys``) is listed, with deletion vectors.

    :func:`prepare_replace` and then :meth:`PendingCommit.commit`; see there.
    """
    return prepare_replace(uri, keys, rows, metadata, inline_limit).commit()


def prepare_replace(
    uri: str,
    keys: pa.Table,
    rows: pa.Table,
    metadata: Mapping[str, Any] | None = None,
    inline_limit: int = INLINE_LIMIT,
) -> PendingCommit:
    """Write the files of a key replacement with deletion vectors; the log entry comes after.

    The same change as :meth:`aag.graph.delta.DeltaIO.replace_keys` (the stored rows of the
    listed keys go, ``rows`` come), committed merge-on-read: the old rows are marked
    deleted and ``rows`` are appended. Switches the table's deletion vectors on first if
    needed (one extra commit).

    Returns:
        The pending commit; its metrics: ``num_target_rows_deleted``,
        ``num_target_rows_inserted``, ``num_target_rows_copied`` (always 0),
        ``num_files_with_new_vectors``, ``num_files_removed`` (every row deleted), and
        ``version`` once committed.
    """
    if not Path(uri).is_dir():
        raise WarehouseError(f"deletion vectors are written to local tables only, not {uri}")
    enable(uri)
    root = Path(uri)
    table = DeltaTable(uri)
    read_version = int(table.version())
    schema = pa.schema(table.schema().to_arrow())
    configuration = table.metadata().configuration
    if table.metadata().partition_columns:
        raise WarehouseError(f"{uri}: the deletion-vector writer handles unpartitioned tables only")
    if configuration.get("delta.columnMapping.mode", "none") != "none":
        raise WarehouseError(f"{uri}: the deletion-vector writer does not handle column mapping")
    adds = live_adds(root, read_version)
    known = {f.removeprefix("file://") for f in table.file_uris()}
    if {str(root / p) for p in adds} != {str(Path(k)) for k in known}:
        raise WarehouseError(f"{uri}: the log replay disagrees with delta-rs on the table's files")

    key_columns = keys.column_names
    wanted = pc.unique(_key_strings(keys, key_columns))
    now = _now_ms()
    actions: list[dict[str, Any]] = []
    deleted_parts: list[pa.Table] = []
    store = _VectorFile()
    deleted_total = files_dv = files_removed = 0
    if keys.num_rows:
        first = keys.column(key_columns[0]).cast(pa.string())
        bounds = pc.min_max(first)
        for path in sorted(_candidates(adds, key_columns[0], bounds["min"].as_py(), bounds["max"].as_py())):
            add = adds[path]
            file = pq.ParquetFile(root / path)
            key_data = file.read(columns=key_columns)
            hit = pc.fill_null(pc.is_in(_key_strings(key_data, key_columns), value_set=wanted), False)
            positions = set(pc.indices_nonzero(hit).to_pylist())
            old_dv = Descriptor.from_json(add["deletionVector"]) if add.get("deletionVector") else None
            old_rows = set(read_vector(root, old_dv)) if old_dv else set()
            positions -= old_rows
            if not positions:
                continue
            taken = sorted(positions)
            # Files delta-rs wrote read back with view types, which ``take`` does not handle.
            deleted_parts.append(file.read().cast(schema).take(pa.array(taken, pa.int64())))
            deleted_total += len(taken)
            every = old_rows | positions
            remove: dict[str, Any] = {
                "path": path,
                "deletionTimestamp": now,
                "dataChange": True,
                "extendedFileMetadata": True,
                "partitionValues": add.get("partitionValues") or {},
                "size": add["size"],
            }
            if old_dv:
                remove["deletionVector"] = old_dv.to_json()
            actions.append({"remove": remove})
            if len(every) >= file.metadata.num_rows:
                files_removed += 1
                continue
            stats = json.loads(add.get("stats") or "{}")
            stats["numRecords"] = file.metadata.num_rows
            # Bounds no longer need to occur among the valid rows (protocol "tightBounds").
            stats["tightBounds"] = False
            new_add = {
                "path": path,
                "partitionValues": add.get("partitionValues") or {},
                "size": add["size"],
                "modificationTime": add.get("modificationTime", now),
                "dataChange": True,
                "stats": json.dumps(stats, separators=(",", ":")),
                "deletionVector": vector_descriptor(every, store, inline_limit).to_json(),
            }
            actions.append({"add": new_add})
            files_dv += 1

    inserted = rows.cast(schema) if rows.num_rows else schema.empty_table()
    files: list[Path] = []
    if len(store.content) > 1:
        files.append(root / store.name)
        files[-1].write_bytes(bytes(store.content))
    if inserted.num_rows:
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        files.append(root / name)
        size = _write_parquet(inserted, files[-1])
        actions.append(
            {
                "add": {
                    "path": name,
                    "partitionValues": {},
                    "size": size,
                    "modificationTime": now,
                    "dataChange": True,
                    "stats": _stats(inserted, _stats_columns(configuration, schema)),
                }
            }
        )
    if not actions:
        empty = {"num_target_rows_deleted": 0, "num_target_rows_inserted": 0, "num_target_rows_copied": 0}
        return PendingCommit(root, read_version + 1, [], files, empty)
    if configuration.get("delta.enableChangeDataFeed") == "true":
        deleted = pa.concat_tables(deleted_parts).cast(schema) if deleted_parts else schema.empty_table()
        changes = pa.concat_tables(
            [
                deleted.append_column("_change_type", pa.array(["delete"] * deleted.num_rows, pa.string())),
                inserted.append_column("_change_type", pa.array(["insert"] * inserted.num_rows, pa.string())),
            ]
        )
        name = f"_change_data/cdc-00000-{uuid.uuid4()}.c000.snappy.parquet"
        files.append(root / name)
        size = _write_parquet(changes, files[-1])
        actions.append({"cdc": {"path": name, "partitionValues": {}, "size": size, "dataChange": False}})
    metrics: dict[str, Any] = {
        "num_target_rows_deleted": deleted_total,
        "num_target_rows_inserted": inserted.num_rows,
        "num_target_rows_copied": 0,
        "num_files_with_new_vectors": files_dv,
        "num_files_removed": files_removed,
    }
    commit_info: dict[str, Any] = {
        "timestamp": now,
        "operation": "MERGE",
        "operationParameters": {"mergePredicate": "key match, deletion vectors"},
        "readVersion": read_version,
        "isBlindAppend": False,
        "engineInfo": "aag deletion-vector writer",
        "operationMetrics": {k: str(v) for k, v in metrics.items()},
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    return PendingCommit(root, read_version + 1, [{"commitInfo": commit_info}, *actions], files, metrics)


def drop_dead_vectors(uri: str) -> int:
    """Delete the deletion vector files the table's latest version no longer uses; returns how many.

    delta-rs's vacuum keeps every ``deletion_vector_*.bin`` (it removes data files only), so
    after a compaction the vectors of the compacted files stay behind. Called after that
    vacuum, which already made the older versions unreadable.
    """
    root = Path(uri)
    if not (root / "_delta_log").is_dir():
        return 0
    adds = live_adds(root, int(DeltaTable(uri).version()))
    live = {
        str(Descriptor.from_json(add["deletionVector"]).file_name())
        for add in adds.values()
        if add.get("deletionVector") and add["deletionVector"].get("storageType") == "u"
    }
    dead = [p for p in root.rglob("deletion_vector_*.bin") if str(p.relative_to(root)) not in live]
    for path in dead:
        path.unlink()
    return len(dead)


def purge(uri: str, metadata: Mapping[str, Any] | None = None) -> int:
    """Rewrite every file a deletion vector hides rows of, without those rows; returns how many.

    A vector only hides rows: their values stay in the data file until it is rewritten.
    An erasure must not leave them there, so it purges first (Delta-Spark's ``REORG TABLE
    ... APPLY (PURGE)``); :func:`aag.service.maintenance.vacuum` then deletes the old
    files. One commit with ``dataChange`` false (no rows change, the feed skips it).

    Raises:
        ConflictError: Another writer committed the same version first.
    """
    root = Path(uri)
    table = DeltaTable(uri)
    version = int(table.version())
    if FEATURE not in (table.protocol().reader_features or []):
        return 0
    schema = pa.schema(table.schema().to_arrow())
    columns = _stats_columns(table.metadata().configuration, schema)
    now = _now_ms()
    actions: list[dict[str, Any]] = []
    for path, add in sorted(live_adds(root, version).items()):
        if not add.get("deletionVector"):
            continue
        old = Descriptor.from_json(add["deletionVector"])
        data = pq.read_table(root / path).cast(schema)
        hidden = pa.array(read_vector(root, old), pa.int64())
        keep = pc.invert(pc.is_in(pa.array(range(data.num_rows), pa.int64()), value_set=hidden))
        kept = data.filter(keep)
        actions.append(
            {
                "remove": {
                    "path": path,
                    "deletionTimestamp": now,
                    "dataChange": False,
                    "extendedFileMetadata": True,
                    "partitionValues": add.get("partitionValues") or {},
                    "size": add["size"],
                    "deletionVector": old.to_json(),
                }
            }
        )
        if kept.num_rows:
            name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
            size = _write_parquet(kept, root / name)
            actions.append(
                {
                    "add": {
                        "path": name,
                        "partitionValues": add.get("partitionValues") or {},
                        "size": size,
                        "modificationTime": now,
                        "dataChange": False,
                        "stats": _stats(kept, columns),
                    }
                }
            )
    if not actions:
        return 0
    commit_info = {
        "timestamp": now,
        "operation": "REORG",
        "operationParameters": {"applyPurge": "true"},
        "readVersion": version,
        "isBlindAppend": False,
        "engineInfo": "aag deletion-vector writer",
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    _put_if_absent(root, version + 1, [{"commitInfo": commit_info}, *actions])
    return sum(1 for a in actions if "remove" in a)
