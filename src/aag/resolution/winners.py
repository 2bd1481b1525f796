"""Resolution (SPEC §4): one winning value per entity and attribute.

Among the *current* edges of all sources for an entity and a rel_type, the
winner has the latest ``updated_at``, then the highest ``confidence``, then the
lowest source priority number, then (a deterministic last resort) the lowest
source name and value id. The ordering lives in :data:`WINNER_ORDER` once.

``survivorship.csv`` may give an attribute another strategy: its sort key
(:data:`STRATEGY_KEYS`) goes before that order, and its allowed sources keep the
others' values from winning. :func:`order_by` renders the whole ordering; dbt's
``resolve_winner`` macro renders the same lists. Why a value won is
:mod:`aag.resolution.explanation`.
"""

from __future__ import annotations

import pyarrow as pa

from aag.config import SOURCE_LIST_SEPARATOR, Config
from aag.engine.base import Engine
from aag.engine.dialect import in_list
from aag.identity import SAME_AS_REL

#: Canonical customer attributes (SPEC §6), in profile column order.
CUSTOMER_ATTRIBUTES: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "street",
    "city",
    "postal_code",
    "country",
    "email_marketing_consent",
)

#: The one ordering rule; dbt's ``resolve_winner`` macro holds the same list.
WINNER_ORDER = "updated_at DESC, confidence DESC, priority ASC, source_system ASC, target_node_id ASC"

#: Per survivorship strategy, the sort key it puts before :data:`WINNER_ORDER` (``latest``
#: adds none). The columns are computed per candidate (see :data:`_RANKED`):
#: ``source_position`` is the source's place in the attribute's source_order list
#: (unlisted sources after all listed ones), ``holders`` the number of current allowed
#: records holding the same value, ``is_placeholder`` 1 for a value in
#: :data:`PLACEHOLDER_VALUES`. dbt's ``resolve_winner`` macro holds the same mapping.
STRATEGY_KEYS: dict[str, str | None] = {
    "latest": None,
    "source_order": "source_position ASC",
    "most_frequent": "holders DESC",
    "oldest": "updated_at ASC",
    "latest_non_empty": "is_placeholder ASC",
}

#: Values ``latest_non_empty`` treats as empty (compared trimmed and lower-cased). A truly
#: empty field holds no value at all (its edge ends), so ``latest`` never sees one; these
#: are the stand-ins people type instead. dbt's ``resolve_winner`` holds the same list.
PLACEHOLDER_VALUES = ("-", "--", ".", "?", "n/a", "na", "none", "null", "unknown")

#: Source position of a source missing from a source_order list (after every listed one).
UNLISTED_POSITION = 1000000

RULE_TEXT = (
    "latest updated_at (the field's own change time) wins; ties go to higher confidence, "
    "then the more trusted source (lower priority number), then source name and value id"
)


def order_by() -> str:
    """The ranking of one contest: allowed values first, the strategy's key, then the rule.

    Only one strategy applies to a contest, so the other strategies' keys are NULL there
    and do not reorder anything. NULLS LAST is spelt out because Spark sorts NULLs first
    on ascending keys.
    """
    keys = ["allowed DESC"]
    for strategy, key in STRATEGY_KEYS.items():
        if key:
            column, direction = key.split()
            keys.append(f"CASE WHEN strategy = '{strategy}' THEN {column} END {direction}")
    keys += [part.strip() for part in WINNER_ORDER.split(",")]
    return ", ".join(f"{key} NULLS LAST" for key in keys)


def _in_list(column: str, source: str) -> str:
    """Where ``source`` stands in an ``a|b|c`` list, 0 when absent.

    A string search reads the same on DuckDB and Spark and keeps the list's order.
    """
    sep = SOURCE_LIST_SEPARATOR
    return f"instr('{sep}' || {column} || '{sep}', '{sep}' || {source} || '{sep}')"


_PLACEHOLDERS_SQL = in_list(PLACEHOLDER_VALUES)

# The values of all records of one customer compete: a record's values count for the
# survivor its SAME_AS edge points at (identity), or for itself. A value of a source
# the attribute does not allow gets no rank (it cannot win) and no vote in ``holders``.
_RANKED = f"""
SELECT c.*,
       CASE WHEN allowed = 1 THEN row_number() OVER (
           PARTITION BY entity_id, rel_type ORDER BY {order_by()}) END AS rank,
       count(CASE WHEN allowed = 1 THEN 1 END) OVER (PARTITION BY entity_id, rel_type)
           AS competing_values
FROM (
    SELECT b.*, count(CASE WHEN allowed = 1 THEN 1 END) OVER (
               PARTITION BY entity_id, rel_type, target_node_id) AS holders
    FROM (
        SELECT coalesce(m.survivor, e.source_node_id) AS entity_id, e.rel_type, e.target_node_id,
               n.value, e.updated_at, e.confidence, e.source_system, e.source_event_id,
               coalesce(p.priority, 1000000) AS priority,
               coalesce(s.strategy, 'latest') AS strategy, s.source_order, s.allowed_sources,
               coalesce(nullif({_in_list("s.source_order", "e.source_system")}, 0),
                        {UNLISTED_POSITION}) AS source_position,
               CASE WHEN s.allowed_sources IS NULL
                         OR {_in_list("s.allowed_sources", "e.source_system")} > 0
                    THEN 1 ELSE 0 END AS allowed,
               CASE WHEN lower(trim(n.value)) IN ({_PLACEHOLDERS_SQL}) THEN 1 ELSE 0 END
                   AS is_placeholder
        FROM res_edges e
        JOIN res_nodes n ON n.node_id = e.target_node_id
        LEFT JOIN res_priorities p ON p.source_system = e.source_system
        LEFT JOIN res_survivorship s ON s.rel_type = e.rel_type
        LEFT JOIN (SELECT source_node_id AS member, target_node_id AS survivor FROM res_edges
                   WHERE rel_type = '{SAME_AS_REL}' AND is_current) m ON m.member = e.source_node_id
        WHERE e.is_current AND e.rel_type <> '{SAME_AS_REL}'
    ) b
) c
"""


