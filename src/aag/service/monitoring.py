"""Monitoring (``aag monitor``): freshness, open conflicts, completeness, quarantine.

The checks are SQL over four relations any engine can provide: ``relationships``
and ``nodes`` (silver), ``batches`` (the ledger) and ``quarantine``. They are
written once in the canonical dialect; :func:`databricks_sql` transpiles them with
sqlglot into the files under ``databricks/monitoring/`` (a test keeps those files
equal to the transpiled text, so the two never drift).

Customers are identity clusters: a record with a current ``SAME_AS`` edge counts
for its survivor (see :mod:`aag.identity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from aag.engine.dialect import in_list, to_dialect
from aag.identity import SAME_AS_REL
from aag.resolution import CUSTOMER_ATTRIBUTES

#: Current edges of customer records with the customer each record belongs to and the
#: canonical attribute (from the registry seed) of the edge.
_CUSTOMER_EDGES = f"""
SELECT coalesce(m.target_node_id, e.source_node_id) AS customer_id, e.source_node_id AS record_id,
       a.attribute, e.target_node_id, e.source_system, e.updated_at
FROM relationships e
JOIN nodes c ON c.node_id = e.source_node_id AND c.node_type = 'customer'
JOIN (SELECT DISTINCT attribute, rel_type FROM attribute_name_registry
      WHERE role = 'attribute' AND attribute IN ({{attributes}})) a ON a.rel_type = e.rel_type
LEFT JOIN relationships m
       ON m.source_node_id = e.source_node_id AND m.rel_type = '{SAME_AS_REL}' AND m.is_current
WHERE e.is_current
"""  # noqa: S608 - module constants; attributes filled in via in_list

#: Freshness per source system: the newest field-event time in the graph, the newest
#: landing, and how far behind each is at the time of the check.
FRESHNESS = """
SELECT b.source_system,
       e.latest_event_at,
       b.latest_landing_at,
       b.batches,
       b.rows_landed,
       date_diff('second', e.latest_event_at, CAST({now} AS TIMESTAMPTZ)) AS event_lag_seconds,
       date_diff('second', b.latest_landing_at, CAST({now} AS TIMESTAMPTZ)) AS landing_lag_seconds
FROM (
    SELECT source_system, max(finished_at) AS latest_landing_at, count(*) AS batches,
           CAST(sum(rows_landed) AS BIGINT) AS rows_landed
    FROM batches WHERE status = 'committed' GROUP BY source_system
) b
LEFT JOIN (
    SELECT source_system, max(updated_at) AS latest_event_at FROM relationships GROUP BY source_system
) e ON e.source_system = b.source_system
ORDER BY b.source_system
"""

#: Open conflicts: customer × attribute whose current values from different sources
#: disagree, counted per pair of disagreeing sources.
CONFLICTS = f"""
WITH ce AS ({_CUSTOMER_EDGES}),
pairs AS (
    SELECT DISTINCT a.customer_id, a.attribute, a.source_system AS source_a, b.source_system AS source_b
    FROM ce a JOIN ce b
      ON a.customer_id = b.customer_id AND a.attribute = b.attribute
     AND a.source_system < b.source_system AND a.target_node_id <> b.target_node_id
)
SELECT attribute, source_a, source_b, count(*) AS customers
FROM pairs
GROUP BY attribute, source_a, source_b
ORDER BY customers DESC, attribute, source_a, source_b
"""  # noqa: S608 - module constants; attributes filled in via in_list

#: Completeness: share of customers holding each attribute, overall and per source.
COMPLETENESS = f"""
WITH ce AS ({_CUSTOMER_EDGES}),
customers AS (
    SELECT count(*) AS n FROM nodes c
    WHERE c.node_type = 'customer' AND NOT EXISTS (
        SELECT 1 FROM relationships m
        WHERE m.source_node_id = c.node_id AND m.rel_type = '{SAME_AS_REL}' AND m.is_current)
),
held AS (
    SELECT attribute, 'any' AS source_system, count(DISTINCT customer_id) AS customers
    FROM ce GROUP BY attribute
    UNION ALL
    SELECT attribute, source_system, count(DISTINCT customer_id) FROM ce GROUP BY attribute, source_system
)
SELECT h.attribute, h.source_system, h.customers, c.n AS of_customers,
       round(CAST(h.customers AS DOUBLE) / nullif(c.n, 0), 4) AS share
FROM held h CROSS JOIN customers c
ORDER BY h.attribute, CASE WHEN h.source_system = 'any' THEN 0 ELSE 1 END, h.source_system
"""  # noqa: S608 - module constants; attributes filled in via in_list

#: Quarantine: rows and single fields set aside, per source object and reason kind.
QUARANTINED = """
SELECT source_system, source_object, level, count(*) AS entries,
       count(DISTINCT batch_id) AS batches, max(quarantined_at) AS latest_at
