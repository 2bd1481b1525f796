"""End to end on real Delta tables: landing, extraction, quarantine, ledger, erasure."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from aag.demo import DEMO_CONTACT, write_demo_files
from aag.errors import InputError, NotFoundError
from aag.normalize import sf_id18
from aag.service import AagService


def _jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def contact(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "Id": "0035g00000AbcdeAAA",
        "FirstName": "Alex",
        "LastName": "Example",
        "MailingStreet": "Leopoldstr. 1",
        "Email": "alex@example.com",
        "Phone": "+49 111 000 0000",
        "MailingCity": "München",
        "MailingCountry": "Germany",
        "HasOptedOutOfEmail": False,
        "LastModifiedDate": "2024-03-01T10:00:00Z",
        "IsDeleted": False,
    }
    row.update(kw)
    return row


@pytest.fixture
def svc(tmp_path) -> AagService:
    service = AagService(str(tmp_path / "wh"))
    service.init()
    return service


def test_init_is_idempotent(tmp_path):
    service = AagService(str(tmp_path / "wh"))
    assert service.init()
    assert service.init() == []
    for table in ("silver/nodes", "silver/relationships", "quarantine", "ledger/batches"):
        assert (tmp_path / "wh" / table / "_delta_log").is_dir()


def test_silver_properties_of_an_older_init_are_brought_up_to_date_by_a_build(tmp_path):
    """Change feed on, and no boolean statistics column (Delta-Spark refuses to alter those)."""
    from deltalake import DeltaTable

    from aag import gold
    from aag.graph.store import RELATIONSHIP_STATS_COLUMNS

    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    uri = svc.warehouse.graph.relationships_uri
    stats = DeltaTable(uri).metadata().configuration["delta.dataSkippingStatsColumns"]
    assert "is_current" not in stats.split(",")
    # What `aag init` wrote before: the boolean listed, the feed off.
    DeltaTable(uri).alter.set_table_properties(
        {"delta.dataSkippingStatsColumns": stats + ",is_current", "delta.enableChangeDataFeed": "false"}
    )
    # `aag build` brings them up to date, under the writer lock it already holds.
    svc.build()
    configuration = DeltaTable(uri).metadata().configuration
    assert configuration["delta.dataSkippingStatsColumns"] == RELATIONSHIP_STATS_COLUMNS
    assert configuration["delta.enableChangeDataFeed"] == "true"
    version = DeltaTable(uri).version()
    assert gold.ensure_silver_properties(svc.warehouse) is False
    assert DeltaTable(uri).version() == version


def test_demo_case_field_time_beats_record_time(svc, tmp_path):
    for batch, path in write_demo_files(tmp_path / "in"):
        svc.ingest(batch.source_system, batch.source_object, [path])
    customer = svc.find_customer("salesforce", DEMO_CONTACT)
    profile = svc.profile(customer, 2)
    assert profile["phone"] == "+499876543210" and profile["phone_source"] == "zendesk"
    assert profile["email"] == "alex.example@newco.com" and profile["email_source"] == "salesforce"
    why = svc.explain(customer, "phone")
    assert why.winner["source_system"] == "zendesk"
    assert why.losers[0]["source_system"] == "salesforce"
    assert why.losers[0]["why_lost"].startswith("older")
    # The CRM's 09:05 re-sync did not create a phone version: still the 2024 one.
    sf = [h for h in why.history if h["source_system"] == "salesforce"]
    assert len(sf) == 1 and sf[0]["updated_at"].year == 2024
    assert svc.find_customer("zendesk", "9001") == customer
    # Value nodes are shared across sources: both systems' old phone is one node.
    nodes = svc.warehouse.graph.nodes().to_pylist()
    assert len({n["node_id"] for n in nodes}) == len(nodes)
    assert sum(1 for n in nodes if n["value"] == "+491110000000") == 1


def test_relanding_the_same_file_is_a_noop(svc, tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [contact()])
    first = svc.ingest("salesforce", "Contact", [path])[0]
    assert first.status == "committed" and first.edge_versions_written > 0
    again = svc.ingest("salesforce", "Contact", [path])[0]
    assert again.status == "already ingested"
    assert svc.warehouse.batches().num_rows == 1


def test_same_rows_in_another_file_or_format_add_nothing(svc, tmp_path):
    rows = [contact(), contact(Id="0035g00000XyzabAAA", Email="b@example.com", Phone="+4930111")]
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", rows)])
    rel_before = svc.warehouse.graph.relationships().num_rows
    nodes_before = svc.warehouse.graph.nodes().num_rows
    csv_path = tmp_path / "a.csv"
    duckdb.sql(f"COPY (SELECT * FROM read_json('{tmp_path / 'a.jsonl'}')) TO '{csv_path}'")
    parquet_path = tmp_path / "a.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json('{tmp_path / 'a.jsonl'}')) TO '{parquet_path}'")
    for path, unchanged in ((csv_path, 0), (parquet_path, 0), (_jsonl(tmp_path / "b.jsonl", rows[::-1]), 2)):
        report = svc.ingest("salesforce", "Contact", [path])[0]
        assert report.status == "committed"
        assert report.edge_versions_written == 0 and report.nodes_written == 0, path
        # Byte-identical rows skip extraction; other formats go the long way, same result.
        assert report.rows_unchanged == unchanged, path
        assert report.rows_processed == report.rows_landed == 2
    assert svc.warehouse.graph.relationships().num_rows == rel_before
    assert svc.warehouse.graph.nodes().num_rows == nodes_before


def test_bad_rows_are_quarantined_and_the_rest_processed(svc, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps(contact())
        + "\n"
        + json.dumps(contact(Id=None))
        + "\n"
        + json.dumps(contact(Id="0035g00000BadTmAAA", LastModifiedDate="yesterday"))
        + "\n"
        + "{not json\n"
        + "[1, 2]\n"
        + json.dumps(contact(Id="0035g00000BadPhAAA", Phone="n/a", Email="ok@example.com"))
        + "\n",
        encoding="utf-8",
    )
    report = svc.ingest("salesforce", "Contact", [path])[0]
    assert report.rows_landed == 6
    assert report.rows_quarantined == 4
    assert report.rows_processed + report.rows_quarantined == report.rows_landed
    assert report.fields_rejected == 1
    q = svc.warehouse.quarantine().to_pylist()
    reasons = Counter(r["reason"].split(":")[0].split(" (")[0] for r in q)
    assert reasons == Counter(
        {
            "missing record id": 1,
            "unparseable record time": 1,
            "invalid JSON": 1,
            "not a JSON object": 1,
            "invalid phone value in Phone": 1,
        }
    )
    assert all(r["raw"] for r in q)
    # The bad-phone row still contributed its good fields.
    customer = svc.find_customer("salesforce", "0035g00000BadPhAAA")
    assert svc.profile(customer)["email"] == "ok@example.com"
    assert svc.warehouse.io.read(svc.warehouse.bronze_uri("salesforce", "Contact")).num_rows == 6


def test_unreadable_file_changes_nothing(svc, tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="cannot read as Parquet"):
        svc.ingest("salesforce", "Contact", [bad])
    assert svc.warehouse.batches().num_rows == 0
    assert not (Path(svc.warehouse.uri) / "bronze").exists()
    with pytest.raises(InputError, match="unsupported file type"):
        svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "x.txt", [contact()])])


def test_deleted_record_removes_its_values(svc, tmp_path):
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact()])])
    customer = svc.find_customer("salesforce", "0035g00000AbcdeAAA")
    svc.ingest(
        "salesforce",
        "Contact",
        [
            _jsonl(
                tmp_path / "b.jsonl",
                [contact(IsDeleted=True, LastModifiedDate="2024-04-01T00:00:00Z")],
            )
        ],
    )
    profile = svc.profile(customer, 1)
    assert all(profile[a] is None for a in ("email", "phone", "city"))


def test_15_and_18_character_salesforce_ids_are_one_record(svc, tmp_path):
    assert sf_id18("0035g00000Abcde") == "0035g00000AbcdeAAB"
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact(Id="0035g00000Abcde")])])
    svc.ingest(
        "salesforce",
        "Contact",
        [
            _jsonl(
                tmp_path / "b.jsonl",
                [
                    contact(
                        Id="0035g00000AbcdeAAB",
                        Email="new@example.com",
                        LastModifiedDate="2024-04-01T00:00:00Z",
                    )
                ],
            )
        ],
    )
    customer = svc.find_customer("salesforce", "0035g00000Abcde")
    assert customer == svc.find_customer("salesforce", "0035g00000AbcdeAAB")
    assert svc.profile(customer)["email"] == "new@example.com"
    # Bronze keeps the canonical id, so erasure finds rows landed under either spelling.
    svc.erase(customer)
    assert svc.warehouse.io.read(svc.warehouse.bronze_uri("salesforce", "Contact")).num_rows == 0


def test_erase_then_vacuum_leaves_no_trace_in_any_parquet_file(svc, tmp_path):
    other = contact(
        Id="0035g00000OtherAAA",
        Email="keep@example.com",
        Phone="+4930999",
        FirstName="Kim",
        MailingStreet="Otherweg 2",
        MailingCity="Berlin",
    )
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact(), other])])
    svc.ingest(
        "salesforce",
        "Contact",
        [
            _jsonl(
                tmp_path / "b.jsonl",
                [contact(Email="alex2@example.com", LastModifiedDate="2024-05-01T00:00:00Z")],
            )
        ],
    )
    customer = svc.find_customer("salesforce", "0035g00000AbcdeAAA")
    svc.erase(customer)
    with pytest.raises(NotFoundError):
        svc.profile(customer)
    svc.vacuum()
    secrets = (
        "alex@example.com",
        "alex2@example.com",
        "+491110000000",
        "0035g00000AbcdeAAA",
        "Leopold",
        "München",
    )
    scanned = 0
    files = list(Path(svc.warehouse.uri).rglob("*.parquet"))
    files += list(Path(svc.warehouse.uri).rglob("_delta_log/*.json"))
    for file in files:
        if file.suffix == ".parquet":
            text = json.dumps(pq.read_table(file).to_pylist(), default=str)
        else:
            text = file.read_text(encoding="utf-8")
        scanned += 1
        for secret in secrets:
            assert secret not in text, (secret, file)
    assert scanned > 0
    kept = svc.profile(svc.find_customer("salesforce", "0035g00000OtherAAA"))
    assert kept["email"] == "keep@example.com"


def test_export_formats(svc, tmp_path):
    # Silver tables; the gold models' exports are covered in tests/test_gold.py.
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact()])])
    for fmt in ("parquet", "csv", "jsonl"):
        for model in ("relationships", "nodes", "batches"):
            out = tmp_path / f"{model}.{fmt}"
            assert svc.export(model, fmt, out) > 0
            assert out.stat().st_size > 0
    lines = (tmp_path / "relationships.jsonl").read_text().splitlines()
    phones = [json.loads(line) for line in lines if json.loads(line)["rel_type"] == "HAS_PHONE"]
    assert phones and phones[0]["source_system"] == "salesforce"


def test_same_as_link_with_15_character_id_joins_the_contact(svc, tmp_path):
    id15 = "0035g00000AbCdE"
    id18 = sf_id18(id15)
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact(Id=id18)])])
    zendesk = {
        "id": "43",
        "name": "Alex Example",
        "email": "alex@example.com",
        "external_id": id15,
        "updated_at": "2024-06-01T00:00:00Z",
    }
    svc.ingest("zendesk", "users", [_jsonl(tmp_path / "z.jsonl", [zendesk])])
    assert svc.find_customer("zendesk", "43") == svc.find_customer("salesforce", id18)


def test_field_without_any_event_time_is_quarantined(tmp_path, monkeypatch):
    config = tmp_path / "cfg"
    config.mkdir()
    from aag.config import default_config_dir

    for name in ("attribute_name_registry.csv", "source_priority.csv"):
        (config / name).write_text((default_config_dir() / name).read_text())
    with (config / "attribute_name_registry.csv").open("a") as handle:
        handle.write(
            "tracker,people,pid,record_id,customer,,,,id,,,\n"
            "tracker,people,mail,attribute,customer,email,HAS_EMAIL,email,email,1.0,"
            "mail_changed_at,\n"
        )
    monkeypatch.setenv("AAG_CONFIG_DIR", str(config))
    service = AagService(str(tmp_path / "wh"))
    service.init()
    monkeypatch.delenv("AAG_CONFIG_DIR")  # init copied the registry into the warehouse
    rows: list[dict[str, str | None]] = [
        {"pid": "1", "mail": "a@x.io", "mail_changed_at": "2026-01-01T00:00:00Z"},
        {"pid": "2", "mail": "b@x.io", "mail_changed_at": None},
    ]
    report = AagService(str(tmp_path / "wh")).ingest(
        "tracker", "people", [_jsonl(tmp_path / "t.jsonl", rows)]
    )[0]
    assert report.rows_quarantined == 1
    assert [r["reason"] for r in service.warehouse.quarantine().to_pylist()] == [
        "no event time: the object has no record time and no field time is set"
    ]
    edges = service.warehouse.graph.relationships().to_pylist()
    assert edges and all(e["updated_at"] is not None for e in edges)


def test_object_store_uris_pass_through_unchanged():
    from aag.graph.warehouse import Warehouse

    wh = Warehouse("s3://bucket/path/wh", storage_options={"AWS_REGION": "eu-central-1"})
    assert wh.uri == "s3://bucket/path/wh"
    assert wh.graph.relationships_uri == "s3://bucket/path/wh/silver/relationships"
    assert wh.bronze_uri("salesforce", "Contact") == "s3://bucket/path/wh/bronze/salesforce/Contact"
    assert not wh.local and wh.config_dir is None
    assert Warehouse("abfss://c@acct.dfs.core.windows.net/wh").uri.startswith("abfss://c@acct")


def test_source_id_lookup_is_exact_not_a_pattern(svc, tmp_path):
    svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact()])])
    with pytest.raises(NotFoundError):
        svc.find_customer("salesforce", "0035g00000Abc%")
    with pytest.raises(NotFoundError):
        svc.find_customer("salesforce", "_035g00000AbcdeAAA")
    with pytest.raises(NotFoundError, match="unknown source system"):
        svc.find_customer("nosuch", "1")


def _graph_state(service: AagService) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Nodes and edges without ingestion bookkeeping (created_at, batch_id)."""
    nodes = sorted(
        (n["node_id"], n["node_type"], n["value"]) for n in service.warehouse.graph.nodes().to_pylist()
    )
    edges = []
    for e in service.warehouse.graph.relationships().to_pylist():
        props = {k: v for k, v in (e["properties"] or []) if k != "batch_id"}
        edges.append(
            (
                e["source_node_id"],
                e["rel_type"],
                e["source_system"],
                e["target_node_id"],
                e["updated_at"],
                e["is_current"],
                e["source_event_id"],
                sorted(props.items()),
            )
        )
    return nodes, sorted(edges, key=repr)


