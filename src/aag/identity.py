"""Identity (SPEC §8): which source records are one customer.

Every source record has its own entity node, and its attribute edges hang from it,
so each record keeps its own field history (two CRM duplicates never interleave
their events under one edge key). Records become one customer through the values
they share on *identifier* edges (``identity_rules.csv``: normalised email, a record's
own id, a ``same_as`` field naming another record). The records connected that way
form a cluster; its **survivor** is the record seen first in its source (earliest
``HAS_SOURCE_RECORD`` time, then lowest id), and the survivor's id is the customer id.

The cluster is stored in the same two tables: every other member has one current
``member -[SAME_AS]-> survivor`` edge (``source_system = 'aag'``). These edges are
derived state, recomputed for the clusters a batch touches: when a batch links two
customers, the younger survivor gets a ``SAME_AS`` edge to the older one (the merge
is recorded in the graph and the old customer id keeps resolving), and every
attribute edge of both stays where it was, history included.

A value node links nothing when more than ``max_records_per_source`` records of one
source system point at it, or when it is on ``identity_blocklist.csv``: a shared
placeholder must not glue strangers together.

Identity has memory: clusters are computed over every identifier value a record has
held, current or closed, so a customer who changes their e-mail in one system stays one
customer. A link ends only when a record is deleted in its source (its
``HAS_SOURCE_RECORD`` edge is closed: it links nothing), when the over-sharing guard or
the blocklist rules the value out (the guard counts every record that ever held the
value), or when an operator keeps two records apart (:mod:`aag.overrides`). Because
clusters are a function of the full identifier history and the operator decisions, any
order of batches gives the same clusters and survivors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from aag.config import Config
from aag.engine.base import Engine
from aag.ids import value_node_id
from aag.normalize import normalise
from aag.overrides import PairRule, read_decisions, rules_in_force, split_apart
from aag.sources.base import SOURCE_RECORD_REL, lit
from aag.store import GraphStore

#: rel_type of the derived cluster edges (member → survivor).
SAME_AS_REL = "SAME_AS"
#: ``source_system`` of edges AAG derives itself.
IDENTITY_SYSTEM = "aag"

#: Engine tables holding the identity change (left for the commit, dropped on release).
ID_KEYS = "identity_out_keys"
ID_ROWS = "identity_out_rows"

_WORK = (
    "id_edges",
    "id_batch",
    "id_was",
    "id_cand",
    "id_pre",
    "id_follow",
    "id_same",
    "id_ents",
    "id_nodes",
    "id_typed",
    "id_blocked",
    "id_scan",
    "id_new",
    "id_links",
    "id_rank",
    "id_lab",
    "id_lab_next",
    "id_nodelab",
    "id_desired",
    "id_link",
    "id_apart",
    "id_dead",
    "id_fix",
)


@dataclass(frozen=True)
class IdentitySettings:
    """The identity rules that apply to one entity type."""

    entity_type: str
    #: rel_type → max records per source system sharing one target.
    limits: dict[str, int]
    blocked_node_ids: tuple[str, ...]
    #: Operator decisions in force between records of this entity type.
    pair_rules: tuple[PairRule, ...] = ()

    @classmethod
    def from_config(
        cls, config: Config, entity_type: str, pair_rules: tuple[PairRule, ...] = ()
    ) -> IdentitySettings | None:
        """Settings for ``entity_type``, or None when no rule applies to it.

        ``pair_rules`` are the operator decisions in force (:func:`aag.overrides.rules_in_force`).
        """
        limits = {
            r.rel_type: r.max_records_per_source
            for r in config.identity_rules
            if r.entity_type == entity_type
        }
        if not limits:
            return None
        blocked = []
        for row in config.blocklist:
            value = normalise(config.normaliser_of(row.node_type), row.value)
            if value:
                blocked.append(value_node_id(row.node_type, value))
        return cls(
            entity_type=entity_type,
            limits=limits,
            blocked_node_ids=tuple(sorted(set(blocked))),
            pair_rules=tuple(pair_rules),
        )

    def pairs(self, action: str) -> pa.Table:
        """Entity id pairs (``a``, ``b``) of the decisions with this action."""
        rows = [(r.entity_a, r.entity_b) for r in self.pair_rules if r.action == action]
        return pa.table(
            {
                "a": pa.array([a for a, _ in rows], pa.string()),
                "b": pa.array([b for _, b in rows], pa.string()),
            }
        )

    @property
    def rel_types(self) -> list[str]:
        """Identifier rel_types (sorted)."""
        return sorted(self.limits)

    @property
    def scanned_rel_types(self) -> list[str]:
        """What the closure reads: identifiers, the record edge (first-seen time), SAME_AS."""
        return sorted({*self.limits, SOURCE_RECORD_REL, SAME_AS_REL})


def identity_settings(config: Config, entity_type: str, overrides: Path | None) -> IdentitySettings | None:
    """The identity rules of ``entity_type`` with the operator decisions in ``overrides`` (a CSV)."""
    rules = rules_in_force(config, read_decisions(overrides)) if overrides is not None else []
    return IdentitySettings.from_config(
        config, entity_type, tuple(r for r in rules if r.entity_type == entity_type)
    )


@dataclass
class IdentityResult:
    """What identity changes for one batch (rows left in the engine)."""

    keys: int
    rows: int
    #: Entities whose cluster was recomputed.
    closure: int
    #: Records that now point at a different survivor (or at none).
    relinked: int


def _in(values: list[str]) -> str:
    return ", ".join(lit(v) for v in values) or "NULL"


def _flat(source: str, settings: IdentitySettings, replaced: str | None) -> str:
    """Identifier and record rows of ``source`` (every version), and its current SAME_AS rows.

    ``cur`` says whether a row is the current version: a record whose record edge has no
    current version was deleted in its source and links nothing.

    With ``replaced``, stored rows of keys the batch replaces are left out: their rows
    after the batch come from the batch's own output.
    """
    keep = (
        f"""AND NOT EXISTS (SELECT 1 FROM {replaced} k WHERE k.source_node_id = s.source_node_id
                  AND k.rel_type = s.rel_type AND k.source_system = s.source_system)"""
        if replaced
        else ""
    )
    return f"""
