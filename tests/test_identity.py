"""Identity (SPEC §8) on real Delta tables: linking, guards, merges, splits, stable ids."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest

from aag.identity import SAME_AS_REL
from aag.service import AagService

SF_A = "0035g00000IdentAAA"


def _write(folder: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sf(record_id: str, email: str, when: str, **kw) -> dict[str, Any]:
    row = {
        "Id": record_id,
        "FirstName": "Ana",
        "LastName": "Lima",
        "Email": email,
        "Phone": "+49 30 1234567",
        "LastModifiedDate": when,
        "IsDeleted": False,
    }
    row.update(kw)
    return row


def shop(record_id: int, email: str, when: str, **kw) -> dict[str, Any]:
    row = {"id": record_id, "email": email, "phone": "+49 30 7654321", "updated_at": when}
    row.update(kw)
    return row


def zd(record_id: int, email: str, when: str, external_id: str | None = None) -> dict[str, Any]:
    return {
        "id": record_id,
        "name": "Ana Lima",
        "email": email,
        "external_id": external_id,
        "updated_at": when,
    }


@pytest.fixture
def svc(tmp_path) -> AagService:
    service = AagService(str(tmp_path / "wh"))
    service.init()
    return service


def _land(
    svc: AagService, folder: Path, system: str, obj: str, name: str, rows: list[dict[str, Any]]
) -> None:
    """Ingest ``rows`` as one JSON Lines file of ``system.obj``."""
    svc.ingest(system, obj, [_write(folder, name, rows)])


def _same_as(svc: AagService) -> set[tuple[str, str]]:
    rel = svc.warehouse.graph.relationships().to_pylist()
    current = [r for r in rel if r["rel_type"] == SAME_AS_REL]
    assert all(r["is_current"] for r in current), "SAME_AS edges are derived state: only current rows"
    return {(r["source_node_id"], r["target_node_id"]) for r in current}


def test_records_sharing_an_email_become_one_customer(svc, tmp_path):
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "sf.jsonl",
        [sf(SF_A, "Ana@Example.com", "2024-01-01T00:00:00Z")],
    )
    _land(
        svc,
        tmp_path,
        "shopify",
        "customers",
        "sh.jsonl",
        [shop(77, " ana@example.COM ", "2025-06-01T00:00:00Z")],
    )
    from_sf = svc.find_customer("salesforce", SF_A)
    from_shop = svc.find_customer("shopify", "77")
    assert from_sf == from_shop
    profile = svc.profile(from_shop)
    # Both records' values compete: the shop's phone is newer than the CRM's.
    assert profile["customer_id"] == from_sf
    assert profile["phone"] == "+49307654321" and profile["phone_source"] == "shopify"
    assert profile["first_name"] == "Ana"
    # The record seen first in its source (Salesforce, 2024) is the survivor.
    assert len(_same_as(svc)) == 1
    ident = svc.identity_map().to_pylist()
    assert {(r["source_system"], r["source_record_id"]) for r in ident} == {
        ("salesforce", SF_A),
        ("shopify", "77"),
    }
    assert {r["customer_id"] for r in ident} == {from_sf}
    assert svc.customer_profiles(1).num_rows == 1


def test_over_shared_email_links_nothing_but_a_duplicate_still_joins(svc, tmp_path):
    shared = "family@example.org"
    _land(svc, tmp_path, "salesforce", "Contact", "sf.jsonl", [sf(SF_A, shared, "2024-01-01T00:00:00Z")])
    # One duplicate in the shop (two records): within the default limit of 2 per source.
    svc.ingest(
        "shopify",
        "customers",
        [
            _write(
                tmp_path,
                "s1.jsonl",
                [shop(1, shared, "2025-01-01T00:00:00Z"), shop(2, shared, "2025-01-02T00:00:00Z")],
            )
        ],
    )
    assert (
        svc.find_customer("shopify", "1")
        == svc.find_customer("shopify", "2")
        == svc.find_customer("salesforce", SF_A)
    )
    # A third shop record with the same address: the value is now over-shared and glues nobody.
    _land(svc, tmp_path, "shopify", "customers", "s2.jsonl", [shop(3, shared, "2025-01-03T00:00:00Z")])
    ids = {svc.find_customer("shopify", str(i)) for i in (1, 2, 3)} | {svc.find_customer("salesforce", SF_A)}
    assert len(ids) == 4
    assert _same_as(svc) == set()
    assert svc.customer_profiles(1).num_rows == 4


def test_blocklisted_placeholder_links_nothing(svc, tmp_path):
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "sf.jsonl",
        [sf(SF_A, "TEST@test.com", "2024-01-01T00:00:00Z")],
    )
    _land(
        svc, tmp_path, "shopify", "customers", "sh.jsonl", [shop(9, "test@test.com", "2025-01-01T00:00:00Z")]
    )
    assert svc.find_customer("shopify", "9") != svc.find_customer("salesforce", SF_A)


def test_late_link_merges_two_customers_keeping_history(svc, tmp_path):
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "sf.jsonl",
        [sf(SF_A, "ana@work.example", "2024-01-01T00:00:00Z")],
    )
    svc.ingest(
        "shopify",
        "customers",
        [
            _write(tmp_path, "s1.jsonl", [shop(5, "ana@home.example", "2025-01-01T00:00:00Z")]),
            _write(
                tmp_path,
                "s2.jsonl",
                [shop(5, "ana@home.example", "2025-02-01T00:00:00Z", phone="+49 30 1111111")],
            ),
        ],
    )
    # Two customers so far, and a Zendesk record that joins the shop customer by email.
    _land(svc, tmp_path, "zendesk", "users", "z1.jsonl", [zd(42, "ana@home.example", "2025-03-01T00:00:00Z")])
    shop_customer = svc.find_customer("shopify", "5")
    crm_customer = svc.find_customer("salesforce", SF_A)
    assert shop_customer != crm_customer
    assert svc.find_customer("zendesk", "42") == shop_customer
    versions_before = [
        r for r in svc.warehouse.graph.relationships().to_pylist() if r["rel_type"] != SAME_AS_REL
    ]

    # The agent fills in the Salesforce id: the two customers are one person.
    _land(
        svc,
        tmp_path,
        "zendesk",
        "users",
        "z2.jsonl",
        [zd(42, "ana@home.example", "2025-04-01T00:00:00Z", SF_A)],
    )
    survivor = svc.find_customer("zendesk", "42")
    assert survivor == crm_customer == svc.find_customer("shopify", "5")
    # The merged-away customer id still resolves, to the survivor's profile.
    assert svc.profile(shop_customer)["customer_id"] == survivor
    links = _same_as(svc)
    assert (shop_customer, survivor) in links
    assert all(target == survivor for _, target in links) and len(links) == 2
    # Every attribute version of both customers is still there (nothing re-keyed).
    after = [r for r in svc.warehouse.graph.relationships().to_pylist() if r["rel_type"] != SAME_AS_REL]
    shop_phone = [r for r in after if r["rel_type"] == "HAS_PHONE" and r["source_system"] == "shopify"]
    assert len(shop_phone) == 2 and sum(r["is_current"] for r in shop_phone) == 1
    assert len(after) >= len(versions_before)
    assert svc.customer_profiles(2).num_rows == 1
    explained = svc.explain(shop_customer, "phone").as_dict()
    assert explained["customer_id"] == survivor
    assert {loser["source_system"] for loser in explained["losers"]} | {
        explained["winner"]["source_system"]
    } == {
        "salesforce",
        "shopify",
    }

    # The agent clears the Salesforce id again: identity remembers the link (SPEC §8), so
    # the customer stays whole; only an operator's decision splits it.
    _land(svc, tmp_path, "zendesk", "users", "z3.jsonl", [zd(42, "ana@home.example", "2025-05-01T00:00:00Z")])
    assert svc.find_customer("shopify", "5") == svc.find_customer("salesforce", SF_A) == crm_customer
    assert svc.customer_profiles(1).num_rows == 1


def _world(folder: Path) -> list[tuple[str, str, Path]]:
    return [
        (
            "salesforce",
            "Contact",
            _write(folder, "sf.jsonl", [sf(SF_A, "a@x.example", "2024-05-01T00:00:00Z")]),
        ),
        (
            "shopify",
            "customers",
            _write(folder, "sh.jsonl", [shop(1, "b@x.example", "2023-01-01T00:00:00Z")]),
        ),
        (
            "zendesk",
            "users",
            _write(
                folder,
                "zd.jsonl",
                [
                    zd(7, "b@x.example", "2025-01-01T00:00:00Z", SF_A),
                    zd(8, "c@x.example", "2025-01-01T00:00:00Z"),
                ],
            ),
        ),
        (
            "shopify",
            "customers",
            _write(folder, "sh2.jsonl", [shop(2, "c@x.example", "2025-02-01T00:00:00Z")]),
        ),
    ]


def _snapshot(svc: AagService) -> tuple[Any, ...]:
    ident = sorted(tuple(sorted(r.items())) for r in svc.identity_map().to_pylist())
    profiles = sorted(tuple(sorted(r.items())) for r in svc.customer_profiles(2).to_pylist())
    return ident, profiles, sorted(_same_as(svc))


def test_identity_is_stable_across_rebuilds_and_batch_orders(tmp_path):
    world = _world(tmp_path / "in")
    snapshots = []
    for n, order in enumerate(list(permutations(range(len(world))))[::6]):
        service = AagService(str(tmp_path / f"wh{n}"))
        service.init()
        for i in order:
            system, obj, path = world[i]
            service.ingest(system, obj, [path])
        snapshots.append(_snapshot(service))
    assert all(s == snapshots[0] for s in snapshots[1:])
    ident, profiles, links = snapshots[0]
    customer = {dict(r)["source_record_id"]: dict(r)["customer_id"] for r in ident}
    # SF joins Shopify 1 through Zendesk 7 (same_as + email); Zendesk 8 and Shopify 2 share c@.
    assert customer[SF_A] == customer["7"] == customer["1"] != customer["8"] == customer["2"]
    assert len(profiles) == 2 and len(links) == 3


def test_erasure_covers_every_record_of_the_customer(svc, tmp_path):
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "sf.jsonl",
        [sf(SF_A, "ana@x.example", "2024-01-01T00:00:00Z")],
    )
    _land(
        svc, tmp_path, "shopify", "customers", "sh.jsonl", [shop(3, "ana@x.example", "2025-01-01T00:00:00Z")]
    )
    _land(
        svc,
        tmp_path,
        "shopify",
        "customers",
        "other.jsonl",
        [shop(4, "bo@x.example", "2025-01-01T00:00:00Z")],
    )
    customer = svc.find_customer("shopify", "3")
    members = set(svc.members(customer))
    assert len(members) == 2
    result = svc.erase(customer)
    assert result["source_records"] == 2
    rel = svc.warehouse.graph.relationships().to_pylist()
    assert not [r for r in rel if r["source_node_id"] in members or r["target_node_id"] in members]
    values = {n["value"] for n in svc.warehouse.graph.nodes().to_pylist()}
    assert "ana@x.example" not in values and "bo@x.example" in values
    assert [r["source_record_id"] for r in svc.identity_map().to_pylist()] == ["4"]


# -- identity with memory (SPEC §8) ------------------------------------------------------


def test_an_email_change_in_the_shop_keeps_the_record_with_its_customer(svc, tmp_path):
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "sf.jsonl",
        [sf(SF_A, "ana@old.example", "2024-01-01T00:00:00Z")],
    )
    _land(
        svc,
        tmp_path,
        "shopify",
        "customers",
        "s1.jsonl",
        [shop(5, "ana@old.example", "2025-01-01T00:00:00Z")],
    )
    customer = svc.find_customer("salesforce", SF_A)
    assert svc.find_customer("shopify", "5") == customer
    # The customer changes the address in the shop: the CRM still has the old one.
    _land(
        svc,
        tmp_path,
        "shopify",
        "customers",
        "s2.jsonl",
        [shop(5, "ana@new.example", "2025-06-01T00:00:00Z")],
    )
    assert svc.find_customer("shopify", "5") == customer
    assert svc.members(customer) == [customer, svc.members(customer)[1]] and len(svc.members(customer)) == 2
    profile = svc.profile(customer)
    # The shop's change is the latest change of the field, so it wins.
    assert (profile["email"], profile["email_source"]) == ("ana@new.example", "shopify")
    assert svc.customer_profiles(1).num_rows == 1


def test_a_crm_edit_of_an_email_other_systems_still_hold_splits_nobody(svc, tmp_path):
    _land(svc, tmp_path, "zendesk", "users", "z.jsonl", [zd(9, "bo@x.example", "2024-01-01T00:00:00Z")])
    _land(svc, tmp_path, "shopify", "customers", "s.jsonl", [shop(3, "bo@x.example", "2024-02-01T00:00:00Z")])
    _land(
        svc, tmp_path, "salesforce", "Contact", "c1.jsonl", [sf(SF_A, "bo@x.example", "2024-03-01T00:00:00Z")]
    )
    customer = svc.find_customer("zendesk", "9")
    assert len(svc.members(customer)) == 3
    # A CRM user edits the shared address; the desk and the shop still hold the old one.
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "c2.jsonl",
        [sf(SF_A, "bo@work.example", "2025-03-01T00:00:00Z")],
    )
    assert {svc.find_customer(*r) for r in (("zendesk", "9"), ("shopify", "3"), ("salesforce", SF_A))} == {
        customer
    }
    assert svc.profile(customer)["email"] == "bo@work.example"


def test_link_ends_when_a_record_is_deleted_in_its_source(svc, tmp_path):
    _land(
        svc, tmp_path, "salesforce", "Contact", "c1.jsonl", [sf(SF_A, "cy@x.example", "2024-01-01T00:00:00Z")]
    )
    _land(
        svc, tmp_path, "shopify", "customers", "s1.jsonl", [shop(4, "cy@x.example", "2025-01-01T00:00:00Z")]
    )
    crm = svc.find_customer("salesforce", SF_A)
    assert svc.find_customer("shopify", "4") == crm
    # The CRM deletes its contact: memory does not keep a deleted record in the customer.
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "c2.jsonl",
        [sf(SF_A, "cy@x.example", "2025-02-01T00:00:00Z", IsDeleted=True)],
    )
    shop_customer = svc.find_customer("shopify", "4")
    assert shop_customer != crm
    assert svc.members(shop_customer) == [shop_customer]
    assert _same_as(svc) == set()


def test_link_ends_when_a_value_was_held_by_too_many_records_over_time(svc, tmp_path):
    family = "family@x.example"
    _land(svc, tmp_path, "salesforce", "Contact", "c.jsonl", [sf(SF_A, family, "2024-01-01T00:00:00Z")])
    _land(svc, tmp_path, "shopify", "customers", "a.jsonl", [shop(1, family, "2024-02-01T00:00:00Z")])
    assert svc.find_customer("shopify", "1") == svc.find_customer("salesforce", SF_A)
    # Two more shop records use the address, each at a different time, moving on after:
    # never more than two at once, but three shop records held it, so it links nobody.
    svc.ingest(
        "shopify",
        "customers",
        [
            _write(tmp_path, "b.jsonl", [shop(1, "one@x.example", "2024-03-01T00:00:00Z")]),
            _write(tmp_path, "c2.jsonl", [shop(2, family, "2024-04-01T00:00:00Z")]),
            _write(tmp_path, "d.jsonl", [shop(2, "two@x.example", "2024-05-01T00:00:00Z")]),
            _write(tmp_path, "e.jsonl", [shop(3, family, "2024-06-01T00:00:00Z")]),
        ],
    )
    ids = {svc.find_customer("shopify", str(i)) for i in (1, 2, 3)} | {svc.find_customer("salesforce", SF_A)}
    assert len(ids) == 4
    assert _same_as(svc) == set()


def _aag(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "aag", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_link_ends_by_an_operator_unlink_and_link_undo_round_trips(tmp_path):
    wh = str(tmp_path / "wh")
    svc = AagService(wh)
    svc.init()
    _land(
        svc, tmp_path, "salesforce", "Contact", "c.jsonl", [sf(SF_A, "mum@x.example", "2024-01-01T00:00:00Z")]
    )
    _land(
        svc, tmp_path, "shopify", "customers", "s.jsonl", [shop(8, "mum@x.example", "2025-01-01T00:00:00Z")]
    )
    _land(svc, tmp_path, "zendesk", "users", "z.jsonl", [zd(5, "kid@x.example", "2025-01-01T00:00:00Z")])
    crm = svc.find_customer("salesforce", SF_A)
    assert svc.find_customer("shopify", "8") == crm
    crm_rec, shop_rec, desk_rec = f"salesforce:Contact:{SF_A}", "shopify:customers:8", "zendesk:users:5"

    # A family mailbox glued mother and son: the operator keeps them apart.
    _aag(
        "identity", "unlink", "--record", shop_rec, "--record", crm_rec, "--note", "family mailbox", "-w", wh
    )
    svc = AagService(wh)
    son = svc.find_customer("shopify", "8")
    assert son != crm and svc.members(crm) == [crm]
    explained = json.loads(_aag("explain", "--customer", crm, "--attribute", "email", "--json", "-w", wh))
    assert any(
        "kept apart from" in s and "by an operator on" in s and "family mailbox" in s
        for s in explained["identity"]
    )
    # Re-ingesting (a new batch of either record) applies the decision again.
    _land(
        svc, tmp_path, "shopify", "customers", "s2.jsonl", [shop(8, "mum@x.example", "2025-02-01T00:00:00Z")]
    )
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "c2.jsonl",
        [sf(SF_A, "mum@x.example", "2025-03-01T00:00:00Z")],
    )
    assert svc.find_customer("shopify", "8") != svc.find_customer("salesforce", SF_A)

    # Undo: the shared address joins them again.
    _aag("identity", "undo", "--record", crm_rec, "--record", shop_rec, "-w", wh)
    svc = AagService(wh)
    assert svc.find_customer("shopify", "8") == svc.find_customer("salesforce", SF_A) == crm
    assert svc.explain(crm, "email").identity == []

    # Link: the desk user shares nothing with the son, but the operator knows it is him.
    out = json.loads(_aag("identity", "link", "--record", desk_rec, "--record", shop_rec, "--json", "-w", wh))
    assert out["action"] == "link"
    svc = AagService(wh)
    assert svc.find_customer("zendesk", "5") == crm
    assert "linked to" in svc.explain(crm, "email").identity[0]
    _aag("identity", "undo", "--record", desk_rec, "--record", shop_rec, "-w", wh)
    assert AagService(wh).find_customer("zendesk", "5") != crm

    # The file is the audit trail: four decisions, in order.
    lines = (tmp_path / "wh" / "config" / "identity_overrides.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["unlink", "undo", "link", "undo"]


def test_identity_decisions_reject_bad_records_with_one_line(tmp_path):
    wh = str(tmp_path / "wh")
    svc = AagService(wh)
    svc.init()
    _land(
        svc, tmp_path, "salesforce", "Contact", "c.jsonl", [sf(SF_A, "x@x.example", "2024-01-01T00:00:00Z")]
    )
    for records, message in (
        (["salesforce:Contact:" + SF_A], "exactly two records"),
        (["salesforce:Contact:" + SF_A, "shopify:customers:99"], "in the graph"),
        (["salesforce:Contact:" + SF_A, "nowhere:thing:1"], "unknown source object"),
        (["salesforce:Contact:" + SF_A, "just-an-id"], "expected SOURCE:OBJECT:ID"),
    ):
        args = [a for r in records for a in ("--record", r)]
        done = subprocess.run(
            [sys.executable, "-m", "aag", "identity", "unlink", *args, "-w", wh],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_unlink_splits_the_first_record_off_the_whole_customer_of_the_second(svc, tmp_path):
    # The mother's CRM contact and desk user, and her son's shop account (seen between
    # them), all on the family mailbox.
    _land(
        svc,
        tmp_path,
        "salesforce",
        "Contact",
        "c.jsonl",
        [sf(SF_A, "home@x.example", "2024-01-01T00:00:00Z")],
    )
    _land(
        svc, tmp_path, "shopify", "customers", "s.jsonl", [shop(8, "home@x.example", "2025-01-01T00:00:00Z")]
    )
    _land(svc, tmp_path, "zendesk", "users", "z.jsonl", [zd(5, "home@x.example", "2025-03-01T00:00:00Z")])
    mum = svc.find_customer("salesforce", SF_A)
    assert len(svc.members(mum)) == 3
    out = svc.decide_identity("unlink", ["shopify:customers:8", f"salesforce:Contact:{SF_A}"], "son")
    assert sorted(p[1] for p in out["pairs"]) == sorted([f"salesforce:Contact:{SF_A}", "zendesk:users:5"])
    assert svc.find_customer("zendesk", "5") == mum != svc.find_customer("shopify", "8")
    assert svc.records_of(mum) == [f"salesforce:Contact:{SF_A}", "zendesk:users:5"]
    # Undo withdraws the whole decision, both pairs.
    svc.decide_identity("undo", ["shopify:customers:8", f"salesforce:Contact:{SF_A}"])
    assert svc.identity_decisions() == []
    assert svc.find_customer("shopify", "8") == mum


def test_split_apart_keeps_the_rest_together_when_the_kept_apart_record_is_seen_first():
    from aag.identity.overrides import split_apart

    # The son's account (rank 1) was seen before the mother's three records on the mailbox.
    links = [("son", "mail"), ("crm", "mail"), ("erp", "mail"), ("shop", "mail"), ("crm", "rec")]
    links += [("app", "rec")]
    rank = {"son": 1, "crm": 2, "erp": 3, "shop": 4, "app": 5}
    apart = {(min("son", r), max("son", r)) for r in ("crm", "erp", "shop", "app")}
    labels = split_apart(links, rank, apart)
    assert labels["son"] == 1
    assert labels["crm"] == labels["erp"] == labels["shop"] == labels["app"] == 2


def test_a_record_created_and_deleted_within_one_batch_links_nothing(svc, tmp_path):
    dup = "0035g00000IdentDUP"
    rows = [
        sf(SF_A, "eve@x.example", "2024-01-01T00:00:00Z"),
        sf(dup, "eve@x.example", "2024-02-01T00:00:00Z"),
        sf(dup, "eve@x.example", "2024-03-01T00:00:00Z", IsDeleted=True),
    ]
    svc.ingest("salesforce", "Contact", [_write(tmp_path, "c.jsonl", rows)])
    assert _same_as(svc) == set()
    assert svc.members(svc.find_customer("salesforce", SF_A)) == [svc.find_customer("salesforce", SF_A)]
