"""Which graph rows a read wants, said once and rendered for every store.

The read commands (profile, explain, lookup, neighbourhood, identity map, monitor …)
ask a :class:`~aag.graph.store.GraphStore` for edges or nodes matching an
:class:`EdgeSelection` or a :class:`NodeSelection`. A selection is data, not SQL text: each
store renders it the way it reads (a SQL condition built as a sqlglot expression, so
values are always quoted by the library, or an Arrow filter for in-memory tables), and
so every store answers the same question the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp


def _ids(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(sorted({str(v) for v in values}))


@dataclass(frozen=True, init=False)
class EdgeSelection:
    """Relationships rows wanted by a read; every given condition must hold.

    Attributes:
        sources: ``source_node_id`` is one of these.
        targets: ``target_node_id`` is one of these.
        ends: ``source_node_id`` or ``target_node_id`` is one of these.
        rel_types: ``rel_type`` is one of these.
        current: Only current versions (True), only ended ones (False), or both (None).
    """

    sources: tuple[str, ...] | None
    targets: tuple[str, ...] | None
    ends: tuple[str, ...] | None
    rel_types: tuple[str, ...] | None
    current: bool | None

    def __init__(
        self,
        *,
        sources: Iterable[str] | None = None,
        targets: Iterable[str] | None = None,
        ends: Iterable[str] | None = None,
        rel_types: Iterable[str] | None = None,
        current: bool | None = None,
    ) -> None:
        object.__setattr__(self, "sources", _ids(sources))
        object.__setattr__(self, "targets", _ids(targets))
        object.__setattr__(self, "ends", _ids(ends))
        object.__setattr__(self, "rel_types", _ids(rel_types))
        object.__setattr__(self, "current", current)

    def condition(self) -> exp.Expr:
        """The selection as a SQL condition over ``relationships`` columns."""
        parts = [
            _within("source_node_id", self.sources),
            _within("target_node_id", self.targets),
            _within("rel_type", self.rel_types),
        ]
        if self.ends is not None:
            parts.append(exp.or_(_within("source_node_id", self.ends), _within("target_node_id", self.ends)))
        if self.current is not None:
            flag = exp.column("is_current")
            parts.append(flag if self.current else exp.not_(flag))
        return _all(parts)

    def mask(self, table: pa.Table) -> pa.Array | pa.ChunkedArray:
        """The selection as a boolean mask over an in-memory ``relationships`` table."""
        keep = pa.array([True] * table.num_rows, pa.bool_())
        for column, values in (
            ("source_node_id", self.sources),
            ("target_node_id", self.targets),
            ("rel_type", self.rel_types),
        ):
            if values is not None:
                keep = pc.and_(keep, pc.is_in(table.column(column), pa.array(values, pa.string())))
        if self.ends is not None:
            wanted = pa.array(self.ends, pa.string())
            either = pc.or_(
                pc.is_in(table.column("source_node_id"), wanted),
                pc.is_in(table.column("target_node_id"), wanted),
            )
            keep = pc.and_(keep, either)
        if self.current is not None:
            flag = pc.fill_null(table.column("is_current"), False)
            keep = pc.and_(keep, flag if self.current else pc.invert(flag))
        return keep


@dataclass(frozen=True, init=False)
class NodeSelection:
    """Node rows wanted by a read; every given condition must hold.

    Attributes:
        ids: ``node_id`` is one of these.
        node_types: ``node_type`` is one of these.
        with_value: Only value nodes (True), only entity nodes (False), or both (None).
    """

    ids: tuple[str, ...] | None
    node_types: tuple[str, ...] | None
    with_value: bool | None

    def __init__(
        self,
        *,
        ids: Iterable[str] | None = None,
        node_types: Iterable[str] | None = None,
        with_value: bool | None = None,
    ) -> None:
        object.__setattr__(self, "ids", _ids(ids))
        object.__setattr__(self, "node_types", _ids(node_types))
        object.__setattr__(self, "with_value", with_value)

    def condition(self) -> exp.Expr:
        """The selection as a SQL condition over ``nodes`` columns."""
        parts = [_within("node_id", self.ids), _within("node_type", self.node_types)]
        if self.with_value is not None:
            held = exp.Is(this=exp.column("value"), expression=exp.null())
            parts.append(exp.not_(held) if self.with_value else held)
        return _all(parts)

    def mask(self, table: pa.Table) -> pa.Array | pa.ChunkedArray:
        """The selection as a boolean mask over an in-memory ``nodes`` table."""
        keep = pa.array([True] * table.num_rows, pa.bool_())
        for column, values in (("node_id", self.ids), ("node_type", self.node_types)):
            if values is not None:
                keep = pc.and_(keep, pc.is_in(table.column(column), pa.array(values, pa.string())))
        if self.with_value is not None:
            held = pc.is_valid(table.column("value"))
            keep = pc.and_(keep, held if self.with_value else pc.invert(held))
        return keep


def _within(column: str, values: tuple[str, ...] | None) -> exp.Expr | None:
    if values is None:
        return None
    if not values:
        return exp.false()
    return exp.column(column).isin(*[exp.Literal.string(v) for v in values])


def _all(parts: list[exp.Expr | None]) -> exp.Expr:
    kept = [p for p in parts if p is not None]
    return exp.and_(*kept) if kept else exp.true()


def within_sql(column: str, values: Iterable[str], dialect: str) -> str:
    """``column IN (values…)`` as SQL text of ``dialect`` (``FALSE`` for no values)."""
    cond = _within(column, _ids(values))
    return render(cond if cond is not None else exp.false(), dialect)


def render(condition: exp.Expr, dialect: str) -> str:
    """A condition as SQL text of ``dialect`` (sqlglot quotes every value)."""
    return condition.sql(dialect=dialect)


def columns_sql(columns: Iterable[str] | None, dialect: str) -> str:
    """A select list of plain column names (``*`` when none are given)."""
    if columns is None:
        return "*"
    return ", ".join(exp.column(c).sql(dialect=dialect) for c in columns)
