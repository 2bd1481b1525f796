"""Survivorship rules per attribute (``survivorship.csv``) on both engines and in dbt.

* Each strategy against a plain-Python model of it, on DuckDB and Spark, whatever the
  order of the rows (hypothesis draws the candidates, the rule and the order).
* One warehouse with a config using every strategy, built with ``aag build``: every
  gold cell equals the Python winner, and every strategy changes something.
* ``explain`` names the rule that decided and why each loser lost under it.
* A mistake in the file is a one-line ``ConfigError`` at load, ``aag init`` and
  ``aag build``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag import gold
from aag.config import (
    PRIORITY_FILE,
    REGISTRY_FILE,
    STRATEGIES,
    SURVIVORSHIP_FILE,
    Config,
    default_config_dir,
    load_config,
)
from aag.demo import run_world
from aag.errors import ConfigError
from aag.resolution import (
    CUSTOMER_ATTRIBUTES,
    PLACEHOLDER_VALUES,
    STRATEGY_KEYS,
    WINNER_ORDER,
    order_by,
    profiles,
)
from aag.service import AagService

REPO = Path(__file__).resolve().parents[1]
HEADER = "attribute,strategy,source_order,allowed_sources,description\n"
SOURCES = ("salesforce", "sap", "shopify", "zendesk", "segment")


def _config_dir(folder: Path, rules: str) -> Path:
    """A config folder: the packaged registry and priorities, and these survivorship rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (REGISTRY_FILE, PRIORITY_FILE):
        shutil.copyfile(default_config_dir() / name, folder / name)
    (folder / SURVIVORSHIP_FILE).write_text(HEADER + rules, encoding="utf-8")
    return folder


# -- one description, rendered by both ---------------------------------------------------


def test_the_macro_renders_the_same_strategy_keys_and_placeholders_as_python():
    macro = (REPO / "dbt" / "macros" / "resolve_winner.sql").read_text()
    block = re.search(r"set strategy_keys = \{(.*?)\}", macro, re.S)
    assert block
    dbt_keys = dict(re.findall(r"'(\w+)': (none|'[^']*')", block.group(1)))
    assert list(dbt_keys) == list(STRATEGY_KEYS) == list(STRATEGIES)
    for strategy, key in STRATEGY_KEYS.items():
        assert dbt_keys[strategy] == ("none" if key is None else f"'{key.lower()}'")
    listed = re.search(r"set placeholder_values = \[(.*?)\]", macro, re.S)
    assert listed and tuple(re.findall(r"'([^']*)'", listed.group(1))) == PLACEHOLDER_VALUES
    # The v3 contract accepts exactly these strategies in its <attr>_rule columns.
    contract = (REPO / "dbt" / "models" / "gold" / "customer_profile.yml").read_text()
    accepted = re.search(r"values: &strategies \[(.*?)\]", contract)
    assert accepted and re.findall(r"'(\w+)'", accepted.group(1)) == list(STRATEGIES)
    # The Python ordering is the allowed flag, one key per strategy, then the latest rule.
    keys = order_by().split(", ")
    assert keys[0] == "allowed DESC NULLS LAST"
    assert keys[-5:] == [f"{k.strip()} NULLS LAST" for k in WINNER_ORDER.split(",")]
    assert len(keys) == 1 + sum(1 for k in STRATEGY_KEYS.values() if k) + 5


# -- each strategy against a model, in any order, on both engines -------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
VALUES = ("+4930111", "+4930222", "+4930333", "n/a")
CUSTOMER = "cust-0"


