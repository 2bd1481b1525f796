"""The gold layer: the dbt project on real Delta tables and a real DuckDB file.

One warehouse (the demo's seed case with a company and its assets, a consent story, a
priority tie, and a generated five-source world) is built once with ``aag build`` and
shared. Every cell of the dbt profiles must equal the Python resolution
(``AagService.customer_profiles``), and the identity map must equal
``AagService.identity_map()``. Tests that change a warehouse work on a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import write_deltalake

from aag import gold
from aag.config import load_config
from aag.demo import DEMO_ACCOUNT, DEMO_CONTACT, run_world, write_demo_files
from aag.errors import WarehouseError
from aag.model import RELATIONSHIPS
from aag.resolution import CUSTOMER_ATTRIBUTES, WINNER_ORDER, profile_sql
from aag.service import AagService

REPO = Path(__file__).resolve().parents[1]
DBT = REPO / "dbt"
CONSENT_CONTACT = "0035g00000CnsntAAA"
TIE_CONTACT = "0035g00000TieAAAAA"


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _contact(record_id: str, email: str, when: str, opted_out: bool | None, phone: str) -> dict[str, Any]:
    return {
        "Id": record_id,
        "FirstName": "Cora",
        "LastName": "Sent",
        "Email": email,
        "Phone": phone,
        "HasOptedOutOfEmail": opted_out,
        "LastModifiedDate": when,
        "IsDeleted": False,
    }


def _stories(svc: AagService, folder: Path) -> None:
    """Consent set, changed, removed (record deleted) and set again; a tie across two sources."""
    consent = [
        ("2025-01-01T00:00:00Z", False, False),
        ("2025-02-01T00:00:00Z", True, False),
        ("2025-03-01T00:00:00Z", True, True),
        ("2025-04-01T00:00:00Z", False, False),
    ]
    for n, (when, opted_out, deleted) in enumerate(consent):
        row = _contact(CONSENT_CONTACT, "cora@example.com", when, opted_out, "+49 30 5550000")
        row["IsDeleted"] = deleted
        svc.ingest("salesforce", "Contact", [_write(folder / f"consent{n}.jsonl", [row])])
    shop = {
        "id": 4242,
        "email": "cora@example.com",
        "accepts_marketing": True,
        "accepts_marketing_updated_at": "2025-01-15T00:00:00Z",
        "updated_at": "2025-01-15T00:00:00Z",
    }
    svc.ingest("shopify", "customers", [_write(folder / "consent_shop.jsonl", [shop])])
    when = "2025-05-05T12:00:00Z"
    tie_sf = _contact(TIE_CONTACT, "tie@example.com", when, False, "+49 30 1111111")
    tie_shop = {"id": 7777, "email": "tie@example.com", "phone": "+49 30 2222222", "updated_at": when}
    svc.ingest("salesforce", "Contact", [_write(folder / "tie_sf.jsonl", [tie_sf])])
    svc.ingest("shopify", "customers", [_write(folder / "tie_shop.jsonl", [tie_shop])])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[AagService, gold.BuildReport]:
    root = tmp_path_factory.mktemp("gold")
    svc = AagService(str(root / "wh"))
    svc.init()
    for batch, path in write_demo_files(root / "in"):
        svc.ingest(batch.source_system, batch.source_object, [path])
    _stories(svc, root / "in")
    run_world(svc, root / "in" / "world", 150)
    return svc, svc.build()


def _copy(svc: AagService, target: Path) -> AagService:
    # The gold exports are relative links through gold/current: copied as links.
    shutil.copytree(svc.warehouse.uri, target, symlinks=True)
    return AagService(str(target))


def _assert_cells_equal(dbt_table: pa.Table, python_table: pa.Table) -> None:
    assert dbt_table.schema.equals(python_table.schema), (dbt_table.schema, python_table.schema)
    assert dbt_table.num_rows == python_table.num_rows
    for got, want in zip(dbt_table.to_pylist(), python_table.to_pylist(), strict=True):
        assert got == want
    assert dbt_table.equals(python_table)


def _gold(svc: AagService, model: str) -> pa.Table:
    return pq.read_table(gold.gold_file(svc.warehouse, model))


# -- one logic, two implementations ------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_profiles_equal_the_python_resolution_in_every_cell(built, version):
    svc, _ = built
    python = svc.customer_profiles(version)
    assert python.num_rows > 150
    _assert_cells_equal(_gold(svc, f"customer_profile_v{version}"), python)


def test_customer_identity_equals_the_identity_map(built):
    svc, _ = built
    _assert_cells_equal(_gold(svc, "customer_identity"), svc.identity_map())


def test_rule_and_attribute_list_are_the_same_in_python_and_dbt():
    macro = (DBT / "macros" / "resolve_winner.sql").read_text()
    listed = re.search(r"set winner_order = \[(.*?)\]", macro, re.S)
    assert listed
    dbt_order = [item.replace(" nulls last", "") for item in re.findall(r"'([^']+)'", listed.group(1))]
    assert dbt_order == [part.strip().lower() for part in WINNER_ORDER.split(",")]
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    assert tuple(project["vars"]["customer_attributes"]) == CUSTOMER_ATTRIBUTES
    # The v2 contract lists the columns in the order the Python profile returns them.
    spec = yaml.safe_load((DBT / "models" / "gold" / "customer_profile.yml").read_text())["models"][0]
    contract = [c["name"] for c in spec["columns"]]
    select = profile_sql(load_config(), 2).split("FROM")[0]
    assert contract == re.findall(r" AS (\w+)", select)


def test_gold_memory_limit_is_bounded_and_one_setting(monkeypatch):
    # The profile (plain `dbt build`) and `aag build` (dbt and the export) default to the
    # same fixed limit, not a share of the RAM, and $AAG_DUCKDB_MEMORY_LIMIT raises both.
    profile = yaml.safe_load((DBT / "profiles.yml").read_text())["aag"]["outputs"]["local"]
    default = re.fullmatch(
        r"\{\{ env_var\('AAG_DUCKDB_MEMORY_LIMIT', '([^']+)'\) \}\}", profile["settings"]["memory_limit"]
    )
    assert default and default.group(1) == gold.project.GOLD_MEMORY_LIMIT
    assert not gold.project.GOLD_MEMORY_LIMIT.endswith("%")
    monkeypatch.delenv("AAG_DUCKDB_MEMORY_LIMIT", raising=False)
    assert gold.project.memory_limit() == gold.project.GOLD_MEMORY_LIMIT
    monkeypatch.setenv("AAG_DUCKDB_MEMORY_LIMIT", "8GB")
    assert gold.project.memory_limit() == "8GB"


# -- the dbt build -----------------------------------------------------------------------


def test_aag_build_runs_every_model_and_test_green(built):
    svc, report = built
    assert report.warnings == []
    assert report.nodes_run >= 50
    assert set(report.models) == set(gold.GOLD_MODELS)
    assert report.silver_versions == gold.silver_versions(svc.warehouse)
    built_json = gold.manifest(svc.warehouse)
    assert built_json and built_json["models"] == report.models
    # The DuckDB file is usable without dbt: gold tables, and the silver views reading Delta.
    con = duckdb.connect(report.duckdb_file, read_only=True)
    try:
        rows = con.sql("SELECT count(*) FROM gold.customer_profile_v2").fetchall()[0][0]
        resolved = con.sql("SELECT count(*) FROM silver.resolved_attributes").fetchall()[0][0]
    finally:
        con.close()
    assert rows == report.models["customer_profile_v2"] and resolved > rows
    assert not svc.gold_is_stale()


def test_versioned_ref_to_v1_works(built):
    svc, report = built
    staged = gold.gold_dir(svc.warehouse) / "dbt"
    inline = "select count(*) as n, count(email) as e from {{ ref('customer_profile', version=1) }}"
    args = gold.dbt_args("show", staged, svc.warehouse)
    result = gold.run_dbt([*args, "--inline", inline])
    assert result.success, result.exception
    shown = result.result.results[0]
    assert '"gold"."customer_profile_v1"' in shown.node.compiled_code
    assert shown.agate_table.rows[0][0] == report.models["customer_profile_v1"]


def test_company_assets_walk_works_at_and_owned_by(built):
    svc, _ = built
    customer = svc.find_customer("salesforce", DEMO_CONTACT)
    rows = [r for r in _gold(svc, "company_assets").to_pylist() if r["customer_id"] == customer]
    assert {(r["company_name"], r["asset_name"], r["serial_number"], r["asset_status"]) for r in rows} == {
        ("Acme GmbH", "Press 3000", "PR-3000-0042", "Installed"),
        ("Acme GmbH", "Robot Arm", "RA-7-1138", "Installed"),
    }
    assert len({r["company_id"] for r in rows}) == 1 and all(r["asset_id"] for r in rows)


def test_consent_log_has_every_change_with_old_and_new_value(built):
    svc, _ = built
    customer = svc.find_customer("salesforce", CONSENT_CONTACT)
    rows = [r for r in _gold(svc, "consent_log").to_pylist() if r["customer_id"] == customer]
    keys = ("change_seq", "changed_at", "source_system", "change_type", "old_value", "new_value")
    seen = [tuple(r[k].strftime("%Y-%m-%d") if k == "changed_at" else r[k] for k in keys) for r in rows]
    assert seen == [
        (1, "2025-01-01", "salesforce", "set", None, "true"),
        (2, "2025-01-15", "shopify", "set", None, "true"),
        (3, "2025-02-01", "salesforce", "change", "true", "false"),
        (4, "2025-03-01", "salesforce", "removal", "false", None),
        (5, "2025-04-01", "salesforce", "set", None, "true"),
    ]
    profile = svc.profile(customer, 2)
    assert profile["email_marketing_consent"] == "true"
    assert profile["email_marketing_consent_source"] == "salesforce"


def test_recency_test_fails_on_a_stale_build(built):
    svc, _ = built
    staged = gold.gold_dir(svc.warehouse) / "dbt"
    args = gold.dbt_args("test", staged, svc.warehouse, {"gold_recency_hours": 0})
    result = gold.run_dbt([*args, "--select", "assert_gold_recency"])
    assert not result.success
    assert [name for name, _ in gold.failed_nodes(result)] == ["assert_gold_recency"]


# -- exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_aag_export_writes_every_gold_model(built, tmp_path, fmt):
    svc, report = built
    for model in gold.GOLD_MODELS:
        out = tmp_path / f"{model}.{fmt}"
        assert svc.export(model, fmt, out) == report.models[model]
        assert out.stat().st_size > 0
    if fmt == "jsonl":
        customer = svc.find_customer("salesforce", DEMO_CONTACT)
        lines = (tmp_path / "customer_profile_v2.jsonl").read_text().splitlines()
        alex = next(json.loads(line) for line in lines if json.loads(line)["customer_id"] == customer)
        assert alex["phone"] == "+499876543210" and alex["phone_source"] == "zendesk"
        assert alex["phone_updated_at"] == "2026-03-01T09:00:00.000000Z"


def test_cli_export_of_a_gold_model(built, tmp_path):
    svc, _ = built
    out = tmp_path / "consent_log.csv"
    result = subprocess.run(
        [sys.executable, "-m", "aag.cli", "export", "consent_log", "--format", "csv", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AAG_WAREHOUSE": svc.warehouse.uri},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0].startswith("customer_id,change_seq,changed_at")


# -- warehouses that change (copies) -----------------------------------------------------


def test_build_uses_the_warehouse_config_then_goes_stale_and_erasure_drops_the_exports(built, tmp_path):
    base, _ = built
    svc = _copy(base, tmp_path / "wh")
    tie = svc.find_customer("salesforce", TIE_CONTACT)
    assert svc.profile(tie, 2)["phone_source"] == "salesforce"  # a full tie: priority 1 beats 3
    priorities = Path(svc.warehouse.uri) / "config" / "source_priority.csv"
    priorities.write_text(priorities.read_text().replace("shopify,3,", "shopify,0,"), encoding="utf-8")
    svc = AagService(svc.warehouse.uri)
    report = svc.build()
    assert report.mode == "full" and report.full_reason == "the dbt project or the configuration changed"
    assert (gold.gold_dir(svc.warehouse) / "dbt" / "seeds" / "source_priority.csv").read_text() == (
        priorities.read_text()
    )
    profile = next(r for r in _gold(svc, "customer_profile_v2").to_pylist() if r["customer_id"] == tie)
    assert profile["phone"] == "+49302222222" and profile["phone_source"] == "shopify"
    _assert_cells_equal(_gold(svc, "customer_profile_v2"), svc.customer_profiles(2))
    assert report.config_dir == str(priorities.parent)
    # Silver moves on: the gold exports say so; erasure deletes them (they hold the customer)
    # and takes the customer out of the DuckDB file, which stays the base of the next build.
    more = _contact("0035g00000LateAAAA", "late@example.com", "2026-01-01T00:00:00Z", False, "+49 30 999")
    svc.ingest("salesforce", "Contact", [_write(tmp_path / "late.jsonl", [more])])
    assert svc.gold_is_stale()
    erased = svc.erase(tie)
    assert erased["gold_files_removed"] >= len(gold.GOLD_MODELS)
    with pytest.raises(WarehouseError, match="aag build"):
        svc.export("customer_profile_v2", "parquet", tmp_path / "p.parquet")
    con = duckdb.connect(str(gold.gold_dir(svc.warehouse) / gold.DUCKDB_FILE), read_only=True)
    try:
        # Every table of the file with a customer column, found in the file: the gold
        # models, the record map and the last incremental run's change set.
        tables = con.execute(
            "SELECT c.schema_name, c.table_name FROM duckdb_columns() AS c "
            "JOIN duckdb_tables() AS t USING (database_name, schema_name, table_name) "
            "WHERE c.column_name = 'customer_id'"
        ).fetchall()
        change_set = {t for t in gold.SCRATCH_TABLES if t.endswith("_customers")}
        assert change_set, gold.SCRATCH_TABLES
        assert {t for _, t in tables} >= {*gold.GOLD_MODELS, *gold.SILVER_CUSTOMER_TABLES, *change_set}
        for schema, table in tables:
            query = f"SELECT count(*) FROM {schema}.{table} WHERE customer_id = ?"
            assert con.execute(query, [tie]).fetchone() == (0,), table
    finally:
        con.close()
    manifest = gold.manifest(svc.warehouse)
    assert manifest is not None
    assert manifest["exports"] is None
    # The erasure's own commits write no change data (it would keep the erased rows), so
    # the feed has a gap there and the next build is a full one.
    again = svc.build()
    assert again.mode == "full" and "change feed" in again.full_reason
    _assert_cells_equal(_gold(svc, "customer_profile_v2"), svc.customer_profiles(2))


def test_incremental_build_after_erasure_batches_and_merge_equals_a_full_rebuild(built, tmp_path):
    base, _ = built
    svc = _copy(base, tmp_path / "wh")
    folder = tmp_path / "in"
    # A second contact at the demo's company (Acme), then the demo customer is erased;
    # the build after an erasure is full (see above), later ones incremental again.
    worker = _contact("0035g00000WorkAAAA", "w@example.com", "2025-05-01T00:00:00Z", False, "+49 30 4")
    worker["AccountId"] = DEMO_ACCOUNT
    svc.ingest("salesforce", "Contact", [_write(folder / "worker.jsonl", [worker])])
    svc.erase(svc.find_customer("salesforce", DEMO_CONTACT))
    assert svc.build().mode == "full"
    # A changed contact, a new customer, and a Zendesk user whose external id names one
    # Salesforce contact and whose e-mail is another customer's: the two clusters merge.
    consent = svc.find_customer("salesforce", CONSENT_CONTACT)
    tie = svc.find_customer("salesforce", TIE_CONTACT)
    changed = _contact(CONSENT_CONTACT, "cora@example.com", "2025-06-01T00:00:00Z", True, "+49 30 5550001")
    fresh = _contact("0035g00000NewcAAAA", "new@example.com", "2025-06-02T00:00:00Z", False, "+49 30 777")
    svc.ingest("salesforce", "Contact", [_write(folder / "changed.jsonl", [changed, fresh])])
    glue = {
        "id": 99001,
        "name": "Cora Tie",
        "email": "tie@example.com",
        "phone": "+49 30 3333333",
        "external_id": CONSENT_CONTACT,
        "updated_at": "2025-06-03T00:00:00Z",
    }
    svc.ingest("zendesk", "users", [_write(folder / "glue.jsonl", [glue])])
    merged = {svc.find_customer("salesforce", CONSENT_CONTACT), svc.find_customer("salesforce", TIE_CONTACT)}
    assert len(merged) == 1 and merged <= {consent, tie}
    # Acme is renamed and one of its assets retired; the worker's own edges do not change.
    when = "2025-06-04T00:00:00.000+0000"
    account = {"Id": DEMO_ACCOUNT, "Name": "Acme AG", "LastModifiedDate": when, "IsDeleted": False}
    svc.ingest("salesforce", "Account", [_write(folder / "account.jsonl", [account])])
    asset = {
        "Id": "02i5g00000Asset0AA",
        "AccountId": DEMO_ACCOUNT,
        "Name": "Press 3000",
        "SerialNumber": "PR-3000-0042",
        "Status": "Retired",
        "LastModifiedDate": when,
        "IsDeleted": False,
    }
    svc.ingest("salesforce", "Asset", [_write(folder / "asset.jsonl", [asset])])
    # The CRM deletes the contact that is the survivor of a cluster of several records,
    # and the contact created above: the others get a new survivor, and neither deleted
    # record keeps a profile.
    ident = svc.identity_map().to_pylist()
    sizes = Counter(r["customer_id"] for r in ident)
    survivor = next(
        r
        for r in ident
        if r["source_system"] == "salesforce"
        and r["record_entity_id"] == r["customer_id"]
        and sizes[r["customer_id"]] > 1
    )
    others = [r for r in ident if r["customer_id"] == survivor["customer_id"] and r is not survivor]
    gone = [
        {"Id": record_id, "IsDeleted": True, "LastModifiedDate": "2026-01-01T00:00:00Z"}
        for record_id in (survivor["source_record_id"], "0035g00000NewcAAAA")
    ]
    svc.ingest("salesforce", "Contact", [_write(folder / "deleted.jsonl", gone)])
    new_survivor = svc.find_customer(others[0]["source_system"], others[0]["source_record_id"])
    assert new_survivor != survivor["customer_id"]

    incremental = svc.build()
    assert incremental.mode == "incremental", incremental.full_reason
    profiled = {r["customer_id"] for r in _gold(svc, "customer_profile_v2").to_pylist()}
    assert new_survivor in profiled
    assert survivor["customer_id"] not in profiled
    assert svc.find_customer("salesforce", "0035g00000NewcAAAA") not in profiled
    assert 0 < incremental.affected_customers < incremental.models["customer_profile_v2"]
    kept = {model: _gold(svc, model) for model in gold.GOLD_MODELS}
    employee = svc.find_customer("salesforce", "0035g00000WorkAAAA")
    assets = [r for r in kept["company_assets"].to_pylist() if r["customer_id"] == employee]
    assert {(r["company_name"], r["asset_name"], r["asset_status"]) for r in assets} == {
        ("Acme AG", "Press 3000", "Retired"),
        ("Acme AG", "Robot Arm", "Installed"),
    }
    full = svc.build(full_refresh=True)
    assert full.mode == "full" and full.full_reason == "asked (--full-refresh)"
    for model in gold.GOLD_MODELS:
        _assert_cells_equal(kept[model], _gold(svc, model))
    for version in (1, 2):
        _assert_cells_equal(kept[f"customer_profile_v{version}"], svc.customer_profiles(version))
    _assert_cells_equal(kept["customer_identity"], svc.identity_map())

    # Erasure right after an incremental build: that run's copies of the affected
    # customers' edges and values (silver.affected_edges, affected_nodes) go too.
    again = _contact(CONSENT_CONTACT, "cora@example.com", "2025-07-01T00:00:00Z", False, "+49 30 5550002")
    svc.ingest("salesforce", "Contact", [_write(folder / "again.jsonl", [again])])
    assert svc.build().mode == "incremental"
    assert all(_scratch_rows(svc).values())
    svc.erase(svc.find_customer("salesforce", CONSENT_CONTACT))
    assert _scratch_rows(svc) == dict.fromkeys(gold.SCRATCH_TABLES, 0)


def _scratch_rows(svc: AagService) -> dict[str, int]:
    con = duckdb.connect(str(gold.gold_dir(svc.warehouse) / gold.DUCKDB_FILE), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM silver.{t}").fetchall() for t in gold.SCRATCH_TABLES}
    finally:
        con.close()
    return {t: rows[0][0] for t, rows in counts.items()}


def test_a_build_without_changes_is_incremental_and_publishes_atomically(built, tmp_path):
    base, report = built
    svc = _copy(base, tmp_path / "wh")
    folder = gold.gold_dir(svc.warehouse)
    first = os.readlink(folder / gold.CURRENT_LINK)
    again = svc.build()
    assert again.mode == "incremental" and again.changed_rows == 0 and again.affected_customers == 0
    assert again.models == report.models
    # Every export is a link through `current`, switched in one rename to the new folder;
    # the old folder is gone and nothing of the working copy is left.
    assert os.readlink(folder / gold.CURRENT_LINK) == again.exports != first
    for model in gold.GOLD_MODELS:
        assert os.readlink(folder / f"{model}.parquet") == f"{gold.CURRENT_LINK}/{model}.parquet"
    assert [p.name for p in (folder / gold.BUILDS_DIR).iterdir()] == [again.exports.split("/")[1]]
    assert not (folder / gold.WORK_DIR).exists()


def test_plain_dbt_build_is_green_and_data_tests_catch_broken_data(built, tmp_path):
    base, report = built
    svc = _copy(base, tmp_path / "wh")
    wh = svc.warehouse
    # The repository's project as a user runs it: plain `dbt build --target local`.
    plain = [
        "build",
        "--project-dir",
        str(DBT),
        "--profiles-dir",
        str(DBT),
        "--target",
        "local",
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
        "--vars",
        json.dumps({"warehouse": wh.uri}),
    ]
    result = gold.run_dbt(plain)
    assert result.success, gold.failed_nodes(result) or result.exception
    statuses = {str(r.status) for r in result.result.results}
    assert statuses <= {"success", "pass"}, statuses

    # A profile cell that disagrees with the edges' winner fails the parity test: a value
    # of one customer, the source of another's value.
    customer = svc.find_customer("salesforce", DEMO_CONTACT)
    other = svc.find_customer("salesforce", TIE_CONTACT)
    con = duckdb.connect(str(gold.gold_dir(wh) / gold.DUCKDB_FILE))
    try:
        con.execute(
            "UPDATE gold.customer_profile_v2 SET phone = '+490000000000' WHERE customer_id = ?", [customer]
        )
        con.execute(
            "UPDATE gold.customer_profile_v2 SET email_source = 'tampered' WHERE customer_id = ?", [other]
        )
    finally:
        con.close()
    staged = gold.gold_dir(wh) / "dbt"
    args = gold.dbt_args("test", staged, wh)
    tampered = gold.run_dbt([*args, "--select", "assert_profile_matches_edge_winners"])
    assert [name for name, _ in gold.failed_nodes(tampered)] == ["assert_profile_matches_edge_winners"]
    assert tampered.result.results[0].failures == 2

    # A broken SCD2 merge: a second current version for one edge key.
    edges = wh.io.read(wh.graph.relationships_uri).cast(RELATIONSHIPS)
    phones = edges.filter(pc.equal(edges["rel_type"], "HAS_PHONE")).to_pylist()
    current = next(r for r in phones if r["is_current"])
    other = next(r for r in phones if r["target_node_id"] != current["target_node_id"])
    broken = {**current, "target_node_id": other["target_node_id"], "source_event_id": "broken-merge"}
    write_deltalake(wh.graph.relationships_uri, pa.Table.from_pylist([broken], RELATIONSHIPS), mode="append")
    with pytest.raises(gold.BuildError) as failure:
        svc.build()
    assert "assert_no_duplicate_current_edges" in failure.value.failures
    assert "\n" not in str(failure.value)
    log = Path(str(failure.value).rsplit("(log: ", 1)[1].rstrip(")"))
    assert "assert_no_duplicate_current_edges" in log.read_text()
    # The last good exports stay in place when a build fails.
    assert gold.gold_file(wh, "customer_profile_v2").exists()
    assert report.models["customer_profile_v2"] == _gold(svc, "customer_profile_v2").num_rows


# -- the databricks target, offline -------------------------------------------------------


def test_databricks_target_parses_and_compiles_offline(tmp_path):
    env = {
        **os.environ,
        "DATABRICKS_HOST": "dbc-00000000-0000.cloud.databricks.com",
        "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/0000000000000000",
        "DATABRICKS_TOKEN": "offline-placeholder",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    common = ["--project-dir", str(DBT), "--profiles-dir", str(DBT), "--target", "databricks"]
    common += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
    for command in (["parse"], ["compile", "--no-introspect", "--no-populate-cache"]):
        done = subprocess.run([*dbt, *command, *common], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    compiled = tmp_path / "target" / "compiled" / "aag" / "models"
    profile = (compiled / "gold" / "customer_profile_v2.sql").read_text()
    assert "`main`.`silver`.`resolved_attributes`" in profile
    resolved = (compiled / "silver" / "resolved_attributes.sql").read_text()
    assert "`main`.`graph`.`relationships`" in resolved and "nulls last" in resolved
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    v2 = manifest["nodes"]["model.aag.customer_profile.v2"]
    assert v2["contract"]["enforced"] and v2["columns"]["email_updated_at"]["data_type"] == "timestamp"
    v1 = manifest["nodes"]["model.aag.customer_profile.v1"]
    assert v1["deprecation_date"] and list(v1["columns"]) == ["customer_id", *CUSTOMER_ATTRIBUTES]


def test_incremental_build_follows_email_changes_and_identity_decisions(built, tmp_path):
    """Identity with memory and operator decisions: each incremental build equals --full-refresh."""
    from aag.demo import DEMO_ZENDESK_USER

    base, _ = built
    svc = _copy(base, tmp_path / "wh")
    svc.build()
    customer = svc.find_customer("salesforce", DEMO_CONTACT)
    desk, contact = f"zendesk:users:{DEMO_ZENDESK_USER}", f"salesforce:Contact:{DEMO_CONTACT}"
    moved = {
        "id": int(DEMO_ZENDESK_USER),
        "name": "Alex Example",
        "email": "alex@elsewhere.example",
        "external_id": None,
        "updated_at": "2026-04-01T00:00:00Z",
    }

    def step(event: Callable[[], object]) -> None:
        event()
        incremental = svc.build()
        assert incremental.mode == "incremental", incremental.full_reason
        kept = {model: _gold(svc, model) for model in gold.GOLD_MODELS}
        assert svc.build(full_refresh=True).mode == "full"
        for model in gold.GOLD_MODELS:
            _assert_cells_equal(kept[model], _gold(svc, model))

    # The desk user takes a new address and drops the CRM id: still the same customer.
    step(lambda: svc.ingest("zendesk", "users", [_write(tmp_path / "moved.jsonl", [moved])]))
    assert svc.find_customer("zendesk", DEMO_ZENDESK_USER) == customer
    profile = {r["customer_id"]: r for r in _gold(svc, "customer_profile_v2").to_pylist()}[customer]
    assert profile["email"] == "alex@elsewhere.example"
    # An operator keeps them apart, then takes it back.
    step(lambda: svc.decide_identity("unlink", [desk, contact], "test"))
    apart = svc.find_customer("zendesk", DEMO_ZENDESK_USER)
    assert apart != customer
    assert {r["customer_id"] for r in _gold(svc, "customer_identity").to_pylist()} >= {apart, customer}
    step(lambda: svc.decide_identity("undo", [desk, contact]))
    assert svc.find_customer("zendesk", DEMO_ZENDESK_USER) == customer