SELECT s.source_node_id AS src, s.rel_type AS rel, s.source_system AS sys,
       s.target_node_id AS tgt, s.updated_at, s.is_current AS cur
FROM {source} s
WHERE s.rel_type IN ({_in(settings.scanned_rel_types)})
  AND (s.is_current OR s.rel_type <> {lit(SAME_AS_REL)}) {keep}
"""


def _add_edges(engine: Engine, sql: str) -> None:
    """Append rows to ``id_edges`` (identifier edges) and ``id_same`` (SAME_AS edges)."""
    engine.materialize("id_new", sql)
    engine.materialize(
        "id_next",
        f"SELECT * FROM id_edges UNION SELECT * FROM id_new WHERE rel <> {lit(SAME_AS_REL)}",
    )
    engine.materialize("id_edges", "SELECT * FROM id_next")
    engine.materialize(
        "id_next",
        f"SELECT * FROM id_same UNION SELECT src, tgt, updated_at FROM id_new WHERE rel = {lit(SAME_AS_REL)}",
    )
    engine.materialize("id_same", "SELECT * FROM id_next")
    engine.drop("id_next")
    engine.drop("id_new")


def _scan(
    engine: Engine, store: GraphStore, column: str, ids_sql: str, settings: IdentitySettings, replaced: str
) -> int:
    """Read the store's rows (every version) whose ``column`` is in ``ids_sql`` into the work set."""
    ids = engine.query(ids_sql)
    if ids.num_rows == 0:
        return 0
    engine.register_scan(
        "id_scan", store.scan_edge_versions(column, ids.rename_columns(["id"]), settings.scanned_rel_types)
    )
    try:
        engine.materialize("id_scan_rows", f"SELECT * FROM id_scan WHERE {column} IN ({ids_sql})")
    finally:
        engine.drop("id_scan")
    _add_edges(engine, _flat("id_scan_rows", settings, replaced))
    if column == "target_node_id":
        # The same nodes' edges as they were before the batch: a node the batch made
        # over-shared (or usable) changes the clusters of every record pointing at it.
        engine.materialize(
            "id_next",
            "SELECT * FROM id_pre UNION SELECT src, rel, sys, tgt, updated_at, cur FROM "
            f"({_flat('id_scan_rows', settings, None)}) f",
        )
        engine.materialize("id_pre", "SELECT * FROM id_next")
        engine.drop("id_next")
    engine.drop("id_scan_rows")
    return int(ids.num_rows)


