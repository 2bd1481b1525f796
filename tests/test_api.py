"""The REST API through a real HTTP client against ``aag serve`` running as a subprocess."""

from __future__ import annotations

import gzip
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aag.demo import DEMO_CONTACT
from aag.service import AagService
from servekit import SRC, demo_warehouse, make_key, running_server

PHONE = "+499876543210"


class Api:
    """The running server, its keys, and the warehouse behind it."""

    def __init__(self, url: str, svc: AagService, keys: dict[str, str]) -> None:
        self.url = url
        self.svc = svc
        self.keys = keys
        self.http = httpx.Client(base_url=url, timeout=60)

    def get(self, path: str, key: str | None = "read", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return self.http.get(path, params=params, headers=headers)

    def post(self, path: str, body: Any, key: str = "ingest", **kwargs: Any) -> httpx.Response:
        headers = {"X-API-Key": self.keys[key], **kwargs.pop("headers", {})}
        if isinstance(body, bytes):
            return self.http.post(path, content=body, headers=headers, **kwargs)
        return self.http.post(path, json=body, headers=headers, **kwargs)

    def wait_for_intake(self, accepted: int, timeout: float = 120) -> dict[str, Any]:
        """Wait until every accepted call was processed (nothing pending, no cut batch)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get("/v1/status").json()["intake"]
            if status["accepted_calls"] >= accepted and status["pending_files"] == 0:
                batches = Path(self.svc.warehouse.uri) / "bronze/_intake/segment/identifies/batches"
                if not list(batches.glob("*.jsonl")):
                    return dict(status)
            assert time.monotonic() < deadline, status
            time.sleep(0.2)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every silver table, ledger and quarantine, sorted (to prove nothing changed)."""
        out = {}
        for name in ("nodes", "relationships", "quarantine", "batches"):
            rows = self.svc.model(name).to_pylist()
            out[name] = sorted(rows, key=repr)
        return out


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("api")
    svc = demo_warehouse(folder / "wh")
    keys = {
        "read": make_key(svc, "reader", "read"),
        "ingest": make_key(svc, "segment-source", "ingest"),
        "erase": make_key(svc, "dpo", "erase,read"),
        "all": make_key(svc, "admin", "read,ingest,erase"),
        "admin": make_key(svc, "data-steward", "admin"),
    }
    args = ("--intake-interval", "0.2", "--gold-refresh", "-1")
    with running_server(svc.warehouse.uri, *args, log=folder / "serve.log") as url:
        api = Api(url, svc, keys)
        yield api
        api.http.close()


@pytest.fixture(scope="module")
def demo_customer(api: Api) -> str:
    return api.svc.find_customer("salesforce", DEMO_CONTACT)


# -- auth -------------------------------------------------------------------------------
def test_no_key_no_data(api: Api, demo_customer: str) -> None:
    for response in (
        api.get(f"/v1/customers/{demo_customer}", key=None),
        api.http.get(f"/v1/customers/{demo_customer}", headers={"Authorization": "Bearer aag_not-a-key"}),
        api.http.get(f"/v1/customers/{demo_customer}", headers={"X-API-Key": ""}),
        api.http.get(f"/v1/customers/{demo_customer}", headers={"Authorization": "Basic !!notbase64"}),
    ):
        assert response.status_code == 401, response.text
        assert response.json() == {"error": "missing or unknown API key"}
        assert PHONE not in response.text


def test_scopes_are_enforced(api: Api, demo_customer: str) -> None:
    denied = api.get(f"/v1/customers/{demo_customer}", key="ingest")
    assert denied.status_code == 403 and "'read' scope" in denied.json()["error"]
    call = {"userId": "u-scope", "traits": {"email": "scope@example.com"}}
    assert api.post("/v1/identify", call, key="read").status_code == 403
    erase = api.http.delete(f"/v1/customers/{demo_customer}", headers={"X-API-Key": api.keys["read"]})
    assert erase.status_code == 403 and "'erase' scope" in erase.json()["error"]
    assert api.get(f"/v1/customers/{demo_customer}").status_code == 200


def test_segment_write_key_as_basic_auth(api: Api) -> None:
    """Segment libraries send the write key as the Basic-auth user name."""
    call = {"userId": "u-basic", "messageId": "basic-1", "traits": {"firstName": "Basil"}}
    response = api.http.post("/v1/identify", json=call, auth=(api.keys["ingest"], ""))
    assert response.status_code == 200 and response.json()["success"] is True
    api.wait_for_intake(response.json()["accepted"])


# -- reads ------------------------------------------------------------------------------
def test_profile_by_customer_id_and_by_source_record(api: Api, demo_customer: str) -> None:
    v2 = api.get(f"/v1/customers/{demo_customer}", version=2).json()
    assert v2["served_from"] == "gold" and v2["gold_built_at"]
    profile = v2["profile"]
    assert profile["customer_id"] == demo_customer
    assert (profile["phone"], profile["phone_source"]) == (PHONE, "zendesk")
    assert profile["phone_updated_at"] == "2026-03-01T09:00:00Z"
    v1 = api.get(f"/v1/customers/{demo_customer}", version=1).json()["profile"]
    assert v1["phone"] == PHONE and "phone_source" not in v1
    # The Salesforce id in its 15-character form names the same record.
    by_record = api.get(f"/v1/sources/salesforce/records/{DEMO_CONTACT[:15]}", version=2).json()
    assert by_record["profile"] == profile
    # Gold and a fresh resolution from silver agree.
    fresh = api.get(f"/v1/customers/{demo_customer}", version=2, fresh="true").json()
    assert fresh["served_from"] == "silver" and fresh["profile"] == profile
    assert api.get(f"/v1/customers/{demo_customer}", version=3).status_code == 422


def test_explain_and_history(api: Api, demo_customer: str) -> None:
    explained = api.get(f"/v1/customers/{demo_customer}/attributes/phone/explain").json()
    assert explained["winner"]["value"] == PHONE
    assert explained["winner"]["source_system"] == "zendesk"
    (loser,) = [x for x in explained["losers"] if x["source_system"] == "salesforce"]
    assert loser["why_lost"].startswith("older: this field last changed in salesforce")
    assert loser["kind"] == "older"
    assert "latest updated_at" in explained["rule"]
    history = api.get(f"/v1/customers/{demo_customer}/attributes/phone/history").json()["history"]
    versions = {(h["source_system"], h["value"], h["is_current"]) for h in history}
    assert ("zendesk", "+491110000000", False) in versions
    assert ("zendesk", PHONE, True) in versions
    missing = api.get(f"/v1/customers/{demo_customer}/attributes/shoe_size/explain")
    assert missing.status_code == 404 and "unknown attribute" in missing.json()["error"]


def test_graph_neighbourhood_reaches_company_and_assets(api: Api, demo_customer: str) -> None:
    one = api.get(f"/v1/entities/{demo_customer}/graph", hops=1).json()
    two = api.get(f"/v1/entities/{demo_customer}/graph", hops=2).json()

    def kinds(g: dict[str, Any]) -> set[str]:
        return {n["node_type"] for n in g["nodes"]}

    assert "company" in kinds(one) and "asset" not in kinds(one)
    assert {"customer", "company", "asset", "phone", "email"} <= kinds(two)
    rels = {e["rel_type"] for e in two["edges"]}
    assert {"WORKS_AT", "OWNED_BY", "HAS_PHONE"} <= rels
    winners = [e for e in two["edges"] if e["winner"] and e["rel_type"] == "HAS_PHONE"]
    phone_nodes = {n["node_id"]: n["value"] for n in two["nodes"]}
    assert [phone_nodes[e["target_node_id"]] for e in winners] == [PHONE]
    # Winners are the customer's own: the company's city edge is not one, even when equal.
    kind_of = {n["node_id"]: n["node_type"] for n in two["nodes"]}
    assert all(kind_of[e["source_node_id"]] == "customer" for e in two["edges"] if e["winner"])
    assert any(
        kind_of[e["source_node_id"]] == "company" and e["rel_type"] == "HAS_CITY" for e in two["edges"]
    )
    assert api.get(f"/v1/entities/{demo_customer}/graph", hops=9).status_code == 422


def test_lookup_by_email_and_phone_is_normalised_and_exact(api: Api, demo_customer: str) -> None:
    assert api.get("/v1/lookup", phone="+49 987 654 3210").json()["customers"] == [demo_customer]
    assert api.get("/v1/lookup", email="  Alex.Example@NewCo.com ").json()["customers"] == [demo_customer]
    assert api.get("/v1/lookup", email="alex.example@newco.co").json()["customers"] == []
    both = api.get("/v1/lookup", email="a@b.c", phone="1")
    assert both.status_code == 400 and "exactly one" in both.json()["error"]


def test_search_bronze_monitor_and_docs(api: Api, demo_customer: str) -> None:
    found = api.get("/v1/search", q=f"salesforce:{DEMO_CONTACT}").json()["results"]
    assert [r["customer_id"] for r in found] == [demo_customer]
    assert api.get("/v1/search", q="alex example").json()["results"][0]["customer_id"] == demo_customer
    rows = api.get(f"/v1/customers/{demo_customer}/bronze").json()["rows"]
    assert {r["source_system"] for r in rows} >= {"salesforce", "zendesk"}
    assert any(r["row"].get("Phone") == "+49 111 000 0000" for r in rows)
    resync = [r for r in rows if r["source_system"] == "salesforce" and r["source_object"] == "Contact"]
    assert {r["record_time_field"] for r in resync} == {"LastModifiedDate"}
    assert "2026-03-01T09:05:00Z" in {r["record_time"] for r in resync}
    report = api.get("/v1/monitor").json()
    assert all(isinstance(r["rows_landed"], int) for r in report["freshness"])
    assert {r["source_system"] for r in report["freshness"]} >= {"salesforce", "zendesk"}
    schema = api.http.get("/openapi.json").json()
    assert "/v1/customers/{customer_id}" in schema["paths"] and "/v1/batch" in schema["paths"]
    assert api.http.get("/docs").status_code == 200


def test_docs_pages_load_only_local_assets(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = api.http.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text and "https://" not in html.text, page
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: '([^']+)'", html.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        for url in urls:
            asset = api.http.get(url)
            assert asset.status_code == 200 and asset.content, url
    assert "/openapi.json" in api.http.get("/redoc").text
    # The browser is told so too: scripts, styles, images and fonts from this server only.
    assert "default-src 'self'" in api.http.get("/redoc").headers["content-security-policy"]