def _register(engine: Engine, edges: pa.Table, nodes: pa.Table, config: Config) -> None:
    engine.register(
        "res_edges",
        edges.select(
            [
                "source_node_id",
                "target_node_id",
                "rel_type",
                "updated_at",
                "confidence",
                "is_current",
                "source_system",
                "source_event_id",
            ]
        ),
    )
    engine.register("res_nodes", nodes.select(["node_id", "value"]))
    engine.register("res_priorities", config.priority_table())
    engine.register("res_survivorship", config.survivorship_table())


def _release(engine: Engine, *extra: str) -> None:
    for name in (*extra, "res_edges", "res_nodes", "res_priorities", "res_survivorship"):
        engine.drop(name)


def ranked_values(engine: Engine, edges: pa.Table, nodes: pa.Table, config: Config) -> pa.Table:
    """Every current value of every entity × rel_type, ranked (rank 1 = winner).

    Args:
        engine: Engine to run on.
        edges: Relationships rows (any superset of what is needed).
        nodes: Node rows holding at least the edges' targets.
        config: Supplies source priorities and survivorship rules.

    Returns:
        Columns ``entity_id, rel_type, target_node_id, value, updated_at, confidence,
        source_system, source_event_id, priority, strategy, source_order,
        allowed_sources, source_position, allowed, is_placeholder, holders, rank,
        competing_values``. A value of a source the attribute does not allow has
        ``allowed`` 0 and no rank; ``competing_values`` counts the allowed ones.
    """
    _register(engine, edges, nodes, config)
    try:
        return engine.query(_RANKED + " ORDER BY entity_id, rel_type, rank")
    finally:
        _release(engine)


def _winner_column(rel_type: str | None, column: str, sql_type: str) -> str:
    if rel_type is None:  # no source maps this attribute: the column exists, always NULL
        return f"CAST(NULL AS {sql_type})"
    return f"max(CASE WHEN r.rel_type = '{rel_type}' THEN r.{column} END)"


def profile_sql(config: Config, version: int) -> str:
    """SQL pivoting the winners (``res_ranked``) into one row per ``res_customers`` row."""
    rel_of = config.attribute_rel_types()
    cols = ["c.node_id AS customer_id"]
    for attr in CUSTOMER_ATTRIBUTES:
        rel = rel_of.get(attr)
        cols.append(f"{_winner_column(rel, 'value', 'VARCHAR')} AS {attr}")
        if version >= 2:
            cols.append(f"{_winner_column(rel, 'source_system', 'VARCHAR')} AS {attr}_source")
            cols.append(f"{_winner_column(rel, 'updated_at', 'TIMESTAMPTZ')} AS {attr}_updated_at")
    if version >= 3:
        # The survivorship rule that ranked each winner (NULL where none won), after v2's columns.
        for attr in CUSTOMER_ATTRIBUTES:
            cols.append(f"{_winner_column(rel_of.get(attr), 'strategy', 'VARCHAR')} AS {attr}_rule")
    return f"""
SELECT {", ".join(cols)}
FROM res_customers c
LEFT JOIN res_ranked r ON r.entity_id = c.node_id AND r.rank = 1
GROUP BY c.node_id
ORDER BY customer_id
"""


def profiles(
    engine: Engine,
    edges: pa.Table,
    nodes: pa.Table,
    customers: pa.Table,
    config: Config,
    version: int = 2,
) -> pa.Table:
    """Wide profiles of the given customers, one row each.

    v1 holds the values; v2 adds ``<attr>_source`` and ``<attr>_updated_at``; v3 adds
    ``<attr>_rule``, the survivorship strategy that ranked the winner.

    Args:
        engine: Engine to run on.
        edges: Relationships rows of (at least) these customers.
        nodes: Node rows holding at least the edges' targets.
        customers: Table with a ``node_id`` column: the customers to return, one row each.
        config: Registry (attribute → rel_type) and priorities.
        version: Profile version, 1, 2 or 3.
    """
    _register(engine, edges, nodes, config)
    engine.register("res_customers", customers.select(["node_id"]))
    try:
        engine.view("res_ranked", _RANKED)
        return engine.query(profile_sql(config, version))
    finally:
        _release(engine, "res_ranked", "res_customers")
