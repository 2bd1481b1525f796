"""Node ids and checksums (SPEC §2).

Value nodes are content-addressed: ``sha256(node_type + ":" + normalised value)``
in lower-case hex, so every batch and every source that sees the same value
lands on the same node. Entity nodes get UUIDs; AAG derives them from the
source record they were first seen as (a name-based UUID, RFC 9562 version 8
over SHA-256), which keeps them stable across runs and rebuilds without a
lookup table.
"""

from __future__ import annotations

import hashlib
import uuid

from aag.normalize import normalise

#: Node types whose values use a specific normaliser when hashed from Python.
DEFAULT_NORMALISER_BY_NODE_TYPE: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "country": "country",
    "email_marketing_consent": "bool",
    "consent": "bool",
    "postal_code": "upper",
}


def value_checksum(value: str) -> str:
    """SHA-256 hex digest of a (normalised) value: the dedup key stored in ``nodes.checksum``."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def value_node_id(node_type: str, value: str, *, normalised: bool = True) -> str:
    """Deterministic id of a value node.

    Args:
        node_type: The node type (``email``, ``phone``, ...); it namespaces the hash so
            the same text as an email and as a username are different nodes.
        value: The value. It is hashed as given when ``normalised`` is true (the
            default, as stored in ``nodes.value``); otherwise it is first normalised
            with the node type's default normaliser.
        normalised: Whether ``value`` is already normalised.

    Returns:
        ``sha256(node_type + ":" + value)`` as lower-case hex.

    Raises:
        ValueError: If ``normalised`` is false and the value is empty or invalid.
    """
    if not normalised:
        spec = DEFAULT_NORMALISER_BY_NODE_TYPE.get(node_type, "text")
        result = normalise(spec, value)
        if result is None:
            raise ValueError(f"empty {node_type} value has no node")
        value = result
    return hashlib.sha256(f"{node_type}:{value}".encode()).hexdigest()


def entity_key(entity_type: str, source_system: str, source_object: str, record_id: str) -> str:
    """The name an entity UUID is derived from: ``type|system|object|record id``."""
    return f"{entity_type}|{source_system}|{source_object}|{record_id}"


def entity_node_id(entity_type: str, source_system: str, source_object: str, record_id: str) -> str:
    """Stable UUID of the entity first seen as one source record.

    The UUID is the first 128 bits of ``sha256(entity_key(...))`` with the RFC 9562
    version (8) and variant bits set; :func:`entity_node_id_sql` computes the same
    string in SQL so engines never need a Python round-trip.

    Args:
        entity_type: ``customer``, ``company``, ``asset``, ...
        source_system: Source system name, e.g. ``salesforce``.
        source_object: Source object, e.g. ``Contact``.
        record_id: The record's id in that object.

    Returns:
        The UUID in canonical 8-4-4-4-12 form.
    """
    digest = bytearray(
        hashlib.sha256(entity_key(entity_type, source_system, source_object, record_id).encode()).digest()[
            :16
        ]
    )
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def entity_node_id_sql(key_sql: str) -> str:
    """SQL (DuckDB dialect) computing :func:`entity_node_id` from an ``entity_key`` expression."""
    return uuid_from_hash_sql(f"sha256({key_sql})")


def uuid_from_hash_sql(hash_sql: str) -> str:
    """SQL formatting a SHA-256 hex digest as the version-8 UUID of :func:`entity_node_id`.

    Pass a column holding the digest rather than the hashing expression: the digest is
    sliced six times, and should be computed once.
    """
    h = hash_sql
    variant = f"substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr({h}, 17, 1)), 1)"
    return (
        f"concat(substr({h}, 1, 8), '-', substr({h}, 9, 4), '-8', substr({h}, 14, 3), '-', "
        f"{variant}, substr({h}, 18, 3), '-', substr({h}, 21, 12))"
    )


def value_node_id_sql(node_type_sql: str, value_sql: str) -> str:
    """SQL (DuckDB dialect) computing :func:`value_node_id`."""
    return f"sha256(concat({node_type_sql}, ':', {value_sql}))"


def record_key(source_system: str, source_object: str, record_id: str) -> str:
    """One-way key of a source record (the erasure log keeps this, not the record id)."""
    return hashlib.sha256(f"{source_system}:{source_object}:{record_id}".encode()).hexdigest()
