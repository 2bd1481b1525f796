"""The one SQL toolkit: quoting that DuckDB reads back exactly, and the one transpiler."""

from __future__ import annotations

import json

import duckdb
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from aag.engine.dialect import ident, in_list, json_path, lit, to_dialect

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