def test_delta_warehouse_converges_for_any_file_order(tmp_path):
    files = [
        _jsonl(tmp_path / "1.jsonl", [contact()]),
        _jsonl(tmp_path / "2.jsonl", [contact(Phone="+49 30 555", LastModifiedDate="2024-05-01T00:00:00Z")]),
        _jsonl(tmp_path / "3.jsonl", [contact(Phone=None, LastModifiedDate="2024-06-01T00:00:00Z")]),
        _jsonl(
            tmp_path / "4.jsonl",
            [
                contact(
                    Phone="+49 111 000 0000",
                    LastModifiedDate="2024-04-01T00:00:00Z",
                    Email="late@example.com",
                )
            ],
        ),
    ]
    states = []
    for n, order in enumerate([(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)]):
        service = AagService(str(tmp_path / f"wh{n}"))
        service.init()
        for i in order:
            service.ingest("salesforce", "Contact", [files[i]])
        states.append(_graph_state(service))
    assert states[0] == states[1] == states[2]
    edges = states[0][1]
    phone = [e for e in edges if e[1] == "HAS_PHONE"]
    # +491110000000 (03-01, repeated 04-01) → +4930555 (05-01) → removed (06-01)
    assert [(e[3] is not None, e[5]) for e in sorted(phone, key=lambda e: e[4])] == [
        (True, False),
        (True, False),
    ]
    assert sum(1 for e in edges if e[5] and e[1] == "HAS_PHONE") == 0