def test_security_headers_and_no_store_on_personal_data(api: Api, demo_customer: str) -> None:
    for path, key in ((f"/v1/customers/{demo_customer}", "read"), ("/", None), ("/docs", None)):
        response = api.get(path, key=key)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store", path
    # Errors carry them too; the page's static files may be cached.
    assert api.get(f"/v1/customers/{demo_customer}", key=None).headers["cache-control"] == "no-store"
    static = api.http.get("/static/explorer.css")
    assert static.headers["x-content-type-options"] == "nosniff"
    assert static.headers.get("cache-control") != "no-store"


def test_status_shows_no_path_of_the_server(api: Api) -> None:
    status = api.get("/v1/status")
    assert status.status_code == 200
    assert status.json()["warehouse"] == "wh"
    location = str(Path(api.svc.warehouse.uri).parent)
    assert location not in status.text and "/bronze/" not in status.text, status.text


def test_serving_beyond_this_machine_warns_of_plain_http(tmp_path: Path, api: Api) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "AAG_WAREHOUSE": api.svc.warehouse.uri}
    command = [sys.executable, "-m", "aag", "serve", "--host", "0.0.0.0", "--port", "0"]
    log = tmp_path / "serve.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=handle)
    try:
        deadline = time.monotonic() + 90
        while "serving " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    warnings = [line for line in log.read_text().splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "plain HTTP" in warnings[0], log.read_text()


# -- hostile requests ---------------------------------------------------------------------
INJECTIONS = [
    "' OR '1'='1",
    "x') OR 1=1 --",
    "'; DROP TABLE relationships; --",
    "../../../../etc/passwd",
    "%00",
    "\\x00",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
]


def test_injection_attempts_in_path_and_query_change_nothing(api: Api) -> None:
    api.wait_for_intake(0)
    before = api.tables()
    for attempt in INJECTIONS:
        quoted = httpx.URL("/").copy_with(path="/v1/customers/" + attempt).raw_path.decode()
        for response in (
            api.http.get(quoted, headers={"X-API-Key": api.keys["read"]}),
            api.get("/v1/lookup", email=attempt),
            api.get("/v1/lookup", phone=attempt),
            api.get("/v1/search", q=attempt),
            api.get(f"/v1/sources/salesforce/records/{attempt}".replace("/../", "/x/")),
            api.get(f"/v1/entities/{attempt}/graph"),
        ):
            assert response.status_code in (200, 400, 404, 422), (
                attempt,
                response.status_code,
                response.text,
            )
            assert "error" in response.json() or response.json().get("results") == []
            assert "Traceback" not in response.text
    assert api.http.get("/static/../../../../etc/passwd").status_code == 404
    assert api.get("/v1/customers/" + "a" * 300).status_code == 422
    assert api.tables() == before


def test_malformed_bodies_are_refused_whole(api: Api) -> None:
    api.wait_for_intake(0)
    before = api.get("/v1/status").json()["intake"]["accepted_calls"]
    deep: dict[str, Any] = {"v": 1}
    for _ in range(200):
        deep = {"n": deep}
    cases = [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"traits": {"email": "x@example.com"}}).encode(), "userId or anonymousId"),
        (json.dumps({"userId": "u", "traits": "a string"}).encode(), "traits"),
        (json.dumps({"userId": "u", "timestamp": "2026-03-01T09:00:00"}).encode(), "time zone"),
        (json.dumps({"userId": "u", "timestamp": "yesterday"}).encode(), "timestamp"),
        (json.dumps({"userId": "u", "type": "track"}).encode(), "only identify"),
        (json.dumps({"userId": "u", "traits": deep}).encode(), "nest"),
        (b'{"userId": "u", "traits": {"name": "\\ud800"}}', "lone surrogate (\\ud800)"),
        (b'{"userId": "u-\\udfff", "traits": {}}', "lone surrogate"),
    ]
    for body, message in cases:
        response = api.post("/v1/identify", body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body[:60], response.text)
        assert message in response.json()["error"], (body[:60], response.text)
    # One bad call in a batch: the whole batch is refused, nothing of it lands.
    batch = {
        "batch": [
            {"type": "identify", "userId": "u-half-1", "traits": {"email": "half1@example.com"}},
            {"type": "identify", "userId": "u-half-2", "traits": {"email": "half2@example.com"}},
            {"type": "track", "userId": "u-half-3", "event": "Clicked"},
        ]
    }
    refused = api.post("/v1/batch", batch)
    assert refused.status_code == 400 and refused.json()["error"].startswith("batch.2")
    assert api.post("/v1/batch", {"batch": []}).status_code == 400
    assert api.get("/v1/status").json()["intake"]["accepted_calls"] == before
    assert api.get("/v1/lookup", email="half1@example.com").json()["customers"] == []


