"""The pipeline's settings: the ``aag.*`` keys of its configuration (see :mod:`aag.databricks.lakeflow`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Pipeline settings, read from the pipeline configuration."""

    mode: str = "files"
    landing: str = "/Volumes/aag/bronze/landing"
    bronze: str = "bronze"
    graph: str = "graph"
    objects: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    #: ``system.Object`` → landing shape (``aag.shape.<system>.<object>``); others are ``api``.
    shapes: tuple[tuple[str, str], ...] = ()
    config_dir: str = ""

    @classmethod
    def from_conf(cls, conf: dict[str, str]) -> Settings:
        """Settings from ``aag.*`` configuration keys."""
        objects = tuple(o.strip() for o in conf.get("aag.objects", "").split(",") if o.strip())
        # An empty table name leaves the object out, so a bundle variable can default to "".
        sources = tuple(
            (key.removeprefix("aag.source."), value.strip())
            for key, value in sorted(conf.items())
            if key.startswith("aag.source.") and value.strip()
        )
        shapes = tuple(
            (key.removeprefix("aag.shape."), value.strip())
            for key, value in sorted(conf.items())
            if key.startswith("aag.shape.")
        )
        return cls(
            mode=conf.get("aag.bronze.mode", "files"),
            landing=conf.get("aag.landing.path", cls.landing),
            bronze=conf.get("aag.schema.bronze", "bronze"),
            graph=conf.get("aag.schema.graph", "graph"),
            objects=objects,
            sources=sources,
            shapes=shapes,
            config_dir=conf.get("aag.config.dir", ""),
        )


def session_conf(spark: Any, prefix: str = "") -> dict[str, str]:
    """The session's configuration keys starting with ``prefix`` (the pipeline settings).

    ``spark.conf.getAll`` exists from PySpark 4.0 on; a pipeline on a Spark 3.5 runtime
    lists the settings with ``SET`` instead, so the same source file runs on both.
    """
    get_all = getattr(spark.conf, "getAll", None)
    if get_all is None:
        pairs = {str(row[0]): str(row[1]) for row in spark.sql("SET").collect()}
    else:
        pairs = dict(get_all() if callable(get_all) else get_all)
    return {k: v for k, v in pairs.items() if k.startswith(prefix)}
