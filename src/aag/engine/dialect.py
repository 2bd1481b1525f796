"""The one place AAG's SQL changes dialect, and the one way values enter SQL text.

AAG writes SQL in a canonical dialect (DuckDB's). :func:`to_dialect` turns it into
another engine's (Spark, Databricks) with sqlglot, applying the few rewrites sqlglot does
not make by itself (:func:`fix_for_spark`) and, if asked, pointing table names at other
relations. :func:`ident`, :func:`lit` and :func:`in_list` are how identifiers and values
are put into SQL text, so quoting is written once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

#: The dialect AAG's SQL is written in; other engines transpile from it with sqlglot.
CANONICAL_DIALECT = "duckdb"

#: Dialects that take Spark's rewrites.
SPARK_DIALECTS = frozenset({"spark", "databricks"})

#: strftime/strptime tokens → Spark datetime pattern letters. Text that is not a token
#: (the ``T`` and ``Z`` of ISO 8601) is quoted, which sqlglot's own mapping does not do.
_TIME_TOKENS = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "SSSSSS"}


def ident(name: str, dialect: str = CANONICAL_DIALECT) -> str:
    """An identifier quoted for ``dialect``: double quotes (canonical) or backticks (Spark).

    The quote character is doubled inside the name.

    Raises:
        ValueError: For a dialect other than the canonical one and the Spark dialects.
    """
    if dialect == CANONICAL_DIALECT:
        return '"' + name.replace('"', '""') + '"'
    if dialect in SPARK_DIALECTS:
        return "`" + name.replace("`", "``") + "`"
    raise ValueError(f"no quoted identifier form for dialect {dialect!r}")


def lit(value: str, dialect: str = CANONICAL_DIALECT) -> str:
    """A string literal of ``dialect`` that reads back as ``value``.

    Canonical (DuckDB) literals double their quotes and take backslashes as they are;
    Spark and Databricks SQL literals escape with a backslash (there ``''`` between two
    literals would concatenate them), so backslashes are doubled first. Canonical SQL
    bound for Spark needs no such literal: :func:`to_dialect` re-escapes its literals.
    Only statements written in Spark's own dialect (DDL, setup SQL) take the Spark form.

    Raises:
        ValueError: For a dialect other than the canonical one and the Spark dialects.
    """
    if dialect == CANONICAL_DIALECT:
        return "'" + value.replace("'", "''") + "'"
    if dialect in SPARK_DIALECTS:
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return "'" + escaped.replace("${", "$\\{") + "'"
    raise ValueError(f"no string literal form for dialect {dialect!r}")


def guard_substitution(sql: str, dialect: str) -> str:
    r"""Spark SQL whose string literals cannot be changed by variable substitution.

    Spark replaces ``${name}`` in statement text with configuration values or
    environment variables (``spark.sql.variable.substitute``, on by default, also on
    Databricks), inside string literals too; a value such as ``${env:HOME}`` would not
    read back as written. Inside Spark literals an escaped ``\{`` reads as ``{``, so
    ``${`` is written ``$\{``; identifiers and the rest of the text are left alone.
    """
    if dialect not in SPARK_DIALECTS or "${" not in sql:
        return sql
    parts, pos = [], 0
    for token in sqlglot.Dialect.get_or_raise(dialect).tokenize(sql):
        if token.token_type == TokenType.STRING and "${" in sql[token.start : token.end + 1]:
            parts.append(sql[pos : token.start])
            parts.append(sql[token.start : token.end + 1].replace("${", "$\\{"))
            pos = token.end + 1
    parts.append(sql[pos:])
    return "".join(parts)


def in_list(values: Iterable[str]) -> str:
    """The values as the inside of ``IN (…)``; ``NULL`` (matching nothing) when empty."""
    return ", ".join(lit(v) for v in values) or "NULL"


def json_path(key: str) -> str:
    """A DuckDB JSON path literal selecting the top-level member ``key`` (any characters).

    A JSON Pointer (RFC 6901: ``~`` and ``/`` escaped as ``~0`` and ``~1``): DuckDB reads a
    ``$."..."`` path named ``*`` as a wildcard, a pointer names every key literally.
    """
    return lit("/" + key.replace("~", "~0").replace("/", "~1"))


def spark_time_format(fmt: str) -> str:
    """A strftime format as a Spark datetime pattern, literals quoted."""
    out, literal, i = [], "", 0
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in _TIME_TOKENS:
            if literal:
                out.append("'" + literal.replace("'", "''") + "'")
                literal = ""
            out.append(_TIME_TOKENS[token])
            i += 2
        else:
            char = fmt[i]
            if char in "-:. /":
                out.append(char)
            else:
                literal += char
            i += 1
            continue
    if literal:
        out.append("'" + literal + "'")
    return "".join(out)


def fix_for_spark(node: exp.Expression) -> exp.Expression:
    """Rewrite the few canonical functions sqlglot does not map to Spark by itself."""
    if isinstance(node, exp.TimeToStr) and isinstance(node.args.get("format"), exp.Literal):
        pattern = spark_time_format(node.args["format"].this)
        return exp.Anonymous(this="DATE_FORMAT", expressions=[node.this, exp.Literal.string(pattern)])
    if isinstance(node, exp.Anonymous) and node.name.lower() == "try_strptime":
        value, fmt = node.expressions
        return exp.Anonymous(
            this="TRY_TO_TIMESTAMP", expressions=[value, exp.Literal.string(spark_time_format(fmt.this))]
        )
    return node


def _renamed(tree: exp.Expr, tables: Mapping[str, str]) -> exp.Expr:
    for table in list(tree.find_all(exp.Table)):
        if not table.db and table.name in tables:
            table.replace(exp.to_table(tables[table.name]).as_(table.alias_or_name))
    return tree


def to_dialect(
    sql: str,
    dialect: str,
    *,
    tables: Mapping[str, str] | None = None,
    pretty: bool = False,
    fixes: bool = True,
) -> str:
    """Canonical SQL (one statement or several) in ``dialect``.

    Args:
        sql: SQL in :data:`CANONICAL_DIALECT`.
        dialect: A sqlglot dialect name (``spark``, ``databricks``, ``duckdb`` …).
        tables: Unqualified table names to point at other relations (``name`` →
            ``schema.table``); each keeps its alias (or its old name as one).
        pretty: Format over several lines.
        fixes: Apply :func:`fix_for_spark` for the Spark dialects.

    Returns:
        The SQL text; several statements are joined with ``;`` and a newline.
    """
    if tables is None:
        return _cached(sql, dialect, pretty, fixes)
    return _transpile(sql, dialect, tables, pretty, fixes)


@functools.lru_cache(maxsize=512)
def _cached(sql: str, dialect: str, pretty: bool, fixes: bool) -> str:
    return _transpile(sql, dialect, None, pretty, fixes)


def _transpile(sql: str, dialect: str, tables: Mapping[str, str] | None, pretty: bool, fixes: bool) -> str:
    out = []
    for tree in sqlglot.parse(sql, read=CANONICAL_DIALECT):
        if tree is None:
            continue
        if tables:
            tree = _renamed(tree, tables)
        if fixes and dialect in SPARK_DIALECTS:
            tree = tree.transform(fix_for_spark)
        out.append(guard_substitution(tree.sql(dialect=dialect, pretty=pretty), dialect))
    return ";\n".join(out)