def test_oversized_bodies_get_413(api: Api) -> None:
    big = {"userId": "u-big", "traits": {"notes": "x" * 600_000}}
    response = api.post("/v1/identify", big)
    assert response.status_code == 413 and "larger than 512 KB" in response.json()["error"]

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server must count what it reads.
        yield b'{"userId": "u-big", "traits": {"notes": "'
        for _ in range(700):
            yield b"y" * 1024
        yield b'"}}'

    chunked = api.http.post("/v1/identify", content=chunks(), headers={"X-API-Key": api.keys["ingest"]})
    assert chunked.status_code == 413
    bomb = gzip.compress(b'{"userId": "u", "traits": {"a": "' + b"0" * 20_000_000 + b'"}}')
    assert len(bomb) < 100_000
    inflated = api.post("/v1/identify", bomb, headers={"Content-Encoding": "gzip"})
    assert inflated.status_code == 413 and "inflated" in inflated.json()["error"]
    one_call = {"userId": "u-big", "traits": {"notes": "z" * 40_000}}
    assert api.post("/v1/identify", one_call).status_code == 400


# -- intake ---------------------------------------------------------------------------------
def test_identify_lands_and_is_processed_and_a_resent_message_id_is_not_applied_twice(api: Api) -> None:
    call = {
        "type": "identify",
        "userId": "u-intake-1",
        "messageId": "msg-intake-1",
        "timestamp": "2026-04-01T10:00:00Z",
        "traits": {"email": "Intake.One@Example.com", "firstName": "Ina", "phone": "+49 30 1234567"},
    }
    accepted = api.post("/v1/identify", call)
    assert accepted.status_code == 200 and accepted.json() == {"success": True, "accepted": 1}
    status = api.wait_for_intake(accepted.json()["accepted"])
    (customer,) = api.get("/v1/lookup", email="intake.one@example.com").json()["customers"]
    profile = api.get(f"/v1/customers/{customer}").json()
    # Newer than the gold build: answered from silver.
    assert profile["served_from"] == "silver"
    assert profile["profile"]["first_name"] == "Ina"
    assert profile["profile"]["phone_updated_at"] == "2026-04-01T10:00:00Z"
    before = api.tables()
    # The same call again, alone and inside a batch with a new call.
    again = api.post("/v1/identify", call)
    assert again.status_code == 200
    other = {"userId": "u-intake-2", "messageId": "msg-intake-2", "traits": {"lastName": "Zwei"}}
    assert api.post("/v1/batch", {"batch": [call, other, call]}).status_code == 200
    status = api.wait_for_intake(status["accepted_calls"] + 4)
    after = api.tables()
    new_edges = [r for r in after["relationships"] if r not in before["relationships"]]
    # Only the new call's user gained edges (its record identity and its trait).
    assert new_edges and all("intake-2" in r["source_event_id"] for r in new_edges), new_edges
    mine = [
        r
        for r in after["relationships"]
        if r["source_event_id"].startswith("segment:identifies:msg-intake-1")
    ]
    assert len(mine) == len(
        [
            r
            for r in before["relationships"]
            if r["source_event_id"].startswith("segment:identifies:msg-intake-1")
        ]
    )