def test_optimize_keeps_contents_and_vacuum_drops_replaced_files(svc, tmp_path):
    # New contacts in every batch: each batch appends its own files.
    for n in range(3):
        row = contact(Id=f"0035g0000{n}AbcdeAAA", Email=f"v{n}@example.com")
        svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / f"{n}.jsonl", [row])])
    before = _graph_state(svc)
    rel_dir = Path(svc.warehouse.graph.relationships_uri)
    files_before = len(list(rel_dir.glob("*.parquet")))
    result = svc.optimize()
    assert result[svc.warehouse.graph.relationships_uri]["files_removed"] >= 2
    assert _graph_state(svc) == before
    svc.vacuum()
    assert len(list(rel_dir.glob("*.parquet"))) < files_before
    customer = svc.find_customer("salesforce", "0035g00002AbcdeAAA")
    assert svc.profile(customer)["email"] == "v2@example.com"


def test_a_bad_row_sent_again_is_quarantined_again(svc, tmp_path):
    bad = contact(Id=None)
    first = svc.ingest("salesforce", "Contact", [_jsonl(tmp_path / "a.jsonl", [contact(), bad])])[0]
    again = svc.ingest(
        "salesforce",
        "Contact",
        [_jsonl(tmp_path / "b.jsonl", [contact(), bad, contact(Id="0035g00000OtherAAA")])],
    )[0]
    assert (first.rows_quarantined, again.rows_quarantined) == (1, 1)
    # The good row identical to a committed one is still skipped as unchanged.
    assert again.rows_unchanged == 1 and again.rows_landed == again.rows_processed + again.rows_quarantined
    batches = {r["batch_id"] for r in svc.warehouse.quarantine().to_pylist()}
    assert batches == {first.batch_id, again.batch_id}
