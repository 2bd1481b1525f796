import hashlib
import uuid

import pytest

from aag import entity_node_id, value_checksum, value_node_id
from aag.engine import make_engine
from aag.ids import entity_key, entity_node_id_sql, value_node_id_sql
from aag.normalize import InvalidValueError, normalise


def test_value_node_id_is_sha256_of_type_and_value():
    expected = hashlib.sha256(b"email:alex@example.com").hexdigest()
    assert value_node_id("email", "alex@example.com") == expected


def test_value_node_id_is_namespaced_by_type():
    assert value_node_id("email", "x@y.com") != value_node_id("username", "x@y.com")


def test_value_node_id_can_normalise_first():
    assert value_node_id("email", "  Alex@Example.COM ", normalised=False) == value_node_id(
        "email", "alex@example.com"
    )
    assert value_node_id("phone", "+49 30 1234567", normalised=False) == value_node_id(
        "phone", "+49301234567"
    )
    with pytest.raises(ValueError, match="empty"):
        value_node_id("email", "   ", normalised=False)


def test_checksum_is_sha256_of_value():
    assert value_checksum("abc") == hashlib.sha256(b"abc").hexdigest()


def test_entity_ids_are_stable_rfc_uuids():
    a = entity_node_id("customer", "salesforce", "Contact", "003A")
    assert a == entity_node_id("customer", "salesforce", "Contact", "003A")
    assert a != entity_node_id("customer", "salesforce", "Contact", "003B")
    parsed = uuid.UUID(a)
    assert parsed.version == 8
    assert parsed.variant == uuid.RFC_4122


def test_sql_ids_match_python():
    engine = make_engine("local")
    key = entity_key("customer", "zendesk", "users", "9001")
    got = engine.query(
        f"SELECT {entity_node_id_sql(repr(key))} AS e, "
        f"{value_node_id_sql(repr('email'), repr('a@b.co'))} AS v"
    ).to_pylist()[0]
    assert got["e"] == entity_node_id("customer", "zendesk", "users", "9001")
    assert got["v"] == value_node_id("email", "a@b.co")


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ("email", " Alex@Example.COM ", "alex@example.com"),
        ("phone:US", "(415) 555-0100", "+14155550100"),
        ("phone", "+49 (0)30 1234567", "+49301234567"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("country", "Germany", "DE"),
        ("country", "deu", "DE"),
        ("country", "United States", "US"),
        ("country", "uk", "GB"),
        ("text", "  Leopold   str.\t1 ", "Leopold str. 1"),
        ("upper", "sw1a 1aa", "SW1A 1AA"),
        ("bool", "Yes", "true"),
        ("not_bool", "true", "false"),
        ("not_bool", False, "true"),
        ("text", "   ", None),
        ("email", None, None),
        ("url", " HTTPS://www.Acme.example/shop// ", "www.acme.example/shop"),
        ("url", "acme.example", "acme.example"),
        ("sap_flag", "X", "true"),
        ("sap_flag", "", "false"),
        ("sap_flag", None, "false"),
    ],
)
def test_normalisers(spec, raw, expected):
    assert normalise(spec, raw) == expected


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        ("email", "not-an-email"),
        ("phone", "n/a"),
        ("country", "Atlantis"),
        ("bool", "maybe"),
        ("sap_flag", "yes"),
    ],
)
def test_invalid_values_are_rejected_not_guessed(spec, raw):
    with pytest.raises(InvalidValueError):
        normalise(spec, raw)
