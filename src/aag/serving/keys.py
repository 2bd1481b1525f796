"""API keys with scopes, kept as data in ``<warehouse>/config/api_keys.csv``.

The file holds a key's name, scopes and the SHA-256 of the key, never the key itself:
``aag keys add`` prints a new key once. A request is allowed when its key's hash is
listed with the scope the endpoint needs. The file is re-read when it changes, so
adding or revoking a key needs no restart.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aag.errors import ConfigError, InputError

#: What a key may do: read profiles and lineage, send events, erase customers, and decide
#: identity (keep records apart or join them: ``admin``).
SCOPES = ("read", "ingest", "erase", "admin")
KEYS_FILE = "api_keys.csv"
COLUMNS = ("name", "key_sha256", "scopes", "created_at")
#: Keys are ``aag_`` + 32 URL-safe random bytes; the prefix makes leaked keys greppable.
KEY_PREFIX = "aag_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key (its hash, not the key)."""

    name: str
    key_sha256: str
    scopes: frozenset[str]


def parse_scopes(text: str) -> frozenset[str]:
    """``read,ingest`` (or space separated) → a validated scope set."""
    scopes = frozenset(s for s in text.replace(",", " ").split() if s)
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise InputError(f"scopes must be some of {', '.join(SCOPES)}; got {text!r}")
    return scopes


class KeyRing:
    """The keys of one warehouse, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        """Keys from ``path`` (a missing file means no keys: every request is refused)."""
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    def _load(self) -> dict[str, ApiKey]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._keys = {k.key_sha256: k for k in read_keys(self.path)}
                self._stamp = stamp
            return self._keys

    def keys(self) -> list[ApiKey]:
        """Every configured key."""
        return list(self._load().values())

    def check(self, key: str | None) -> ApiKey | None:
        """The configured key matching ``key``, or None."""
        if not key:
            return None
        digest = _digest(key)
        for known, entry in self._load().items():
            # Constant-time comparison: the hash of a guess must not leak by timing.
            if hmac.compare_digest(known, digest):
                return entry
        return None


def read_keys(path: Path) -> list[ApiKey]:
    """Parse ``api_keys.csv``; a malformed row is a :class:`ConfigError` naming it."""
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"name", "key_sha256", "scopes"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}: expected columns {', '.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            digest = (row.get("key_sha256") or "").strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{path}:{line}: key_sha256 must be 64 hex digits")
            try:
                scopes = parse_scopes(row.get("scopes") or "")
            except InputError as exc:
                raise ConfigError(f"{path}:{line}: {exc}") from None
            out.append(ApiKey(name=(row.get("name") or "").strip(), key_sha256=digest, scopes=scopes))
    return out


def add_key(path: Path, name: str, scopes: frozenset[str]) -> str:
    """Create a key, store its hash under ``name``, and return the key (shown once)."""
    if not name or any(c in name for c in ',\n\r"'):
        raise InputError("a key name must be non-empty and hold no comma, quote or newline")
    existing = read_keys(path) if path.exists() else []
    if any(k.name == name for k in existing):
        raise InputError(f"a key named {name!r} exists; revoke it first")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(COLUMNS)
        writer.writerow([name, _digest(key), " ".join(sorted(scopes)), created])
    return key


def revoke_key(path: Path, name: str) -> None:
    """Remove the key called ``name``."""
    if not path.exists():
        raise InputError(f"no key named {name!r}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if r.get("name") != name]
    if len(kept) == len(rows):
        raise InputError(f"no key named {name!r}")
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    tmp.replace(path)
