"""Clusters: which identifier values link records, and the connected components they form.

Works on the engine tables :mod:`aag.identity.closure` fills (``id_edges``, ``id_ents``,
…); the result is ``id_desired`` (member → survivor).
"""

from __future__ import annotations

import pyarrow as pa

from aag.engine.base import Engine
from aag.engine.dialect import in_list, lit
from aag.identity.overrides import split_apart
from aag.identity.settings import IdentitySettings
from aag.sources.base import SOURCE_RECORD_REL


def _usable_sql(settings: IdentitySettings, edges: str = "id_edges") -> str:
    """Identifier nodes that link records: fully known, shared, not over-shared, not blocked.

    ``edges`` is ``id_edges`` (after the batch) or ``id_pre`` (before it).
    """
    limit = " ".join(f"WHEN {lit(rel)} THEN {n}" for rel, n in sorted(settings.limits.items()))
    return f"""
SELECT tgt FROM (
    SELECT tgt, sys, count(DISTINCT src) AS n, min(CASE rel {limit} END) AS lim
    FROM {edges}
    WHERE rel IN ({in_list(settings.rel_types)}) AND src IN (SELECT id FROM id_typed)
      AND tgt IN (SELECT id FROM id_nodes) AND tgt NOT IN (SELECT id FROM id_blocked)
    GROUP BY tgt, sys
) c
GROUP BY tgt
HAVING sum(n) >= 2 AND max(CASE WHEN n > lim THEN 1 ELSE 0 END) = 0
"""


def _label(engine: Engine, settings: IdentitySettings) -> None:
    """Connected components of the linked records (``id_desired``: member → survivor).

    Label propagation over record–hub links, a hub being a usable identifier value (any
    version) or an operator link: each record starts with its rank (first seen, then id)
    and takes the smallest label among records sharing a hub, until nothing changes; the
    number of rounds is the clusters' diameter, small for customer data. Records deleted
    in their source link nothing. A cluster that holds a pair an operator keeps apart is
    then split by :func:`aag.identity.overrides.split_apart`.
    """
    # Every version of the record edges: the batch's own (not all of them are closure
    # candidates: a record new to the graph that is deleted within the batch) and the rest.
    engine.materialize(
        "id_dead",
        f"""
SELECT src AS id FROM (
    SELECT src, cur FROM id_edges WHERE rel = {lit(SOURCE_RECORD_REL)}
    UNION ALL SELECT src, cur FROM id_batch WHERE rel = {lit(SOURCE_RECORD_REL)}
) r
GROUP BY src HAVING max(CASE WHEN cur THEN 1 ELSE 0 END) = 0
""",
    )
    engine.materialize(
        "id_links",
        f"""
SELECT DISTINCT src, tgt FROM (
    SELECT src, tgt FROM id_edges
    WHERE rel IN ({in_list(settings.rel_types)}) AND tgt IN ({_usable_sql(settings)})
    UNION ALL SELECT a, concat('link:', a, '|', b) FROM id_link
    UNION ALL SELECT b, concat('link:', a, '|', b) FROM id_link
) k
WHERE src IN (SELECT id FROM id_ents) AND src IN (SELECT id FROM id_typed)
  AND NOT EXISTS (SELECT 1 FROM id_dead d WHERE d.id = k.src)
""",
    )
    engine.materialize(
        "id_rank",
        f"""
SELECT e.id, min(r.updated_at) AS first_seen,
       row_number() OVER (ORDER BY min(r.updated_at) NULLS LAST, e.id) AS rnk
FROM (SELECT DISTINCT src AS id FROM id_links) e
LEFT JOIN (SELECT src, updated_at FROM id_edges WHERE rel = {lit(SOURCE_RECORD_REL)}
           UNION ALL
           SELECT src, updated_at FROM id_batch WHERE rel = {lit(SOURCE_RECORD_REL)}) r ON r.src = e.id
GROUP BY e.id
""",
    )
    engine.materialize("id_lab", "SELECT id, rnk AS label FROM id_rank")
    while True:
        engine.materialize(
            "id_nodelab",
            "SELECT k.tgt, min(l.label) AS label FROM id_links k JOIN id_lab l ON l.id = k.src "
            "GROUP BY k.tgt",
        )
        engine.materialize(
            "id_lab_next",
            "SELECT k.src AS id, min(n.label) AS label FROM id_links k JOIN id_nodelab n ON n.tgt = k.tgt "
            "GROUP BY k.src",
        )
        changed = (
            engine.query(
                "SELECT count(*) AS n FROM id_lab_next x JOIN id_lab l ON l.id = x.id "
                "WHERE x.label <> l.label"
            )
            .column(0)[0]
            .as_py()
        )
        engine.rename("id_lab_next", "id_lab")
        if not changed:
            break
    if settings.pairs("unlink").num_rows:
        _keep_apart(engine)
    engine.materialize(
        "id_desired",
        """
SELECT m.id AS member, s.id AS survivor, m.first_seen AS member_seen, s.first_seen AS survivor_seen,
       CASE WHEN m.first_seen IS NULL THEN s.first_seen
            WHEN s.first_seen IS NULL THEN m.first_seen
            ELSE greatest(m.first_seen, s.first_seen) END AS linked_at
FROM id_lab l
JOIN id_rank m ON m.id = l.id
JOIN id_rank s ON s.rnk = l.label
WHERE m.id <> s.id
""",
    )


def _keep_apart(engine: Engine) -> None:
    """Split the clusters that hold a pair an operator keeps apart (rewrites ``id_lab``)."""
    clashes = engine.query(
        "SELECT DISTINCT la.label FROM id_apart u JOIN id_lab la ON la.id = u.a "
        "JOIN id_lab lb ON lb.id = u.b WHERE la.label = lb.label"
    )
    if clashes.num_rows == 0:
        return
    engine.register("id_fix", clashes.rename_columns(["label"]))
    try:
        part = engine.query(
            "SELECT k.src, k.tgt, r.rnk FROM id_links k JOIN id_lab l ON l.id = k.src "
            "JOIN id_rank r ON r.id = k.src WHERE l.label IN (SELECT label FROM id_fix)"
        ).to_pylist()
        apart_rows = engine.query("SELECT a, b FROM id_apart").to_pylist()
    finally:
        engine.drop("id_fix")
    rank = {str(r["src"]): int(r["rnk"]) for r in part}
    apart = {(min(r["a"], r["b"]), max(r["a"], r["b"])) for r in apart_rows}
    labels = split_apart([(str(r["src"]), str(r["tgt"])) for r in part], rank, apart)
    engine.register(
        "id_fix",
        pa.table(
            {
                "id": pa.array(list(labels), pa.string()),
                "label": pa.array(list(labels.values()), pa.int64()),
            }
        ),
    )
    engine.materialize(
        "id_lab_next",
        "SELECT l.id, coalesce(f.label, l.label) AS label FROM id_lab l LEFT JOIN id_fix f ON f.id = l.id",
    )
    engine.rename("id_lab_next", "id_lab")
    engine.drop("id_fix")
