"""Gold build benchmark: ``aag build`` on silver tables for 100k and 1M customers.

The silver tables are generated directly (DuckDB SQL streamed into Delta through
deltalake, in the layout ``aag init`` creates) instead of ingesting files, in the
shape of the five-source world (``aag.world``): each customer has records in
Salesforce (85 %), SAP (35 %), Shopify (60 %), Zendesk (35 %) and Segment (45 %),
linked by ``SAME_AS`` edges to the survivor; every record holds the attributes its
system holds, with competing values across sources and older versions for one field
in five; one customer in twenty works at a company that owns two assets.

For each size, in a fresh process: generate the warehouse (not timed), then time
``aag build`` (``AagService.build``: ``dbt build`` on the local target, i.e. seeds,
every model and every data test, then the Parquet exports), and once more with
``--select`` of the models only (``dbt run`` equivalent; tests excluded) to show the split.

The figures go into ``benchmarks/RESULTS.md`` (the section of the same sizes is replaced).

Usage::

    .venv/bin/python benchmarks/bench_gold.py --customers 100000 1000000
    .venv/bin/python benchmarks/bench_gold.py --customers 10000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import write_section  # noqa: E402

#: system, object, entity id prefix, presence (share of customers with a record there)
SYSTEMS = (
    ("salesforce", "Contact", 0.85),
    ("sap", "KNA1", 0.35),
    ("shopify", "customers", 0.60),
    ("zendesk", "users", 0.35),
    ("segment", "identifies", 0.45),
)
#: attribute, rel_type, node type, systems holding it, number of distinct values
ATTRIBUTES = (
    ("email", "HAS_EMAIL", "email", "salesforce sap shopify zendesk segment", 0),
    ("phone", "HAS_PHONE", "phone", "salesforce sap shopify zendesk segment", 0),
    ("first_name", "HAS_FIRST_NAME", "first_name", "salesforce shopify segment", 400),
    ("last_name", "HAS_LAST_NAME", "last_name", "salesforce shopify segment", 2000),
    ("full_name", "HAS_FULL_NAME", "full_name", "sap zendesk", 0),
    ("street", "HAS_STREET", "street", "salesforce sap shopify", 50000),
    ("city", "HAS_CITY", "city", "salesforce sap shopify", 3000),
    ("postal_code", "HAS_POSTAL_CODE", "postal_code", "salesforce sap shopify", 8000),
    ("country", "HAS_COUNTRY", "country", "salesforce sap shopify", 40),
    ("email_marketing_consent", "HAS_EMAIL_MARKETING_CONSENT", "consent", "salesforce shopify", 2),
)


def _uuid(expr: str) -> str:
    """A UUID-shaped id (like aag.ids' derived entity ids) from md5 of a SQL expression."""
    h = f"md5({expr})"
    return (
        f"(substr({h},1,8)||'-'||substr({h},9,4)||'-8'||substr({h},14,3)||'-a'||"
        f"substr({h},18,3)||'-'||substr({h},21,12))"
    )


def generate(warehouse: Path, customers: int) -> dict[str, int]:
    """Write the silver tables of a generated warehouse; returns row counts."""
    import duckdb

    from aag.graph.warehouse import Warehouse
    from aag.model import NODES, RELATIONSHIPS

    wh = Warehouse(str(warehouse))
    wh.init()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    presence = " UNION ALL ".join(
        f"SELECT {n} AS sys_no, '{s}' AS system, '{o}' AS object, {p} AS presence"
        for n, (s, o, p) in enumerate(SYSTEMS)
    )
    holds = " UNION ALL ".join(
        f"SELECT '{a}' AS attribute, '{r}' AS rel_type, '{t}' AS node_type, '{s}' AS system, "
        f"{k} AS distinct_values"
        for a, r, t, systems, k in ATTRIBUTES
        for s in systems.split()
    )
    con.execute(f"CREATE TABLE systems AS {presence}")
    con.execute(f"CREATE TABLE holds AS {holds}")
    # Records: a customer is in a system with the system's presence; Salesforce otherwise.
    con.execute(
        f"""
CREATE TABLE records AS
WITH people AS (SELECT range AS i FROM range({customers})),
present AS (
    SELECT p.i, s.sys_no, s.system, s.object
    FROM people p CROSS JOIN systems s
    WHERE hash(p.i, s.system) % 1000 < s.presence * 1000
),
fallback AS (
    SELECT i, 0 AS sys_no, 'salesforce' AS system, 'Contact' AS object FROM people
    WHERE i NOT IN (SELECT i FROM present)
),
everyone AS (SELECT * FROM present UNION ALL SELECT * FROM fallback)
SELECT i, sys_no, system, object,
       system || '-' || i AS record_id,
       {_uuid("'customer|' || system || '|' || object || '|' || i")} AS entity_id,
       TIMESTAMPTZ '2023-01-01' + to_seconds(CAST(hash(i) % 31536000 AS BIGINT) + sys_no * 86400)
           AS first_seen,
       row_number() OVER (PARTITION BY i ORDER BY sys_no) AS member_no
FROM everyone
"""
    )
    con.execute(
        """
CREATE TABLE survivors AS SELECT i, entity_id AS survivor FROM records WHERE member_no = 1
"""
    )
    # Attribute values: the customer's value in most records, a record's own value in some,
    # and an older version (not current) for one field in five.
    con.execute(
        """
CREATE TABLE attr_edges AS
WITH base AS (
    SELECT r.i, r.system, r.entity_id, r.record_id, h.attribute, h.rel_type, h.node_type,
           h.distinct_values, hash(r.i, r.system, h.attribute) AS x
    FROM records r JOIN holds h ON h.system = r.system
),
valued AS (
    SELECT *,
        CASE
            WHEN attribute = 'email_marketing_consent'
                THEN CASE WHEN x % 3 = 0 THEN 'false' ELSE 'true' END
            WHEN attribute = 'email' THEN 'person' || i || CASE WHEN x % 10 = 0 THEN '.old' ELSE '' END
                || '@example.com'
            WHEN attribute = 'phone'
                THEN '+4930' || lpad(CAST((i * 7 + CASE WHEN x % 4 = 0 THEN 1 ELSE 0 END) % 100000000
                    AS VARCHAR), 8, '0')
            WHEN attribute = 'full_name' THEN 'Person ' || i
            WHEN x % 5 = 0 THEN attribute || '-' || ((i + 1) % distinct_values)
            ELSE attribute || '-' || (i % distinct_values)
        END AS value,
        TIMESTAMPTZ '2024-01-01' + to_seconds(CAST(x % 63072000 AS BIGINT)) AS updated_at
    FROM base
)
SELECT entity_id AS source_node_id, rel_type, system AS source_system, node_type, value, updated_at,
       TRUE AS is_current, attribute, record_id
FROM valued
UNION ALL
SELECT entity_id, rel_type, system, node_type,
       CASE WHEN attribute = 'email_marketing_consent'
            THEN CASE WHEN value = 'true' THEN 'false' ELSE 'true' END
            ELSE value || '-before' END,
       updated_at - INTERVAL 400 DAY, FALSE, attribute, record_id
FROM valued WHERE x % 5 = 1
"""
    )
    companies = max(1, customers // 40)
    con.execute(
        f"""
CREATE TABLE firms AS
SELECT range AS c, {_uuid("'company|salesforce|Account|' || range")} AS company_id,
       {_uuid("'asset|salesforce|Asset|' || range || 'a'")} AS asset_a,
       {_uuid("'asset|salesforce|Asset|' || range || 'b'")} AS asset_b
FROM range({companies})
"""
    )
    version_ts = "TIMESTAMPTZ '2024-06-01'"
    props = "MAP {'source_field': 'Field', 'batch_id': 'bench'}"
    closed_props = (
        "MAP {'source_field': 'Field', 'batch_id': 'bench', 'closed_by': 'change', "
        "'closed_by_event': 'bench', 'valid_to': strftime(updated_at + INTERVAL 400 DAY, "
        "'%Y-%m-%dT%H:%M:%S.%fZ')}"
    )
    value_id = "sha256(node_type || ':' || value)"
    relationships = f"""
SELECT source_node_id, {value_id} AS target_node_id, rel_type, updated_at, CAST(1.0 AS FLOAT) AS confidence,
       is_current, source_system,
       source_system || ':' || record_id || ':' || attribute || ':' || CAST(epoch(updated_at) AS BIGINT)
           AS source_event_id,
       CASE WHEN is_current THEN {props} ELSE {closed_props} END AS properties
FROM attr_edges
UNION ALL
SELECT entity_id, sha256('source_record:' || system || ':' || object || ':' || record_id),
       'HAS_SOURCE_RECORD', first_seen, CAST(1.0 AS FLOAT), TRUE, system, 'bench:' || record_id, {props}
FROM records
UNION ALL
SELECT r.entity_id, s.survivor, 'SAME_AS', r.first_seen, CAST(1.0 AS FLOAT), TRUE, 'aag',
       'identity:' || r.record_id, MAP {{'member_first_seen': 'x', 'survivor_first_seen': 'y'}}
FROM records r JOIN survivors s ON s.i = r.i WHERE r.member_no > 1
UNION ALL
SELECT r.entity_id, f.company_id, 'WORKS_AT', {version_ts}, CAST(1.0 AS FLOAT), TRUE, 'salesforce',
       'works:' || r.record_id, {props}
FROM records r JOIN firms f ON f.c = (r.i // 20) % {companies}
WHERE r.system = 'salesforce' AND r.i % 20 = 0
UNION ALL
SELECT a.asset, f.company_id, 'OWNED_BY', {version_ts}, CAST(1.0 AS FLOAT), TRUE, 'salesforce',
       'owned:' || a.asset, {props}
FROM firms f, LATERAL (SELECT unnest([f.asset_a, f.asset_b]) AS asset) a
UNION ALL
SELECT e.entity, sha256(e.node_type || ':' || e.value), e.rel_type, {version_ts}, CAST(1.0 AS FLOAT),
       TRUE, 'salesforce', 'firm:' || e.entity || ':' || e.rel_type, {props}
FROM (
    SELECT company_id AS entity, 'HAS_COMPANY_NAME' AS rel_type, 'company_name' AS node_type,
           'Company ' || c AS value FROM firms
    UNION ALL SELECT asset_a, 'HAS_ASSET_NAME', 'asset_name', 'Press' FROM firms
    UNION ALL SELECT asset_b, 'HAS_ASSET_NAME', 'asset_name', 'Robot arm' FROM firms
    UNION ALL SELECT asset_a, 'HAS_SERIAL_NUMBER', 'serial_number', 'PR-' || c FROM firms
    UNION ALL SELECT asset_b, 'HAS_SERIAL_NUMBER', 'serial_number', 'RA-' || c FROM firms
    UNION ALL SELECT asset_a, 'HAS_ASSET_STATUS', 'asset_status', 'Installed' FROM firms
    UNION ALL SELECT asset_b, 'HAS_ASSET_STATUS', 'asset_status', 'Installed' FROM firms
) e
"""
    created = f"{version_ts}"
    nodes = f"""
SELECT DISTINCT {value_id} AS node_id, node_type, value, sha256(value) AS checksum,
       {created} AS created_at, CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS properties
FROM (
    SELECT node_type, value FROM attr_edges
    UNION ALL SELECT 'company_name', 'Company ' || c FROM firms
    UNION ALL SELECT 'asset_name', 'Press' UNION ALL SELECT 'asset_name', 'Robot arm'
    UNION ALL SELECT 'serial_number', 'PR-' || c FROM firms
    UNION ALL SELECT 'serial_number', 'RA-' || c FROM firms
    UNION ALL SELECT 'asset_status', 'Installed'
    UNION ALL SELECT 'source_record', system || ':' || object || ':' || record_id FROM records
)
UNION ALL
SELECT entity_id, 'customer', NULL, NULL, first_seen,
       MAP {{'source_system': system, 'source_object': object, 'source_record_id': record_id}}
FROM records
UNION ALL
SELECT company_id, 'company', NULL, NULL, {created},
       MAP {{'source_system': 'salesforce', 'source_object': 'Account',
            'source_record_id': CAST(c AS VARCHAR)}}
FROM firms
UNION ALL
SELECT asset, 'asset', NULL, NULL, {created},
       MAP {{'source_system': 'salesforce', 'source_object': 'Asset', 'source_record_id': asset}}
FROM firms, LATERAL (SELECT unnest([asset_a, asset_b]) AS asset)
"""
    counts = {}
    for name, sql, schema, uri in (
        ("relationships", relationships, RELATIONSHIPS, wh.graph.relationships_uri),
        ("nodes", nodes, NODES, wh.graph.nodes_uri),
    ):
        reader = con.sql(sql).to_arrow_reader(batch_size=256 * 1024)
        wh.io.append(uri, reader.cast(schema))
        counts[name] = int(wh.io.open(uri).count())
    counts["records"] = int(con.sql("SELECT count(*) FROM records").fetchall()[0][0])
    con.close()
    return counts


BATCH_ID = "bench-1pct"


def change_batch(warehouse: Path) -> dict[str, int]:
    """Apply a realistic 1% change batch to a generated warehouse, the way ingestion writes it.

    1% of the Salesforce records (by a hash of their id) get a new e-mail and phone; one
    in ten of those also loses its street (a removal: the current version is closed,
    none replaces it); and 0.05% of the customers are merged pairwise (every record of
    the second customer gets a SAME_AS edge to the first one's survivor). The new rows
    of every touched edge key (its old versions, the closed one, the new current one)
    replace the key's rows in one MERGE through ``DeltaIO.replace_keys``, the store's
    own commit path, and new value nodes are appended, as ``aag ingest`` does.
    """
    import duckdb

    from aag.dbt_plugin import attach_silver
    from aag.graph.delta import join
    from aag.graph.warehouse import Warehouse
    from aag.model import NODES, RELATIONSHIPS

    wh = Warehouse(str(warehouse))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    attach_silver(con, join(wh.uri, "silver"))
    batch_ts = "TIMESTAMPTZ '2026-02-01'"
    iso = "'%Y-%m-%dT%H:%M:%S.%fZ'"
    con.execute(
        """
CREATE TABLE changed_records AS
SELECT DISTINCT source_node_id AS record FROM silver.relationships
WHERE rel_type = 'HAS_SOURCE_RECORD' AND source_system = 'salesforce' AND hash(source_node_id) % 100 = 0
"""
    )
    # Value changes (e-mail, phone) and removals (street), per edge key.
    con.execute(
        """
CREATE TABLE touched AS
SELECT source_node_id, rel_type, source_system,
       CASE WHEN rel_type = 'HAS_STREET' THEN NULL
            WHEN rel_type = 'HAS_EMAIL' THEN 'new-' || left(md5(source_node_id), 12) || '@example.com'
            ELSE '+4940' || lpad(CAST(hash(source_node_id) % 100000000 AS VARCHAR), 8, '0') END AS new_value,
       CASE WHEN rel_type = 'HAS_EMAIL' THEN 'email' WHEN rel_type = 'HAS_PHONE' THEN 'phone' END
           AS node_type
FROM silver.relationships
WHERE is_current AND source_system = 'salesforce'
  AND source_node_id IN (SELECT record FROM changed_records)
  AND (rel_type IN ('HAS_EMAIL', 'HAS_PHONE')
       OR (rel_type = 'HAS_STREET' AND hash(source_node_id) % 1000 < 100))
"""
    )
    # Identity merges: pairs of survivors; the second one's cluster joins the first.
    con.execute(
        """
CREATE TABLE survivors AS
SELECT n.node_id, row_number() OVER (ORDER BY n.node_id) AS k
FROM silver.nodes n
WHERE n.node_type = 'customer' AND hash(n.node_id) % 2000 = 7
  AND n.node_id NOT IN (SELECT source_node_id FROM silver.relationships WHERE rel_type = 'SAME_AS')
"""
    )
    con.execute(
        """
CREATE TABLE merges AS
SELECT b.node_id AS loser, a.node_id AS winner
FROM survivors a JOIN survivors b ON b.k = a.k + 1 WHERE a.k % 2 = 1
"""
    )
    con.execute(
        """
CREATE TABLE moved AS
SELECT loser AS record, winner FROM merges
UNION ALL
SELECT r.source_node_id, m.winner FROM silver.relationships r JOIN merges m ON r.target_node_id = m.loser
WHERE r.rel_type = 'SAME_AS' AND r.is_current
"""
    )
    keys = """
SELECT source_node_id, rel_type, source_system FROM touched
UNION ALL SELECT record, 'SAME_AS', 'aag' FROM moved
"""
    con.execute(f"CREATE TABLE keys AS {keys}")
    new_event = "'bench-1pct:' || r.source_node_id || ':' || r.rel_type"
    # Every stored version of a touched key is kept; the current one is closed.
    rows = f"""
SELECT r.source_node_id, r.target_node_id, r.rel_type, r.updated_at, r.confidence,
       FALSE AS is_current, r.source_system, r.source_event_id,
       CASE WHEN r.is_current
            THEN MAP {{'source_field': 'Field', 'batch_id': r.properties['batch_id'],
                      'valid_to': strftime({batch_ts}, {iso}),
                      'closed_by': CASE WHEN t.source_node_id IS NOT NULL AND t.new_value IS NULL
                                        THEN 'removal' ELSE 'change' END,
                      'closed_by_event': {new_event}}}
            ELSE r.properties END AS properties
FROM silver.relationships r
SEMI JOIN keys k USING (source_node_id, rel_type, source_system)
LEFT JOIN touched t USING (source_node_id, rel_type, source_system)
"""
    new_rows = f"""
SELECT source_node_id, sha256(node_type || ':' || new_value) AS target_node_id, rel_type,
       {batch_ts} AS updated_at, CAST(1.0 AS FLOAT) AS confidence, TRUE AS is_current, source_system,
       'bench-1pct:' || source_node_id || ':' || rel_type AS source_event_id,
       MAP {{'source_field': 'Field', 'batch_id': '{BATCH_ID}'}} AS properties
FROM touched WHERE new_value IS NOT NULL
UNION ALL
SELECT record, winner, 'SAME_AS', {batch_ts}, CAST(1.0 AS FLOAT), TRUE, 'aag',
       'identity:bench-1pct:' || record, MAP {{'member_first_seen': 'x', 'survivor_first_seen': 'y'}}
FROM moved
"""
    edge_rows = con.sql(f"{rows} UNION ALL {new_rows}").to_arrow_table().cast(RELATIONSHIPS)
    key_table = con.sql("SELECT * FROM keys").to_arrow_table()
    merged = int(con.sql("SELECT count(*) FROM merges").fetchall()[0][0])
    nodes = (
        con.sql(
            f"""
SELECT DISTINCT sha256(node_type || ':' || new_value) AS node_id, node_type, new_value AS value,
       sha256(new_value) AS checksum, {batch_ts} AS created_at,
       CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS properties
FROM touched WHERE new_value IS NOT NULL
"""
        )
        .to_arrow_table()
        .cast(NODES)
    )
    con.close()
    meta = {"aag.batch_id": BATCH_ID}
    wh.io.append(wh.graph.nodes_uri, nodes, meta)
    wh.io.replace_keys(wh.graph.relationships_uri, key_table, edge_rows, meta)
    return {
        "changed_records": len(set(key_table.column("source_node_id").to_pylist())),
        "edge_keys_replaced": key_table.num_rows,
        "edge_rows_written": edge_rows.num_rows,
        "value_nodes": nodes.num_rows,
        "merged_customers": merged,
    }


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def phase(name: str, customers: int, warehouse: Path, out: Path) -> None:
    """One measured step in its own process (its own peak RSS): see ``worker``."""
    from aag.service import AagService

    figures: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    started = time.perf_counter()
    if name == "generate":
        figures["counts"] = generate(warehouse, customers)
    elif name == "batch":
        figures["batch"] = change_batch(warehouse)
    else:
        svc = AagService(str(warehouse))
        report = svc.build(full_refresh=name == "full-after")
        figures["report"] = report.as_dict()
        # The slowest dbt nodes of this build, for the hand-written breakdown in RESULTS.md.
        results = warehouse / "gold" / "dbt" / "target" / "run_results.json"
        nodes = json.loads(results.read_text())["results"]
        figures["slowest_nodes"] = [
            (n["unique_id"], round(n["execution_time"], 2))
            for n in sorted(nodes, key=lambda n: -n["execution_time"])[:10]
        ]
        figures["node_seconds"] = round(sum(n["execution_time"] for n in nodes), 2)
    figures["seconds"] = time.perf_counter() - started
    figures["peak_rss_gb"] = _rss_gb()
    if name == "full-after":
        # The incremental build's exports, kept aside, against this full rebuild's.
        import pyarrow.parquet as pq

        from aag import gold

        kept = warehouse.parent / "incremental-exports"
        figures["identical_to_incremental"] = {
            model: pq.read_table(kept / f"{model}.parquet").equals(
                pq.read_table(gold.gold_file(AagService(str(warehouse)).warehouse, model))
            )
            for model in gold.GOLD_MODELS
        }
    out.write_text(json.dumps(figures, default=str))


def worker(customers: int, out: Path) -> None:
    """Generate, full build, 1% batch, incremental build, full rebuild: each in a fresh process."""
    root = Path(tempfile.mkdtemp(prefix="aag-bench-gold-"))
    warehouse = root / "wh"
    figures: dict[str, Any] = {"customers": customers}
    try:
        for name in ("generate", "full", "batch", "incremental", "full-after"):
            part = root / f"{name}-{customers}.json"
            subprocess.run(
                [
                    *(sys.executable, __file__, "--phase", name, "--customers", str(customers)),
                    *("--warehouse", str(warehouse), "--out", str(part)),
                ],
                check=True,
            )
            figures[name] = json.loads(part.read_text())
            print(f"  {customers:,}: {name} {figures[name]['seconds']:.1f} s", flush=True)
            if "slowest_nodes" in figures[name]:
                print(f"    dbt node time {figures[name]['node_seconds']} s; slowest:", flush=True)
                for node, seconds in figures[name]["slowest_nodes"]:
                    print(f"    {seconds:6.2f} {node}", flush=True)
            if name == "incremental":
                from aag import gold
                from aag.graph.warehouse import Warehouse

                kept = root / "incremental-exports"
                kept.mkdir()
                built = Warehouse(str(warehouse))
                for model in gold.GOLD_MODELS:
                    shutil.copyfile(gold.gold_file(built, model), kept / f"{model}.parquet")
        out.write_text(json.dumps(figures, default=str))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def markdown(runs: list[dict[str, Any]], commit: str, sizes_key: str) -> str:
    """The RESULTS.md section."""
    import dbt.version
    import deltalake
    import duckdb

    from aag.gold.project import memory_limit

    def row(label: str, fmt: str, key: str | Callable[[dict[str, Any]], object]) -> str:
        cells = []
        for f in runs:
            value = key(f) if callable(key) else f[key]
            cells.append(format(value, fmt))
        return f"| {label} | " + " | ".join(cells) + " |"

    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    head = " | ".join(f"{f['customers']:,} customers" for f in runs)
    lines = [
        f"<!-- bench_gold {sizes_key} -->",
        f"## Gold build — {sizes_key.replace('customers=', '').replace(',', ', ')} customers "
        f"({datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ})",
        "",
        f"Machine: {cores} vCPU, {memory:.1f} GiB RAM, {platform.platform()}; Python "
        f"{platform.python_version()}, dbt-core {dbt.version.__version__}, duckdb {duckdb.__version__}, "
        f"deltalake {deltalake.__version__}. Local warehouse in a temp dir; each size in a fresh process. "
        f"DuckDB memory limit of the builds: {memory_limit()} (`AAG_DUCKDB_MEMORY_LIMIT`).",
        "",
        f"Code: commit {commit}. Command: `.venv/bin/python benchmarks/bench_gold.py "
        f"--customers {' '.join(str(f['customers']) for f in runs)}`",
        "",
        "Silver generated directly (five-source shape, see the script's docstring); `aag build` = "
        "`dbt build --target local` (seeds, models, every data test) + Parquet export of the "
        "5 gold models + publish. Each step below ran in its own process, one after the other "
        "on the same warehouse: first build (full), a 1% change batch written with the store's "
        "MERGE, `aag build` again (incremental), then `aag build --full-refresh`. "
        "Target: ≤ 20 s at 1M customers.",
        "",
        f"| figure | {head} |",
        "|---|" + "---|" * len(runs),
        row("source records (customer entities)", ",", lambda f: f["generate"]["counts"]["records"]),
        row("silver relationships rows", ",", lambda f: f["generate"]["counts"]["relationships"]),
        row("silver nodes rows", ",", lambda f: f["generate"]["counts"]["nodes"]),
        row("generation seconds (not part of any build)", ".1f", lambda f: f["generate"]["seconds"]),
        row("**full build** (first `aag build`): seconds", ".1f", lambda f: f["full"]["seconds"]),
        row(
            "　of which dbt (seeds, models, every data test)",
            ".1f",
            lambda f: f["full"]["report"]["dbt_seconds"],
        ),
        row("　of which Parquet export and publish", ".1f", lambda f: f["full"]["report"]["export_seconds"]),
        # dbt runs inside the build's process (dbtRunner), so its peak is the whole build's.
        row("　peak RSS of the build process, dbt included (GB)", ".2f", lambda f: f["full"]["peak_rss_gb"]),
        row("　1-min load average at start", ".1f", lambda f: f["full"]["load_before"]),
        row("1% change batch: records changed", ",", lambda f: f["batch"]["batch"]["changed_records"]),
        row("　edge keys replaced (one MERGE)", ",", lambda f: f["batch"]["batch"]["edge_keys_replaced"]),
        row("　customers merged into another", ",", lambda f: f["batch"]["batch"]["merged_customers"]),
        row("　seconds to apply (not part of any build)", ".1f", lambda f: f["batch"]["seconds"]),
        row("**incremental build** after the batch: seconds", ".1f", lambda f: f["incremental"]["seconds"]),
        row("　of which dbt", ".1f", lambda f: f["incremental"]["report"]["dbt_seconds"]),
        row(
            "　of which Parquet export and publish",
            ".1f",
            lambda f: f["incremental"]["report"]["export_seconds"],
        ),
        row(
            "　changed edge rows read from the change feed",
            ",",
            lambda f: f["incremental"]["report"]["changed_rows"],
        ),
        row("　customers re-resolved", ",", lambda f: f["incremental"]["report"]["affected_customers"]),
        row("　peak RSS (GB)", ".2f", lambda f: f["incremental"]["peak_rss_gb"]),
        row("　1-min load average at start", ".1f", lambda f: f["incremental"]["load_before"]),
        row(
            "**full rebuild** after the batch (`--full-refresh`): seconds",
            ".1f",
            lambda f: f["full-after"]["seconds"],
        ),
        row("　peak RSS (GB)", ".2f", lambda f: f["full-after"]["peak_rss_gb"]),
        row("　1-min load average at start", ".1f", lambda f: f["full-after"]["load_before"]),
        row(
            "incremental exports identical to the full rebuild's (5 models)",
            "",
            lambda f: "yes" if all(f["full-after"]["identical_to_incremental"].values()) else "**NO**",
        ),
        row(
            "customer_profile_v2 rows",
            ",",
            lambda f: f["incremental"]["report"]["models"]["customer_profile_v2"],
        ),
        row(
            "customer_identity rows", ",", lambda f: f["incremental"]["report"]["models"]["customer_identity"]
        ),
        row("company_assets rows", ",", lambda f: f["incremental"]["report"]["models"]["company_assets"]),
        row("consent_log rows", ",", lambda f: f["incremental"]["report"]["models"]["consent_log"]),
    ]
    target = [f for f in runs if f["customers"] == 1_000_000]
    if target:
        seconds = target[0]["incremental"]["seconds"]
        lines += [
            "",
            f"Target ≤ 20 s at 1M customers, measured on the incremental build after a 1% batch: "
            f"**{'met' if seconds <= 20 else 'NOT met'}** ({seconds:.1f} s for the whole `aag build`). "
            f"A full build at 1M takes {target[0]['full']['seconds']:.0f} s "
            f"({target[0]['full-after']['seconds']:.0f} s for the `--full-refresh` after the batch).",
        ]
    lines.append(f"<!-- /bench_gold {sizes_key} -->")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run each size in a fresh subprocess and report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args.phase, args.customers[0], args.warehouse, args.out)
        return
    if args.worker:
        worker(args.customers[0], args.out)
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
    ).stdout.strip()
    runs = []
    with tempfile.TemporaryDirectory(prefix="aag-gold-") as tmp:
        for n in args.customers:
            out = Path(tmp) / f"figures-{n}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", "--customers", str(n), "--out", str(out)], check=True
            )
            runs.append(json.loads(out.read_text()))
            print(f"{n:,} customers: incremental {runs[-1]['incremental']['seconds']:.1f} s", flush=True)
    key = "customers=" + ",".join(str(n) for n in args.customers)
    section = markdown(runs, commit, key)
    print(section)
    if not args.no_write:
        write_section(args.results, "bench_gold", section, key)


if __name__ == "__main__":
    main()