def _usable_sql(settings: IdentitySettings, edges: str = "id_edges") -> str:
    """Identifier nodes that link records: fully known, shared, not over-shared, not blocked.

    ``edges`` is ``id_edges`` (after the batch) or ``id_pre`` (before it).
    """
    limit = " ".join(f"WHEN {lit(rel)} THEN {n}" for rel, n in sorted(settings.limits.items()))
    return f"""
SELECT tgt FROM (
    SELECT tgt, sys, count(DISTINCT src) AS n, min(CASE rel {limit} END) AS lim
    FROM {edges}
    WHERE rel IN ({_in(settings.rel_types)}) AND src IN (SELECT id FROM id_typed)
      AND tgt IN (SELECT id FROM id_nodes) AND tgt NOT IN (SELECT id FROM id_blocked)
    GROUP BY tgt, sys
) c
GROUP BY tgt
HAVING sum(n) >= 2 AND max(CASE WHEN n > lim THEN 1 ELSE 0 END) = 0
"""


def resolve_identity(
    engine: Engine,
    store: GraphStore,
    settings: IdentitySettings,
    batch_entities: str,
    batch_rows: str,
    replaced_keys: str,
    existing_rows: str,
    new_nodes: str,
    touched: str | None = None,
) -> IdentityResult:
    """Recompute the clusters a batch touches; leave the SAME_AS change in the engine.

    Args:
        engine: Engine holding the batch.
        store: The graph as it was before the batch.
        settings: Identity rules of the batch's entity type.
        batch_entities: Engine table (``source_node_id``) of the batch's records.
        batch_rows: Engine table of the relationships rows the batch writes.
        replaced_keys: Engine table of the keys whose stored rows the batch replaces.
        existing_rows: Engine table of the stored rows of ``batch_entities``.
        new_nodes: Engine table (``node_id``) of the batch's nodes the graph does not hold.
        touched: Engine table (``source_node_id``) of further records whose clusters must be
            recomputed although the batch changes none of their identifiers (an operator
            decision about them changed).

    Returns:
        Counts; :data:`ID_KEYS` (keys to replace) and :data:`ID_ROWS` (relationships rows
        to write) stay in the engine until :func:`release_identity`.
    """
    try:
        return _resolve(
            engine,
            store,
            settings,
            batch_entities,
            batch_rows,
            replaced_keys,
            existing_rows,
            new_nodes,
            touched,
        )
    except BaseException:
        release_identity(engine)
        raise


