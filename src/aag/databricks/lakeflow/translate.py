"""AAG's extractors in Spark terms: their SQL as Spark SQL, their Python as pandas UDFs.

The pipeline runs each extractor's own canonical SQL (transpiled here) and its
``prepare`` step and phone normalisation (wrapped as UDFs), so it computes what the
embedded engine computes, not a copy of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from aag.engine.dialect import ident, lit, to_dialect
from aag.engine.spark import spark_arrow_schema
from aag.normalize import normalise_phones
from aag.sources.base import Extractor


def key_of(system: str, obj: str) -> str:
    """``system_object`` in lower case, safe as a table name."""
    return re.sub(r"\W", "_", f"{system}_{obj}".lower())


def spark_sql(canonical: str, tables: dict[str, str]) -> str:
    """Canonical SQL → Spark SQL, with engine table names replaced by pipeline datasets."""
    return to_dialect(canonical, "spark", tables=tables)


def without_star_except(sql: str) -> tuple[str, tuple[str, ...]]:
    """Spark SQL without its outer ``SELECT * EXCEPT (...)``, and the columns it left out.

    Spark 3.5 has no ``* EXCEPT`` (DuckDB's ``* EXCLUDE``); the caller drops the columns
    from the DataFrame instead, which every Spark version does.
    """
    tree = sqlglot.parse_one(sql, read="spark")
    star = tree.expressions[0] if isinstance(tree, exp.Select) and len(tree.expressions) == 1 else None
    if not isinstance(star, exp.Star) or not star.args.get("except_"):
        return sql, ()
    dropped = tuple(column.name for column in star.args["except_"])
    star.set("except_", None)
    return tree.sql(dialect="spark"), dropped


def _spark_json_path(field: str) -> str:
    """Spark's JSON path to the top-level member ``field`` (bracket form unless a plain name)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
        return "$." + field
    return "$['" + field + "']"


def _json_get(key: str) -> str:
    """Spark SQL reading one top-level key of ``_raw`` as text."""
    return f"get_json_object(_raw, {lit(_spark_json_path(key), 'spark')})"


def _struct_sql(tree: dict[str, Any]) -> str:
    """A struct of landed columns: ``tree`` maps each key to a column or a subtree."""
    parts = [
        f"{lit(key, 'spark')}, {_json_get(value) if isinstance(value, str) else _struct_sql(value)}"
        for key, value in tree.items()
    ]
    return f"named_struct({', '.join(parts)})"


def landed_sql(source: str, fields: tuple[str, ...], shape: Mapping[str, str] | None = None) -> str:
    """Spark SQL parsing bronze rows into landed rows (what :func:`aag.bronze.parse_raw` gives).

    Args:
        source: The bronze dataset.
        fields: The fields the extractor reads (registry names).
        shape: Landed column → registry field, when the rows have a connector's shape
            (:meth:`aag.config.Config.landing_shape`): a field is read from its column,
            and a field whose keys the shape maps (``traits`` of ``traits.email``) is
            rebuilt as a JSON object. Fields the shape does not map keep their own name.
    """
    column_of = {field: column for column, field in (shape or {}).items()}
    picks = []
    for field in fields:
        if field in column_of:
            expr = _json_get(column_of[field])
        else:
            tree: dict[str, Any] = {}
            for target, column in column_of.items():
                if target.startswith(field + "."):
                    *path, leaf = target.removeprefix(field + ".").split(".")
                    node = tree
                    for key in path:
                        node = node.setdefault(key, {})
                    node[leaf] = column
            # to_json leaves out NULL keys: a connector column that is NULL (Segment's
            # warehouse fills a trait column only for a non-null value) is a key the call
            # did not carry.
            nulls_out = "map('ignoreNullFields', 'true')"
            expr = f"to_json({_struct_sql(tree)}, {nulls_out})" if tree else _json_get(field)
        picks.append(f"{expr} AS {ident(field, 'spark')}")
    error = (
        "CASE WHEN get_json_object(_raw, '$') IS NULL THEN 'invalid JSON' "
        "WHEN NOT startswith(ltrim(_raw), '{') THEN 'not a JSON object' END"
    )
    return (
        f"SELECT _batch_id, _landed_at, _row_number, _raw, {error} AS _error"  # noqa: S608 - paths and names quoted by dialect.lit/ident (Spark)
        + "".join(", " + p for p in picks)
        + f" FROM {source}"
    )


def landed_schema(extractor: Extractor, prepared: bool = True) -> pa.Schema:
    """Schema of the landed rows the extractor reads (after its ``prepare``, unless not ``prepared``)."""
    base = pa.schema(
        [
            pa.field("_batch_id", pa.string()),
            pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
            pa.field("_row_number", pa.int64()),
            pa.field("_raw", pa.string()),
            pa.field("_error", pa.string()),
            *[pa.field(f, pa.string()) for f in extractor.fields],
        ]
    )
    if not prepared:
        return base
    return spark_arrow_schema(extractor.prepare(base.empty_table()).schema)


def _prepare_udf(extractor: Extractor, schema: pa.Schema) -> Any:
    """A pandas UDF running the extractor's ``prepare`` (Arrow in, Arrow out) on a row struct.

    (``mapInArrow`` would be the natural fit, but pipeline query functions may not
    trigger analysis, which it does through Spark Connect.)
    """
    from pyspark.sql.pandas import functions
    from pyspark.sql.pandas.types import from_arrow_schema

    pandas_udf: Any = functions.pandas_udf  # the type hints of the function select its kind

    def prepare(rows: pd.DataFrame) -> pd.DataFrame:
        table = pa.Table.from_pandas(rows, preserve_index=False)
        return extractor.prepare(table).cast(schema).to_pandas()

    return pandas_udf(prepare, returnType=from_arrow_schema(schema))


def _e164_udf() -> Any:
    """A pandas UDF normalising (raw phone, region) pairs with :func:`aag.normalize.normalise_phones`."""
    from pyspark.sql.pandas import functions

    pandas_udf: Any = functions.pandas_udf

    def e164(raw: pd.Series, region: pd.Series) -> pd.Series:
        table = normalise_phones(
            zip(raw.tolist(), [r if isinstance(r, str) else None for r in region], strict=True)
        )
        return pd.Series(table.column("e164").to_pylist(), dtype=object)

    from pyspark.sql.types import StringType

    return pandas_udf(e164, returnType=StringType())


def _overrides_prepare(extractor: Extractor) -> bool:
    return type(extractor).prepare is not Extractor.prepare
