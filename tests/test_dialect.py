"""The one SQL toolkit: quoting that DuckDB reads back exactly, and the one transpiler."""

from __future__ import annotations

import json

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag.engine.dialect import ident, in_list, json_path, lit, to_dialect
from aag.engine.spark import SparkEngine

# Any text DuckDB can hold: UTF-8 (no surrogates), no NUL (DuckDB strings end there).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(value=TEXT, name=TEXT.filter(bool))
def test_literals_identifiers_and_json_paths_read_back_as_written(value: str, name: str) -> None:
    con = duckdb.connect()

    row = con.execute(f"SELECT {lit(value)} AS {ident(name)}").fetchone()
    assert row == (value,)
    assert [d[0] for d in con.description] == [name]
    document = json.dumps({name: value, "other": 1})
    got = con.execute(f"SELECT json_extract_string({lit(document)}, {json_path(name)})").fetchone()
    assert got == (value,)


@settings(max_examples=200, deadline=None)
@given(value=TEXT)
def test_spark_literals_parse_back_as_written(value: str) -> None:
    """Spark's literal form (backslash escapes) and canonical literals transpiled to Spark."""
    for dialect in ("spark", "databricks"):
        tree = sqlglot.parse_one(
            f"SELECT {lit(value, dialect)} AS {ident('a' + value, dialect)}", read=dialect
        )
        assert tree.expressions[0].this.this == value
        assert tree.expressions[0].alias == "a" + value
    transpiled = sqlglot.parse_one(to_dialect(f"SELECT {lit(value)}", "spark"), read="spark")
    assert transpiled.expressions[0].this == value


def test_a_literal_of_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="no string literal form"):
        lit("x", "postgres")
    with pytest.raises(ValueError, match="no quoted identifier form"):
        ident("x", "postgres")


@pytest.mark.spark
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(TEXT, min_size=1, max_size=25))
def test_literals_read_back_on_spark(spark_engine: SparkEngine, values: list[str]) -> None:
    """On Spark itself: Spark-dialect literals as they are, canonical ones through to_dialect."""
    names = [f"n{i}{v}" for i, v in enumerate(values)]
    native = ", ".join(
        f"{lit(v, 'spark')} AS {ident(n, 'spark')}" for v, n in zip(values, names, strict=True)
    )
    frame = spark_engine.spark.sql(f"SELECT {native}")
    assert frame.columns == names
    assert list(frame.collect()[0]) == values
    canonical = ", ".join(f"{lit(v)} AS c{i}" for i, v in enumerate(values))
    assert spark_engine.query(f"SELECT {canonical}").to_pylist()[0] == {
        f"c{i}": v for i, v in enumerate(values)
    }
    # A value with the quote and backslash sequences sqlglot and Spark treat specially.
    tricky = "it's \\' \\\\ \\n \\u0041 ''"
    assert spark_engine.spark.sql(f"SELECT {lit(tricky, 'spark')}").collect()[0][0] == tricky


def test_in_list_matches_its_values_and_an_empty_list_matches_nothing() -> None:
    con = duckdb.connect()
    values = ["a", "it's", ""]
    assert con.execute(f"SELECT 'it''s' IN ({in_list(values)})").fetchone() == (True,)
    assert con.execute(f"SELECT 'b' IN ({in_list(values)})").fetchone() == (False,)
    assert con.execute(f"SELECT count(*) FROM range(3) WHERE 'x' IN ({in_list([])})").fetchone() == (0,)


def test_to_dialect_renames_tables_keeps_aliases_and_applies_the_spark_fixes() -> None:
    sql = "SELECT strftime(t.at, '%Y-%m-%dT%H:%M:%SZ') AS at FROM events t JOIN nodes ON true; SELECT 1"
    out = to_dialect(sql, "spark", tables={"events": "cat.graph.field_events", "nodes": "cat.graph.nodes"})
    first, second = out.split(";\n")
    tree = sqlglot.parse_one(first, read="spark")
    names = {(t.catalog, t.db, t.name, t.alias_or_name) for t in tree.find_all(sqlglot.exp.Table)}
    assert names == {("cat", "graph", "field_events", "t"), ("cat", "graph", "nodes", "nodes")}
    # Spark's date pattern, its literal letters quoted (Spark SQL escapes a quote with a backslash).
    assert r"DATE_FORMAT(t.at, 'yyyy-MM-dd\'T\'HH:mm:ss\'Z\'')" in first
    assert second == "SELECT 1"
    # The canonical dialect is left as it is, and Spark's rewrites stay off for it.
    assert "STRFTIME" in to_dialect(sql, "duckdb").upper()