def _resolve(
    engine: Engine,
    store: GraphStore,
    settings: IdentitySettings,
    batch_entities: str,
    batch_rows: str,
    replaced_keys: str,
    existing_rows: str,
    new_nodes: str,
    touched: str | None,
) -> IdentityResult:
    engine.register("id_link", settings.pairs("link"))
    engine.register("id_apart", settings.pairs("unlink"))
    engine.register("id_blocked", pa.table({"id": pa.array(settings.blocked_node_ids, pa.string())}))
    # Records of other entity types never join a cluster, whatever they share.
    engine.register_scan("id_store_typed", store.scan_node_ids([settings.entity_type]))
    engine.materialize(
        "id_typed",
        f"SELECT node_id AS id FROM id_store_typed UNION SELECT source_node_id FROM {batch_entities}",
    )
    engine.drop("id_store_typed")
    empty = (
        "SELECT CAST(NULL AS VARCHAR) AS src, CAST(NULL AS VARCHAR) AS rel, CAST(NULL AS VARCHAR) AS sys, "
        "CAST(NULL AS VARCHAR) AS tgt, CAST(NULL AS TIMESTAMPTZ) AS updated_at, CAST(NULL AS BOOLEAN) AS cur "
        "WHERE FALSE"
    )
    engine.materialize("id_edges", empty)
    engine.materialize("id_same", "SELECT src, tgt, updated_at FROM id_edges")
    engine.materialize("id_nodes", "SELECT src AS id FROM id_edges")
    engine.materialize("id_pre", "SELECT * FROM id_edges")
    # Only identifier edges the batch changes can change a cluster: the current rows of
    # the keys it writes, and what those keys pointed at before. A batch that changes
    # no identifier (a phone update, an unchanged re-sync) costs nothing here.
    engine.materialize("id_batch", _flat(batch_rows, settings, None))
    engine.materialize(
        "id_was",
        f"""
SELECT s.source_node_id AS src, s.rel_type AS rel, s.target_node_id AS tgt
FROM {existing_rows} s
JOIN {replaced_keys} k ON k.source_node_id = s.source_node_id AND k.rel_type = s.rel_type
                       AND k.source_system = s.source_system
WHERE s.is_current AND s.rel_type IN ({_in(settings.scanned_rel_types)})
""",
    )
    seeds = "SELECT src AS id FROM id_batch UNION SELECT src FROM id_was"
    if touched is not None:
        seeds += f" UNION SELECT source_node_id FROM {touched}"
    engine.materialize("id_ents", seeds)
    if not engine.query("SELECT count(*) AS n FROM id_ents").column(0)[0].as_py():
        return _nothing(engine)
    # Most identifiers of a batch can link nothing: a node new to the graph that one
    # record points at. Only nodes shared inside the batch, nodes the graph already
    # had, and the nodes the changed keys pointed at before enter the closure (an
    # initial load of a million records then costs a group-by, not a graph walk).
    # "Shared" is over-approximated, which only admits a node to the closure that then
    # links nothing: rows per 64-bit hash of the node (a collision, or one record pointing
    # at a node twice, counts as two). Grouping integers instead of counting distinct
    # records per node id took this step from 0.64 s to 0.25 s per 500k-record chunk.
    rels = _in(settings.rel_types)
    engine.materialize(
        "id_cand",
        f"""
SELECT tgt AS id FROM id_batch
WHERE rel IN ({rels}) AND hash(tgt) IN (
    SELECT h FROM (SELECT hash(tgt) AS h FROM id_batch WHERE rel IN ({rels})) t
    GROUP BY h HAVING count(*) > 1)
UNION
SELECT tgt FROM id_batch b
WHERE rel IN ({rels}) AND NOT EXISTS (SELECT 1 FROM {new_nodes} x WHERE x.node_id = b.tgt)
UNION
SELECT tgt FROM id_was WHERE rel IN ({rels})
""",
    )
    # The batch's own rows, then the stored rows of the changed records that it leaves.
    _add_edges(engine, "SELECT * FROM id_batch WHERE tgt IN (SELECT id FROM id_cand)")
    _add_edges(
        engine,
        f"SELECT * FROM ({_flat(existing_rows, settings, replaced_keys)}) e "
        "WHERE src IN (SELECT id FROM id_ents)",
    )
    # Breadth-first closure: identifier nodes → every record pointing at them → their
    # identifiers and cluster mates, until nothing new turns up. Over-shared nodes are
    # counted but not followed. A record new to the graph has no stored cluster mates.
    # (Ids are never NULL, so NOT EXISTS says what NOT IN would, and every engine turns it
    # into a hash anti-join; Spark plans a NOT IN over a large table as a nested loop.)
    fresh_ents = (
        f"SELECT id FROM id_ents e WHERE NOT EXISTS (SELECT 1 FROM {new_nodes} x WHERE x.node_id = e.id)"
    )
    rels = _in(settings.rel_types)
    while True:
        fresh_nodes = (
            f"SELECT DISTINCT e.tgt AS id FROM id_edges e WHERE e.rel IN ({rels}) "
            "AND e.src IN (SELECT id FROM id_ents) AND e.src IN (SELECT id FROM id_typed) "
            "AND NOT EXISTS (SELECT 1 FROM id_nodes k WHERE k.id = e.tgt) "
            "AND e.tgt NOT IN (SELECT id FROM id_blocked)"
        )
        engine.materialize("id_fresh", f"{fresh_nodes} UNION {fresh_ents}")
        _scan(engine, store, "target_node_id", "SELECT id FROM id_fresh", settings, replaced_keys)
        engine.materialize("id_next", "SELECT id FROM id_nodes UNION SELECT id FROM id_fresh")
        engine.materialize("id_nodes", "SELECT id FROM id_next")
        # Followed: nodes that link records after the batch, or did before it.
        engine.materialize("id_follow", f"{_usable_sql(settings)} UNION {_usable_sql(settings, 'id_pre')}")
        engine.materialize(
            "id_grow",
            """
SELECT id FROM (
    SELECT src AS id FROM id_edges WHERE tgt IN (SELECT tgt FROM id_follow)
    UNION SELECT src FROM id_pre WHERE tgt IN (SELECT tgt FROM id_follow)
    UNION SELECT src FROM id_same UNION SELECT tgt FROM id_same
    UNION SELECT b FROM id_link WHERE a IN (SELECT id FROM id_ents)
    UNION SELECT a FROM id_link WHERE b IN (SELECT id FROM id_ents)
) g
WHERE id IN (SELECT id FROM id_typed) AND NOT EXISTS (SELECT 1 FROM id_ents k WHERE k.id = g.id)
""",
        )
        grown = _scan(engine, store, "source_node_id", "SELECT id FROM id_grow", settings, replaced_keys)
        engine.materialize("id_next", "SELECT id FROM id_ents UNION SELECT id FROM id_grow")
        engine.materialize("id_ents", "SELECT id FROM id_next")
        if grown == 0:
            break
        fresh_ents = "SELECT id FROM id_grow"
    for name in ("id_fresh", "id_grow", "id_next"):
        engine.drop(name)
    _label(engine, settings)
    now_same = f"""
SELECT s.src AS source_node_id, {lit(SAME_AS_REL)} AS rel_type, {lit(IDENTITY_SYSTEM)} AS source_system,
       s.tgt AS old_survivor, s.updated_at AS old_linked_at, d.survivor, d.linked_at
FROM id_same s LEFT JOIN id_desired d ON d.member = s.src
"""
    # A link is rewritten when its survivor or its time changes (a late event can move a
    # record's first-seen time): the edge must equal the one an in-order run writes.
    engine.materialize(
        ID_KEYS,
        f"SELECT source_node_id, rel_type, source_system FROM ({now_same}) c "
        "WHERE survivor IS NULL OR survivor <> old_survivor OR linked_at <> old_linked_at",
    )
    engine.materialize(
        ID_ROWS,
        f"""
SELECT d.member AS source_node_id, d.survivor AS target_node_id, {lit(SAME_AS_REL)} AS rel_type,
       d.linked_at AS updated_at, CAST(1.0 AS FLOAT) AS confidence, TRUE AS is_current,
       {lit(IDENTITY_SYSTEM)} AS source_system,
       concat('identity:', d.survivor) AS source_event_id,
       MAP(['derived_by'], ['identity']) AS properties
FROM id_desired d
WHERE NOT EXISTS (SELECT 1 FROM id_same s WHERE s.src = d.member AND s.tgt = d.survivor
                  AND s.updated_at = d.linked_at)
""",
    )
    counts = engine.query(
        f"SELECT (SELECT count(*) FROM {ID_KEYS}) AS k, (SELECT count(*) FROM {ID_ROWS}) AS r, "
        "(SELECT count(*) FROM id_ents) AS c"
    ).to_pylist()[0]
    for name in _WORK:
        engine.drop(name)
    return IdentityResult(
        keys=int(counts["k"]),
        rows=int(counts["r"]),
        closure=int(counts["c"]),
        relinked=int(counts["k"]) + int(counts["r"]),
    )


