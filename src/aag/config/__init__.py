"""Configuration as data: the registry, priorities, survivorship, connector landing shapes.

The CSVs in ``src/aag/defaults/seeds`` are dbt seeds (``seed-paths``) and the engine
reads the very same files, so field mapping and conflict resolution have one source of truth.
A warehouse may carry its own copies under ``<warehouse>/config`` (written by
``aag init``); otherwise the packaged defaults are used.

Modules: :mod:`~aag.config.files` (the files and their row models),
:mod:`~aag.config.settings` (the loaded :class:`Config`), :mod:`~aag.config.load`
(reading and checking a folder).
"""

from aag.config.files import (
    API_SHAPE,
    CONFIG_FILES,
    DEFAULT_FUTURE_TOLERANCE,
    EARLIEST_EVENT_TIME,
    FUTURE_TOLERANCE_COLUMN,
    IDENTITY_BLOCKLIST_FILE,
    IDENTITY_RULES_FILE,
    LANDING_SHAPES_FILE,
    PRIORITY_FILE,
    REFERENCE_NORMALISERS,
    REGISTRY_FILE,
    SOURCE_LIST_SEPARATOR,
    STRATEGIES,
    SURVIVORSHIP_FILE,
    TIME_FORMATS,
    BlockedValue,
    IdentityRule,
    LandingColumn,
    ObjectSpec,
    RegistryRow,
    Role,
    SurvivorshipRule,
    default_rule,
)
from aag.config.load import load_config
from aag.config.settings import Config, default_config_dir

__all__ = [
    "API_SHAPE",
    "CONFIG_FILES",
    "DEFAULT_FUTURE_TOLERANCE",
    "EARLIEST_EVENT_TIME",
    "FUTURE_TOLERANCE_COLUMN",
    "IDENTITY_BLOCKLIST_FILE",
    "IDENTITY_RULES_FILE",
    "LANDING_SHAPES_FILE",
    "PRIORITY_FILE",
    "REFERENCE_NORMALISERS",
    "REGISTRY_FILE",
    "SOURCE_LIST_SEPARATOR",
    "STRATEGIES",
    "SURVIVORSHIP_FILE",
    "TIME_FORMATS",
    "BlockedValue",
    "Config",
    "IdentityRule",
    "LandingColumn",
    "ObjectSpec",
    "RegistryRow",
    "Role",
    "SurvivorshipRule",
    "default_config_dir",
    "default_rule",
    "load_config",
]