def _model(
    cands: list[dict[str, Any]],
    strategy: str,
    order: tuple[str, ...],
    allowed: tuple[str, ...],
    prio: dict[str, int],
) -> tuple[str | None, str | None]:
    """The winner (value, source) the rule picks, written plainly from its description."""
    pool = [c for c in cands if not allowed or c["source"] in allowed]
    if not pool:
        return None, None
    holders = Counter(c["value"] for c in pool)

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        first: tuple[Any, ...] = ()
        if strategy == "source_order":
            first = (order.index(c["source"]) if c["source"] in order else len(order),)
        elif strategy == "most_frequent":
            first = (-holders[c["value"]],)
        elif strategy == "oldest":
            first = (c["day"],)
        elif strategy == "latest_non_empty":
            first = (c["value"].strip().lower() in PLACEHOLDER_VALUES,)
        rest = (-c["day"], -c["confidence"], prio.get(c["source"], 10**6), c["source"], "v:" + c["value"])
        return first + rest

    best = min(pool, key=key)
    return best["value"], best["source"]


def _graph(cands: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Edges and nodes of one customer: record i holds candidate i; records 1.. are members."""
    edges = []
    for i, c in enumerate(cands):
        record = f"rec-{i}" if i else CUSTOMER
        edges.append(
            {
                "source_node_id": record,
                "target_node_id": "v:" + c["value"],
                "rel_type": "HAS_PHONE",
                "updated_at": T0 + timedelta(days=c["day"]),
                "confidence": c["confidence"],
                "is_current": True,
                "source_system": c["source"],
                "source_event_id": f"e{i}",
            }
        )
        if i:
            edges.append({**edges[-1], "target_node_id": CUSTOMER, "rel_type": "SAME_AS"})
    schema = pa.schema(
        [
            ("source_node_id", pa.string()),
            ("target_node_id", pa.string()),
            ("rel_type", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
            ("confidence", pa.float32()),
            ("is_current", pa.bool_()),
            ("source_system", pa.string()),
            ("source_event_id", pa.string()),
        ]
    )
    ids = sorted({"v:" + c["value"] for c in cands})
    nodes = pa.table({"node_id": ids, "value": [i[2:] for i in ids]})
    return pa.Table.from_pylist(edges, schema=schema), nodes, pa.table({"node_id": [CUSTOMER]})


candidates_st = st.lists(
    st.fixed_dictionaries(
        {
            "source": st.sampled_from(SOURCES),
            "value": st.sampled_from(VALUES),
            "day": st.integers(0, 3),  # few days: ties happen
            "confidence": st.sampled_from((0.5, 1.0)),
        }
    ),
    min_size=1,
    max_size=7,
)
_CONFIGS: dict[str, Config] = {}


def _config(tmp: Path, rules: str) -> Config:
    if rules not in _CONFIGS:
        _CONFIGS[rules] = load_config(_config_dir(tmp / f"c{len(_CONFIGS)}", rules))
    return _CONFIGS[rules]


def _check(engine, tmp: Path, strategy: str, cands: list[dict[str, Any]], data) -> None:
    order = tuple(data.draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3, unique=True)))
    allowed = tuple(data.draw(st.lists(st.sampled_from(SOURCES), max_size=3, unique=True)))
    rules = f"phone,{strategy},{'|'.join(order) if strategy == 'source_order' else ''},{'|'.join(allowed)},\n"
    config = _config(tmp, rules)
    want = _model(cands, strategy, order, allowed, config.priorities)
    shuffled = data.draw(st.permutations(cands))
    for rows in (cands, shuffled):
        row = profiles(engine, *_graph(rows), config, 2).to_pylist()[0]
        got = (row["phone"], row["phone_source"])
        assert got == want, (strategy, rows)


_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(_SETTINGS, max_examples=40)
@given(cands=candidates_st, data=st.data())
def test_each_strategy_picks_the_model_winner_in_any_order_duckdb(
    duckdb_engine, tmp_path_factory, strategy, cands, data
):
    _check(duckdb_engine, tmp_path_factory.getbasetemp(), strategy, cands, data)


# The same SQL through sqlglot on Spark; few examples, each query costs seconds there.
@pytest.mark.spark
@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(_SETTINGS, max_examples=2)
@given(cands=candidates_st, data=st.data())
def test_each_strategy_picks_the_model_winner_in_any_order_spark(
    spark_engine, tmp_path_factory, strategy, cands, data
):
    _check(spark_engine, tmp_path_factory.getbasetemp(), strategy, cands, data)


# -- dbt and Python with a config that uses every strategy --------------------------------

MIXED = (
    "full_name,source_order,sap|segment,,Legal name: the ERP's customer master first\n"
    "phone,latest,,salesforce|sap,Only systems whose agents verify numbers\n"
    "email_marketing_consent,latest,,,Consent follows the latest decision anywhere\n"
    "first_name,most_frequent,,,What most systems call the customer\n"
    "last_name,most_frequent,,,\n"
    "street,oldest,,,First address on file\n"
    "city,latest_non_empty,,,Typed placeholders do not win\n"
)
PLACEHOLDER_CONTACT = "0035g00000PlaceAAA"
FREQUENT_CONTACT = "0035g00000FreqAAAA"
LEGAL_ZENDESK_USER = 90001


def _jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _stories(svc: AagService, folder: Path) -> None:
    """One customer per strategy whose winner the strategy changes (the world adds more)."""
    batches: list[tuple[str, str, list[dict[str, object]]]] = [
        # city, latest_non_empty: the CRM typed "N/A" after the shop had the real city.
        (
            "shopify",
            "customers",
            [
                {
                    "id": 5151,
                    "email": "pia@example.com",
                    "default_address_city": "Leipzig",
                    "updated_at": "2025-01-01T00:00:00Z",
                }
            ],
        ),
        (
            "salesforce",
            "Contact",
            [
                {
                    "Id": PLACEHOLDER_CONTACT,
                    "Email": "pia@example.com",
                    "MailingCity": "N/A",
                    "LastModifiedDate": "2025-02-01T00:00:00Z",
                    "IsDeleted": False,
                }
            ],
        ),
        # first_name, most_frequent: CRM and shop say Katharina, the app's latest call Kathi.
        (
            "salesforce",
            "Contact",
            [
                {
                    "Id": FREQUENT_CONTACT,
                    "FirstName": "Katharina",
                    "Email": "kat@example.com",
                    "LastModifiedDate": "2024-01-01T00:00:00Z",
                    "IsDeleted": False,
                }
            ],
        ),
        (
            "shopify",
            "customers",
            [
                {
                    "id": 5252,
                    "email": "kat@example.com",
                    "first_name": "Katharina",
                    "updated_at": "2024-02-01T00:00:00Z",
                }
            ],
        ),
        (
            "segment",
            "identifies",
            [
                {
                    "message_id": "m-kat-1",
                    "user_id": FREQUENT_CONTACT,
                    "timestamp": "2025-01-01T00:00:00Z",
                    "traits": {"firstName": "Kathi"},
                }
            ],
        ),
        # full_name, source_order sap|segment: the ERP's legal name, Zendesk's later nickname.
        (
            "sap",
            "ADR6",
            [
                {
                    "ADDRNUMBER": "A900001",
                    "PERSNUMBER": "",
                    "CONSNUMBER": "001",
                    "SMTP_ADDR": "lena@example.com",
                    "FLGDEFAULT": "X",
                    "DATE_FROM": "20000101",
                }
            ],
        ),
        (
            "sap",
            "KNA1",
            [
                {
                    "KUNNR": "0000900001",
                    "NAME1": "Lena",
                    "NAME2": "Vogel-Schmidt",
                    "ADRNR": "A900001",
                    "ERDAT": "20240101",
                    "LAEDA": "20240101",
                    "LOEVM": "",
                }
            ],
        ),
        (
            "zendesk",
            "users",
            [
                {
                    "id": LEGAL_ZENDESK_USER,
                    "name": "Lena V.",
                    "email": "lena@example.com",
                    "created_at": "2025-06-01T00:00:00Z",
                    "updated_at": "2025-06-01T00:00:00Z",
                }
            ],
        ),
    ]
    for n, (system, obj, rows) in enumerate(batches):
        svc.ingest(system, obj, [_jsonl(folder / f"story{n}.jsonl", rows)])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> AagService:
    root = tmp_path_factory.mktemp("surv")
    config = _config_dir(root / "cfg", MIXED)
    svc = AagService(str(root / "wh"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AAG_CONFIG_DIR", str(config))
        svc.init()  # copies the config into the warehouse
    (root / "in").mkdir()
    _stories(svc, root / "in")
    run_world(svc, root / "in" / "world", 80)
    svc.build()
    return svc


def _gold(svc: AagService, model: str) -> pa.Table:
    return pq.read_table(gold.gold_file(svc.warehouse, model))


@pytest.fixture(scope="module")
def latest_profiles(mixed) -> dict[str, dict[str, Any]]:
    """The same graph's profiles under the packaged config (every attribute latest)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AAG_CONFIG_DIR", str(default_config_dir()))
        table = AagService(mixed.warehouse.uri).customer_profiles(2)
    return {r["customer_id"]: r for r in table.to_pylist()}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_gold_equals_the_python_winner_in_every_cell_with_every_strategy(mixed, version):
    python = mixed.customer_profiles(version)
    dbt = _gold(mixed, f"customer_profile_v{version}")
    assert python.num_rows > 80
    assert dbt.schema.equals(python.schema)
    for got, want in zip(dbt.to_pylist(), python.to_pylist(), strict=True):
        assert got == want
    assert (mixed.warehouse.config_dir / SURVIVORSHIP_FILE).read_text() == HEADER + MIXED


def test_profile_v3_names_the_rule_that_ranked_each_winner(mixed):
    configured = {row.split(",")[0]: row.split(",")[1] for row in MIXED.strip().splitlines() if row}
    seen: Counter[str | None] = Counter()
    for row in _gold(mixed, "customer_profile_v3").to_pylist():
        for attr in CUSTOMER_ATTRIBUTES:
            want = configured.get(attr, "latest") if row[attr] is not None else None
            assert row[f"{attr}_rule"] == want, (row["customer_id"], attr)
            seen[want] += 1
    assert set(seen) - {None} == set(STRATEGIES), seen


def test_every_strategy_of_the_mixed_config_changes_some_cells(mixed, latest_profiles):
    rows = mixed.customer_profiles(2).to_pylist()
    changed: Counter[str] = Counter()
    for row in rows:
        before = latest_profiles[row["customer_id"]]
        for attr in ("full_name", "phone", "first_name", "last_name", "street", "city"):
            if row[attr] != before[attr]:
                changed[attr] += 1
        # Phone: never from a source outside the allowed list.
        assert row["phone_source"] in (None, "salesforce", "sap")
        assert row["email_marketing_consent"] == before["email_marketing_consent"]
    assert {a for a, n in changed.items() if n} == {
        "full_name",
        "phone",
        "first_name",
        "last_name",
        "street",
        "city",
    }, changed
    pia = mixed.find_customer("salesforce", PLACEHOLDER_CONTACT)
    assert latest_profiles[pia]["city"] == "N/A"
    assert next(r for r in rows if r["customer_id"] == pia)["city"] == "Leipzig"


def test_explain_names_source_order_and_why_each_loser_lost(mixed, latest_profiles):
    lena = mixed.find_customer("zendesk", str(LEGAL_ZENDESK_USER))
    assert latest_profiles[lena]["full_name"] == "Lena V."
    why = mixed.explain(lena, "full_name").as_dict()
    assert (why["strategy"], why["decided_by"]) == ("source_order", "source_order")
    assert why["rule"].startswith("source order sap, segment: the value of the first listed source")
    assert (why["winner"]["value"], why["winner"]["source_system"]) == ("Lena Vogel-Schmidt", "sap")
    assert why["winner"]["why_won"] == "ranked first by the rule (source_order; decided by source_order)"
    [loser] = why["losers"]
    assert (loser["value"], loser["kind"]) == ("Lena V.", "later_in_source_order")
    assert (
        loser["why_lost"]
        == "source order sap, segment: sap holds a value and zendesk is not in the source order"
    )
    assert loser["updated_at"] > why["winner"]["updated_at"]  # `latest` would have chosen it


def test_explain_names_most_frequent_and_counts_the_holders(mixed, latest_profiles):
    kat = mixed.find_customer("salesforce", FREQUENT_CONTACT)
    assert latest_profiles[kat]["first_name"] == "Kathi"
    why = mixed.explain(kat, "first_name").as_dict()
    assert (why["strategy"], why["decided_by"]) == ("most_frequent", "most_frequent")
    assert why["rule"].startswith("most frequent: the value held by the most current source records wins")
    # Of the two holders the later change is the winner row.
    assert (why["winner"]["value"], why["winner"]["source_system"]) == ("Katharina", "shopify")
    kinds = {(x["source_system"], x["kind"]): x["why_lost"] for x in why["losers"]}
    assert kinds == {
        ("salesforce", "agrees"): "agrees with the winner: salesforce holds the same value",
        (
            "segment",
            "less_frequent",
        ): "less frequent: held by 1 current record, the winner by 2 current records",
    }


def test_explain_lists_values_of_sources_that_may_not_supply_the_attribute(mixed):
    for row in mixed.customer_profiles(2).to_pylist():
        why = mixed.explain(row["customer_id"], "phone").as_dict()
        blocked = [x for x in why["losers"] if x["kind"] == "not_allowed"]
        if blocked:
            assert why["rule"].startswith("only values from salesforce, sap can win; latest updated_at")
            assert blocked[0]["why_lost"] == (
                f"{blocked[0]['source_system']} may not supply this attribute (allowed: salesforce, sap)"
            )
            assert why["winner"] is None or why["winner"]["source_system"] in ("salesforce", "sap")
            return
    raise AssertionError("no customer holds a phone from a source that is not allowed")


# -- mistakes in the file -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("phone,newest,,,", r"survivorship.csv line 2: unknown strategy 'newest'; one of: latest, "),
        ("phone_number,latest,,,", r"line 2: unknown attribute 'phone_number'; the registry maps: "),
        ("phone,latest,,sap;salesforce,", r"allowed_sources: 'sap;salesforce' is not a list of source names"),
        ("phone,latest,,sapp,", r"allowed_sources: unknown source 'sapp'; known: "),
        ("full_name,source_order,,,", r"strategy source_order needs a source_order list"),
        ("full_name,oldest,sap,,", r"a source_order list only applies to strategy source_order"),
        ("full_name,source_order,sap||zendesk,,", r"'sap\|\|zendesk' is not a list of source names"),
        ("full_name,source_order,sap|sap,,", r"'sap\|sap' names a source twice"),
        ("phone,latest,,,\nphone,oldest,,,", r"line 3: attribute 'phone' is listed twice"),
    ],
)
def test_mistakes_are_one_line_config_errors(tmp_path, row, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(_config_dir(tmp_path, row + "\n"))
    assert "\n" not in str(caught.value)


def _aag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aag.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_init_and_build_stop_on_a_bad_rule_with_one_line(tmp_path):
    bad = _config_dir(tmp_path / "bad", "phone,newest,,,\n")
    wh = tmp_path / "wh"
    result = _aag("init", "--warehouse", str(wh), env={"AAG_CONFIG_DIR": str(bad)})
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "error: survivorship.csv line 2: unknown strategy 'newest'; one of: latest, source_order, "
        "most_frequent, oldest, latest_non_empty"
    ], result.stderr
    assert [p.name for p in wh.iterdir()] == [".aag.lock"]  # no table, no config copied
    # A warehouse whose own copy goes bad later: build says so before running dbt.
    assert _aag("init", "--warehouse", str(wh), env={}).returncode == 0
    (wh / "config" / SURVIVORSHIP_FILE).write_text(HEADER + "city,oldest,sap,,\n", encoding="utf-8")
    result = _aag("build", "--warehouse", str(wh), env={})
    assert result.returncode != 0
    # Piped, build logs its steps first (see README); the error is its one last line.
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: survivorship.csv line 2: a source_order list only applies to strategy source_order"
    ), result.stderr
    assert not (wh / "gold" / "aag.duckdb").exists()