FROM quarantine
GROUP BY source_system, source_object, level
ORDER BY source_system, source_object, level
"""

#: Check name → SQL (``{attributes}`` and ``{now}`` are filled in by :func:`checks_sql`).
CHECKS = {
    "freshness": FRESHNESS,
    "conflicts": CONFLICTS,
    "completeness": COMPLETENESS,
    "quarantine": QUARANTINED,
}


def checks_sql(now: str = "current_timestamp") -> dict[str, str]:
    """The checks as canonical SQL.

    They read ``relationships``, ``nodes``, ``batches``, ``quarantine`` and
    ``attribute_name_registry``.

    Args:
        now: SQL for the time the check runs at.
    """
    attributes = in_list(CUSTOMER_ATTRIBUTES)
    return {
        name: sql.replace("{attributes}", attributes).replace("{now}", now) for name, sql in CHECKS.items()
    }


#: Where the relations live on Databricks (Unity Catalog schemas of ``databricks/setup``).
DATABRICKS_TABLES = {
    "relationships": "graph.relationships",
    "nodes": "graph.nodes",
    "batches": "graph.batches",
    "quarantine": "bronze.quarantine",
    "attribute_name_registry": "config.attribute_name_registry",
}


def databricks_sql() -> dict[str, str]:
    """The checks in Databricks SQL over Unity Catalog tables.

    The catalog is a named parameter (``:catalog``), so each table is referenced as
    ``IDENTIFIER(:catalog || '.graph.relationships')`` (Databricks Runtime 13.3+ and
    Spark 3.5+ understand both).
    """
    out = {}
    marker = "aag_catalog_marker"
    tables = {name: f"{marker}.{qualified}" for name, qualified in DATABRICKS_TABLES.items()}
    for name, sql in checks_sql().items():
        text = to_dialect(sql, "databricks", tables=tables, pretty=True)
        for qualified in DATABRICKS_TABLES.values():
            text = text.replace(f"{marker}.{qualified}", f"IDENTIFIER(:catalog || '.{qualified}')")
        out[name] = text + ";\n"
    return out


#: The relations as dbt sees them (``dbt/models/sources.yml`` and the registry seed).
DBT_RELATIONS = {
    "relationships": "{{ source('silver', 'relationships') }}",
    "nodes": "{{ source('silver', 'nodes') }}",
    "batches": "{{ source('ledger', 'batches') }}",
    "quarantine": "{{ source('landing', 'quarantine') }}",
    "attribute_name_registry": "{{ ref('attribute_name_registry') }}",
}


def _with_relations(sql: str, dialect: str, relations: dict[str, str]) -> str:
    """The check in ``dialect`` with each relation replaced by ``relations[name]`` (text)."""
    marker = "aag_relation_marker"
    tables = {name: f"{marker}.{name}" for name in relations}
    text = to_dialect(sql, dialect, tables=tables, pretty=True)
    for name, replacement in relations.items():
        text = text.replace(f"{marker}.{name}", replacement)
    return text


def dbt_analyses() -> dict[str, str]:
    """The checks as dbt analyses (``dbt/analyses/monitoring_<check>.sql``), both targets.

    One file per check holds the DuckDB text for the ``local`` target and the Databricks
    text for ``databricks``, over the project's sources, so ``dbt compile`` (or ``dbt
    show``) gives a dbt user the same queries ``aag monitor`` runs.
    """
    out = {}
    for name, sql in checks_sql().items():
        local = _with_relations(sql, "duckdb", DBT_RELATIONS)
        remote = _with_relations(sql, "databricks", DBT_RELATIONS)
        out[name] = (
            f"-- AAG monitoring check '{name}' (generated from aag/service/monitoring.py by\n"
            "-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).\n"
            "{% if target.type == 'databricks' %}\n"
            f"{remote}\n"
            "{% else %}\n"
            f"{local}\n"
            "{% endif %}\n"
        )
    return out


def write_dbt_analyses(folder: Path) -> list[Path]:
    """Write :func:`dbt_analyses` into ``folder`` (``dbt/analyses``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in dbt_analyses().items():
        path = folder / f"monitoring_{name}.sql"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@dataclass
class MonitorReport:
    """Results of every check (Arrow tables), and when they ran."""

    checked_at: datetime
    freshness: pa.Table
    conflicts: pa.Table
    completeness: pa.Table
    quarantine: pa.Table

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "checked_at": self.checked_at,
            "freshness": self.freshness.to_pylist(),
            "conflicts": self.conflicts.to_pylist(),
            "completeness": self.completeness.to_pylist(),
            "quarantine": self.quarantine.to_pylist(),
        }


def write_databricks(folder: Path) -> list[Path]:
    """Write the Databricks SQL of every check (``<check>.sql``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, sql in databricks_sql().items():
        path = folder / f"{name}.sql"
        header = (
            f"-- AAG monitoring check '{name}' (generated from aag/service/monitoring.py by\n"
            "-- `python -m aag.service.monitoring` from the repository root; do not edit by hand).\n"
            "-- Parameter :catalog is the Unity Catalog catalog of databricks/setup.\n"
        )
        path.write_text(header + sql, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m aag.service.monitoring",
        description="Write the monitoring checks as Databricks SQL and dbt analyses.",
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="repository root (default: .)")
    root = parser.parse_args().root
    for written_path in [
        *write_databricks(root / "databricks" / "monitoring"),
        *write_dbt_analyses(root / "dbt" / "analyses"),
    ]:
        print(written_path)