def _nothing(engine: Engine) -> IdentityResult:
    """Empty outputs: the batch changed no identifier edge."""
    engine.materialize(
        ID_KEYS,
        "SELECT CAST(NULL AS VARCHAR) AS source_node_id, CAST(NULL AS VARCHAR) AS rel_type, "
        "CAST(NULL AS VARCHAR) AS source_system WHERE FALSE",
    )
    engine.materialize(
        ID_ROWS,
        "SELECT CAST(NULL AS VARCHAR) AS source_node_id, CAST(NULL AS VARCHAR) AS target_node_id, "
        "CAST(NULL AS VARCHAR) AS rel_type, CAST(NULL AS TIMESTAMPTZ) AS updated_at, "
        "CAST(NULL AS FLOAT) AS confidence, CAST(NULL AS BOOLEAN) AS is_current, "
        "CAST(NULL AS VARCHAR) AS source_system, CAST(NULL AS VARCHAR) AS source_event_id, "
        "CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS properties WHERE FALSE",
    )
    for name in _WORK:
        engine.drop(name)
    return IdentityResult(keys=0, rows=0, closure=0, relinked=0)


def _label(engine: Engine, settings: IdentitySettings) -> None:
    """Connected components of the linked records (``id_desired``: member → survivor).

    Label propagation over record–hub links, a hub being a usable identifier value (any
    version) or an operator link: each record starts with its rank (first seen, then id)
    and takes the smallest label among records sharing a hub, until nothing changes; the
    number of rounds is the clusters' diameter, small for customer data. Records deleted
    in their source link nothing. A cluster that holds a pair an operator keeps apart is
    then split by :func:`aag.overrides.split_apart`.
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
    WHERE rel IN ({_in(settings.rel_types)}) AND tgt IN ({_usable_sql(settings)})
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
        engine.materialize("id_lab", "SELECT * FROM id_lab_next")
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
    engine.materialize("id_lab", "SELECT * FROM id_lab_next")
    engine.drop("id_fix")


def release_identity(engine: Engine) -> None:
    """Drop the identity change and its work tables."""
    for name in (
        ID_KEYS,
        ID_ROWS,
        *_WORK,
        "id_fresh",
        "id_grow",
        "id_next",
        "id_scan_rows",
        "id_store_typed",
    ):
        engine.drop(name)