def test_erasure_needs_the_scope_and_removes_the_customer(api: Api) -> None:
    victim = api.svc.find_customer("salesforce", "0035g00000Other1AA")
    assert api.get(f"/v1/customers/{victim}").json()["served_from"] == "gold"
    in_gold = api.get("/v1/status").json()["gold_customers"]
    erased = api.http.delete(f"/v1/customers/{victim}", headers={"X-API-Key": api.keys["erase"]})
    assert erased.status_code == 200, erased.text
    assert erased.json()["source_records"] >= 1
    # The rest of the gold build keeps serving from memory, without the erased customer.
    assert api.get("/v1/status").json()["gold_customers"] == in_gold - 1
    kept = api.svc.find_customer("salesforce", DEMO_CONTACT)
    assert api.get(f"/v1/customers/{kept}").json()["served_from"] == "gold"
    gone = api.get(f"/v1/customers/{victim}")
    assert gone.status_code == 404 and "no customer" in gone.json()["error"]
    assert api.get("/v1/search", q="salesforce:0035g00000Other1AA").json()["results"] == []
    log = api.svc.warehouse.erasures().to_pylist()
    assert {r["requested_by"] for r in log} == {"api-key:dpo"}
    again = api.http.delete(f"/v1/customers/{victim}", headers={"X-API-Key": api.keys["erase"]})
    assert again.status_code == 404


