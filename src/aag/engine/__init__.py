"""The engine seam: where SQL runs and how tables move in and out.

AAG writes its rules once, as SQL in its canonical dialect (DuckDB's), and
each engine runs them: the local engine on DuckDB over Arrow, the Spark engine
transpiled with sqlglot. Engines differ only in how tables get registered and
how results come back; what an engine can do beyond that is declared as
capability flags, never tested by engine name in the core.
"""

from aag.engine.base import CANONICAL_DIALECT, Capability, Engine, SqlScan

__all__ = ["CANONICAL_DIALECT", "Capability", "Engine", "SqlScan", "make_engine"]


def make_engine(name: str = "local") -> Engine:
    """Create an engine by name (``local`` = DuckDB, ``spark`` = local or attached Spark).

    Args:
        name: Engine name.

    Returns:
        A ready engine.

    Raises:
        ConfigError: If the name is unknown or the engine's packages are missing.
    """
    from aag.errors import ConfigError

    if name in ("local", "duckdb"):
        from aag.engine.duckdb import DuckDBEngine

        return DuckDBEngine()
    if name == "spark":
        from aag.extras import require

        require("spark", "the spark engine")
        from aag.engine.spark import SparkEngine

        return SparkEngine()
    raise ConfigError(f"unknown engine {name!r}; use 'local' or 'spark'")
