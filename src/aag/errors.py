"""The one exception hierarchy of AAG.

Every error a user can cause or meet derives from :class:`AagError`; the CLI
prints its message on one line and exits non-zero, the API maps it to a 4xx.
"""

from __future__ import annotations


class AagError(Exception):
    """Base class of every error AAG raises on purpose."""

    exit_code: int = 1


class ConfigError(AagError):
    """The registry, priorities or another configuration file is invalid."""

    exit_code = 2


class InputError(AagError):
    """An input file or argument cannot be used at all (nothing was changed)."""

    exit_code = 3


class NotFoundError(AagError):
    """The requested customer, attribute, model or table does not exist."""

    exit_code = 4


class WarehouseError(AagError):
    """The warehouse is missing, unreadable, or in a state AAG cannot work with."""

    exit_code = 5


class ConflictError(WarehouseError):
    """Another writer committed first; the operation changed nothing and can be retried."""

    exit_code = 6


class MissingExtraError(ConfigError):
    """A command needs packages of an optional extra that is not installed."""