def test_a_miss_is_answered_from_memory_without_a_silver_read(api: Api, demo_customer: str) -> None:
    def status() -> dict[str, Any]:
        found: dict[str, Any] = api.get("/v1/status").json()
        return found

    # Silver's customers since the build are learnt in the background after a change.
    deadline = time.monotonic() + 30
    while status()["misses_answered_from_memory"] == 0:
        assert api.get(f"/v1/customers/{uuid.uuid4()}").status_code == 404
        assert time.monotonic() < deadline, "no miss was ever answered from memory"
        time.sleep(0.1)
    before = status()
    timings: dict[str, list[float]] = {"hit": [], "miss": []}
    for _ in range(20):
        for kind, customer in (("hit", demo_customer), ("miss", str(uuid.uuid4()))):
            started = time.perf_counter()
            answer = api.get(f"/v1/customers/{customer}")
            timings[kind].append(time.perf_counter() - started)
            assert answer.status_code == (200 if kind == "hit" else 404)
    after = status()
    assert after["profiles_read_from_silver"] == before["profiles_read_from_silver"]
    assert after["misses_answered_from_memory"] == before["misses_answered_from_memory"] + 20
    # For the record (no timed assertion): median milliseconds of a hit and of a miss.
    print({k: round(sorted(v)[len(v) // 2] * 1000, 2) for k, v in timings.items()})


# -- MCP --------------------------------------------------------------------------------------
def test_mcp_tools_answer_profile_and_explain(api: Api, demo_customer: str) -> None:
    """``aag mcp`` over stdio, driven by the MCP SDK's own client."""
    import asyncio
    import os
    import sys

    from mcp import Client, StdioServerParameters
    from mcp.types import TextContent

    from servekit import SRC

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aag", "mcp"],
        env={**os.environ, "PYTHONPATH": str(SRC), "AAG_WAREHOUSE": api.svc.warehouse.uri},
    )

    async def session() -> dict[str, Any]:
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            calls = {
                "found": await client.call_tool("find_customer", {"query": f"salesforce:{DEMO_CONTACT}"}),
                "profile": await client.call_tool("get_profile", {"customer_id": demo_customer}),
                "explain": await client.call_tool(
                    "explain_attribute", {"customer_id": demo_customer, "attribute": "phone"}
                ),
                "missing": await client.call_tool("get_profile", {"customer_id": "no-such-customer"}),
            }
            out = {k: v.structured_content for k, v in calls.items()}
            missing = calls["missing"]
            texts = []
            for c in missing.content:
                assert isinstance(c, TextContent), c
                texts.append(c.text)
            out["missing"] = {"is_error": missing.is_error, "text": texts}
            return {"tools": tools, **out}

    got = asyncio.run(session())
    assert got["tools"] == {"find_customer", "get_profile", "explain_attribute"}
    assert got["found"]["results"][0]["customer_id"] == demo_customer
    assert got["profile"]["profile"]["phone"] == PHONE
    assert got["explain"]["winner"]["source_system"] == "zendesk"
    assert "older" in got["explain"]["losers"][0]["why_lost"]
    assert got["missing"]["is_error"] is True
    assert got["missing"]["text"][0].endswith("no customer 'no-such-customer' in the graph")


def test_mcp_over_raw_stdio_answers_bad_lines_errors_and_record_ids(api: Api, demo_customer: str) -> None:
    """A JSON-RPC conversation line by line, as any MCP host has it with ``aag mcp``."""
    from aag import __version__

    env = {**os.environ, "PYTHONPATH": str(SRC), "AAG_WAREHOUSE": api.svc.warehouse.uri}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aag", "mcp"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(line: str | dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        proc.stdin.flush()

    def answer() -> dict[str, Any]:
        assert proc.stdout is not None
        # One request, one reply line: a server that stays silent fails here, not hangs.
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no reply from aag mcp within 60 s"
        found: dict[str, Any] = json.loads(proc.stdout.readline())
        return found

    def call(n: int, tool: str, **arguments: Any) -> dict[str, Any]:
        send(
            {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )
        reply = answer()
        assert reply["id"] == n, reply
        result: dict[str, Any] = reply["result"]
        return result

    try:
        send('{"jsonrpc": "2.0", "id": 1, "method": "initia')
        bad = answer()
        assert bad["id"] is None and bad["error"]["code"] == -32700, bad
        send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"},
                },
            }
        )
        init = answer()
        assert init["result"]["serverInfo"] == {
            **init["result"]["serverInfo"],
            "name": "aag",
            "version": __version__,
        }
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send('{"no": "json-rpc"}')
        assert answer()["error"]["code"] == -32600
        # A source record id works, as the tool's description says.
        by_record = call(2, "get_profile", customer_id=f"salesforce:{DEMO_CONTACT}")
        assert by_record["isError"] is False
        assert by_record["structuredContent"]["profile"]["customer_id"] == demo_customer
        explained = call(3, "explain_attribute", customer_id=f"salesforce:{DEMO_CONTACT}", attribute="phone")
        assert explained["structuredContent"]["winner"]["source_system"] == "zendesk"
        for n, arguments in enumerate(
            ({"customer_id": "no-such-customer"}, {"customer_id": "salesforce:0035g00000NobodyAA"}), start=4
        ):
            missing = call(n, "get_profile", **arguments)
            assert missing["isError"] is True and " in the graph" in missing["content"][0]["text"], missing
    finally:
        proc.stdin.close()
        proc.wait(30)


# -- identity decisions --------------------------------------------------------------------
def test_identity_decisions_need_the_admin_scope_and_round_trip(api: Api, demo_customer: str) -> None:
    from aag.demo import DEMO_ZENDESK_USER

    contact, desk = f"salesforce:Contact:{DEMO_CONTACT}", f"zendesk:users:{DEMO_ZENDESK_USER}"
    body = {"action": "unlink", "records": [desk, contact], "note": "two people"}
    for key in ("read", "all"):
        assert api.post("/v1/identity/decisions", body, key=key).status_code == 403
        assert api.get("/v1/identity/decisions", key=key).status_code == 403
    for bad in (
        b"[1, 2]",
        b"{not json",
        {"action": "unlink", "records": [desk]},
        {**body, "action": "merge"},
    ):
        answer = api.post("/v1/identity/decisions", bad, key="admin")
        assert answer.status_code == 400, answer.text
        assert "\n" not in answer.json()["error"]
    assert api.svc.find_customer("zendesk", str(DEMO_ZENDESK_USER)) == demo_customer
    done = api.post("/v1/identity/decisions", body, key="admin")
    assert done.status_code == 200, done.text
    apart = api.svc.find_customer("zendesk", str(DEMO_ZENDESK_USER))
    assert apart != demo_customer
    listed = api.get("/v1/identity/decisions", key="admin").json()["decisions"]
    assert len(listed) == 1 and "kept apart from" in listed[0] and "api-key:data-steward" in listed[0]
    explained = api.get(f"/v1/customers/{demo_customer}/attributes/phone/explain").json()
    assert any("kept apart from" in s for s in explained["identity"])
    undone = api.post("/v1/identity/decisions", {**body, "action": "undo"}, key="admin")
    assert undone.status_code == 200, undone.text
    assert api.svc.find_customer("zendesk", str(DEMO_ZENDESK_USER)) == demo_customer
    assert api.get("/v1/identity/decisions", key="admin").json()["decisions"] == []
