"""Control characters (NUL, BEL, DEL, C1) never reach a stored value nor a lookup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from aag.service import AagService
from servekit import make_key, running_server

CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def test_control_characters_are_removed_from_values_and_refused_in_lookups(tmp_path: Path) -> None:
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    row = {
        "Id": "0035g00000CtrlAAAA",
        "Email": "al\u0000ex@example.com",
        "FirstName": "Al\u0007e\u007fx\u0085",
        "LastName": "Mil\u001fler",
        "LastModifiedDate": "2026-01-01T00:00:00Z",
    }
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    report = svc.ingest("salesforce", "Contact", [path])[0]
    assert report.rows_quarantined == 0 and report.fields_rejected == 0, report
    values = {r["node_type"]: r["value"] for r in svc.warehouse.graph.nodes().to_pylist() if r["value"]}
    assert values["email"] == "alex@example.com"
    assert values["first_name"] == "Alex" and values["last_name"] == "Miller"
    assert not any(CONTROL.search(v) for v in values.values())

    key = make_key(svc, "ctrl", "read")
    with (
        running_server(svc.warehouse.uri, "--gold-refresh", "-1", log=tmp_path / "serve.log") as url,
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client,
    ):
        found = client.get("/v1/lookup", params={"email": "alex@example.com"})
        assert found.status_code == 200 and len(found.json()["customers"]) == 1, found.text
        for query in ("/v1/lookup?email=%00@x.de", "/v1/lookup?phone=%2B49%07123", "/v1/search?q=al%00ex"):
            refused = client.get(query)
            assert refused.status_code == 400, (query, refused.status_code, refused.text)
            detail = json.dumps(refused.json())
            assert "control characters" in detail and "\\n" not in detail, detail


def test_the_collapse_shortcut_gives_what_the_full_rewrite_gives_on_both_engines(engine) -> None:
    """``sql_collapse`` skips the rewrite for text it cannot change; the answers must not move."""
    import random

    import pyarrow as pa

    from aag.normalize import CONTROL_REGEX_SQL, collapse_ws, sql_collapse

    pieces = [
        "a",
        "Zé",
        "x.y@z.de",
        " ",
        "  ",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x00",
        "\x07",
        "\x7f",
        "\x85",
        "\xa0",
        "~",
        "ß",
    ]
    rng = random.Random(7)
    texts = [
        "",
        " ",
        "a b",
        " a",
        "a ",
        "a  b",
        *("".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(600)),
    ]
    engine.register("collapse_in", pa.table({"v": texts}))
    full = rf"trim(regexp_replace(regexp_replace(v, '{CONTROL_REGEX_SQL}', '', 'g'), '\s+', ' ', 'g'))"
    rows = engine.query(
        f"SELECT v, {sql_collapse('v')} AS quick, {full} AS full FROM collapse_in"
    ).to_pylist()
    assert len(rows) == len(texts)
    assert [r for r in rows if r["quick"] != r["full"]] == []
    # Where SQL's and Python's white space agree (ASCII), so does the value.
    ascii_rows = [r for r in rows if all(ord(c) < 128 for c in r["v"])]
    assert len(ascii_rows) > 100
    assert [r for r in ascii_rows if r["quick"] != collapse_ws(r["v"])] == []
