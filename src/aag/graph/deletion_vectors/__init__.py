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

from aag.graph.deletion_vectors.commit import PendingCommit, prepare_replace, replace_keys
from aag.graph.deletion_vectors.format import (
    FEATURE,
    FILE_VERSION,
    INLINE_LIMIT,
    LEGACY_WRITER_FEATURES,
    MAGIC,
    PROPERTY,
    Descriptor,
    VectorFile,
    decode_bitmap,
    encode_bitmap,
    read_vector,
    vector_descriptor,
    z85_decode,
    z85_encode,
)
from aag.graph.deletion_vectors.log import enable, live_adds
from aag.graph.deletion_vectors.maintenance import drop_dead_vectors, purge
from aag.graph.deletion_vectors.read import KeyedRead, keyed_rows

__all__ = [
    "FEATURE",
    "FILE_VERSION",
    "INLINE_LIMIT",
    "LEGACY_WRITER_FEATURES",
    "MAGIC",
    "PROPERTY",
    "Descriptor",
    "KeyedRead",
    "PendingCommit",
    "VectorFile",
    "decode_bitmap",
    "drop_dead_vectors",
    "enable",
    "encode_bitmap",
    "keyed_rows",
    "live_adds",
    "prepare_replace",
    "purge",
    "read_vector",
    "replace_keys",
    "vector_descriptor",
    "z85_decode",
    "z85_encode",
]
