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
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

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

    from aag.model import NODES, RELATIONSHIPS
    from aag.warehouse import Warehouse

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


def worker(customers: int, out: Path) -> None:
    """Generate one warehouse, build gold twice (everything; models only), write figures."""
    from aag.service import AagService

    root = Path(tempfile.mkdtemp(prefix="aag-bench-gold-"))
    try:
        started = time.perf_counter()
        counts = generate(root / "wh", customers)
        generate_seconds = time.perf_counter() - started
        svc = AagService(str(root / "wh"))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        report = svc.build()
        build_seconds = time.perf_counter() - started
        from aag import gold

        started = time.perf_counter()
        models = gold.build(svc.warehouse, extra_args=["--select", "resource_type:model"])
        models_seconds = time.perf_counter() - started
        figures = {
            "load_before": load_before,
            "customers": customers,
            "counts": counts,
            "generate_seconds": generate_seconds,
            "build_seconds": build_seconds,
            "dbt_seconds": report.dbt_seconds,
            "export_seconds": report.export_seconds,
            "nodes_run": report.nodes_run,
            "rows": report.models,
            "models_seconds": models_seconds,
            "models_dbt_seconds": models.dbt_seconds,
            "models_nodes_run": models.nodes_run,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
        }
        out.write_text(json.dumps(figures))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def markdown(runs: list[dict], commit: str, sizes_key: str) -> str:
    """The RESULTS.md section."""
    import dbt.version
    import deltalake
    import duckdb

    def row(label: str, fmt: str, key: object) -> str:
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
        f"deltalake {deltalake.__version__}. Local warehouse in a temp dir; each size in a fresh process.",
        "",
        f"Code: commit {commit}. Command: `.venv/bin/python benchmarks/bench_gold.py "
        f"--customers {' '.join(str(f['customers']) for f in runs)}`",
        "",
        "Silver generated directly (five-source shape, see the script's docstring); `aag build` = "
        "`dbt build --target local` (4 seeds, 9 models, every data test) + Parquet export of the "
        "5 gold models. Target: ≤ 20 s at 1M customers.",
        "",
        f"| figure | {head} |",
        "|---|" + "---|" * len(runs),
        row("source records (customer entities)", ",", lambda f: f["counts"]["records"]),
        row("silver relationships rows", ",", lambda f: f["counts"]["relationships"]),
        row("silver nodes rows", ",", lambda f: f["counts"]["nodes"]),
        row("generation seconds (not part of the build)", ".1f", "generate_seconds"),
        row("**`aag build` seconds (models + tests + export)**", ".1f", "build_seconds"),
        row("of which dbt build (seeds, models, data tests)", ".1f", "dbt_seconds"),
        row("of which Parquet export", ".1f", "export_seconds"),
        row("dbt nodes run", ",", "nodes_run"),
        row("**models only (`--select resource_type:model`), seconds**", ".1f", "models_seconds"),
        row("customer_profile_v2 rows", ",", lambda f: f["rows"]["customer_profile_v2"]),
        row("customer_identity rows", ",", lambda f: f["rows"]["customer_identity"]),
        row("company_assets rows", ",", lambda f: f["rows"]["company_assets"]),
        row("consent_log rows", ",", lambda f: f["rows"]["consent_log"]),
        row("peak RSS (GB)", ".2f", "peak_rss_gb"),
        row("1-min load average when the build started (2 cores)", ".1f", "load_before"),
    ]
    target = [f for f in runs if f["customers"] == 1_000_000]
    if target:
        met = target[0]["build_seconds"] <= 20
        lines += [
            "",
            f"Target ≤ 20 s at 1M customers: **{'met' if met else 'NOT met'}** "
            f"({target[0]['build_seconds']:.1f} s for the whole `aag build`).",
        ]
    lines.append(f"<!-- /bench_gold {sizes_key} -->")
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str, key: str) -> None:
    """Replace the section for the same sizes, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(
        rf"<!-- bench_gold {re.escape(key)} -->.*?<!-- /bench_gold {re.escape(key)} -->\n", re.S
    )
    text = (
        pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    )
    path.write_text(text, encoding="utf-8")


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
    args = parser.parse_args()
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
            print(f"{n:,} customers: aag build {runs[-1]['build_seconds']:.1f} s", flush=True)
    key = "customers=" + ",".join(str(n) for n in args.customers)
    section = markdown(runs, commit, key)
    print(section)
    if not args.no_write:
        write_results(args.results, section, key)


if __name__ == "__main__":
    main()
