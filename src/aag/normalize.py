"""Value normalisation (SPEC §6), once in Python and once as engine-neutral SQL.

Values are normalised before they are hashed into value-node ids, so the same
email typed two ways by two systems becomes one node. The SQL forms are what
the extractors run at scale; the Python forms are the reference the tests hold
the SQL to, and what :func:`aag.ids.value_node_id` uses.

Phone numbers and countries use the field's own libraries (``phonenumbers``,
``pycountry``) rather than hand-written rules. Phones that are already strict
E.164 are recognised in SQL; every other distinct phone string is parsed once
by ``phonenumbers`` (see :func:`phone_e164`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import phonenumbers
import pyarrow as pa
import pycountry

from aag.errors import ConfigError

#: Normalisers a registry row may name, with what they do.
NORMALISERS: dict[str, str] = {
    "email": "trimmed, lower-cased, must look like local@domain",
    "phone": "E.164 via phonenumbers; region from the record's country, else the row's default",
    "country": "ISO 3166-1 alpha-2 via pycountry (accepts alpha-2/3, numeric, names)",
    "text": "whitespace collapsed and trimmed",
    "upper": "whitespace collapsed, trimmed, upper-cased",
    "lower": "whitespace collapsed, trimmed, lower-cased",
    "bool": "true/false from true/false, 1/0, yes/no, y/n, t/f, x",
    "not_bool": "the negation of bool (e.g. an opt-out flag read as a consent)",
    "sap_flag": "SAP indicator: X is true, blank (or missing) is false",
    "url": "trimmed, lower-cased, scheme (https://) and trailing slashes removed",
    "id": "trimmed identifier, case kept",
    "salesforce_id": "Salesforce id (15 or 18 letters and digits); 15-character ids get their "
    "18-character form; anything else is invalid",
}

_WS = re.compile(r"\s+")
#: Control characters (Unicode Cc) but the white space that collapsing turns into a space
#: (tab, line feed, form feed, carriage return). They are never part of a customer
#: attribute: a NUL left by a broken export would make ``a\x00@x.de`` another address
#: than ``a@x.de``. Every normaliser removes them first (see :func:`collapse_ws`); the
#: same class is used in SQL (RE2 and Java regex read ``\xNN`` alike).
CONTROL_REGEX_SQL = r"[\x00-\x08\x0B\x0E-\x1F\x7F-\x9F]"
_CONTROL = re.compile(CONTROL_REGEX_SQL)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_TRAILING_SLASHES = re.compile(r"/+$")
_TRUE = {"true", "1", "yes", "y", "t", "x"}
_FALSE = {"false", "0", "no", "n", "f", ""}

# SQL regexes shared by both engines (RE2 on DuckDB, Java regex on Spark: the
# subset used here means the same in both).
EMAIL_REGEX_SQL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
E164_REGEX_SQL = r"^\+[1-9][0-9]{6,14}$"
URL_SCHEME_REGEX_SQL = r"^[a-z][a-z0-9+.-]*://"


class InvalidValueError(ValueError):
    """A non-empty value that cannot be normalised (it is quarantined, not guessed)."""


def split_normaliser(spec: str) -> tuple[str, str | None]:
    """Split a registry normaliser spec such as ``phone:DE`` into name and parameter.

    Args:
        spec: The normaliser column of a registry row.

    Returns:
        The normaliser name and its optional parameter.

    Raises:
        ConfigError: If the normaliser is unknown.
    """
    name, _, param = (spec or "text").partition(":")
    name = name.strip().lower() or "text"
    if name not in NORMALISERS:
        raise ConfigError(f"unknown normaliser {spec!r}; known: {', '.join(sorted(NORMALISERS))}")
    return name, (param.strip() or None)


def collapse_ws(value: str) -> str:
    """Remove control characters, collapse runs of whitespace to one space and trim."""
    return _WS.sub(" ", _CONTROL.sub("", value)).strip()


def has_control(value: str) -> bool:
    """Whether a text holds a control character (:data:`CONTROL_REGEX_SQL`)."""
    return _CONTROL.search(value) is not None


def normalise(spec: str, value: object, region: str | None = None) -> str | None:
    """Normalise one raw value the way the SQL extractors do.

    Args:
        spec: Normaliser spec from the registry (``email``, ``phone:DE``, ...).
        value: Raw value as received; ``None`` or empty means "no value".
        region: ISO alpha-2 region for phones written without a country code.

    Returns:
        The normalised string, or ``None`` when the value is empty.

    Raises:
        InvalidValueError: If a non-empty value cannot be normalised.
    """
    name, param = split_normaliser(spec)
    if name == "sap_flag":
        # SAP writes indicators as 'X' or blank, and a blank is a definite "no".
        flag = collapse_ws("" if value is None else str(value)).upper()
        if flag not in ("X", ""):
            raise InvalidValueError(f"not an SAP flag (X or blank): {value!r}")
        return "true" if flag == "X" else "false"
    if value is None:
        return None
    raw = value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        raw = "true" if value else "false"
    text = collapse_ws(raw)
    if name in ("bool", "not_bool"):
        low = text.lower()
        if low == "":
            return None
        if low not in _TRUE and low not in _FALSE:
            raise InvalidValueError(f"not a boolean: {raw!r}")
        truth = low in _TRUE
        return str(truth if name == "bool" else not truth).lower()
    if text == "":
        return None
    if name == "email":
        low = text.lower()
        if not _EMAIL.match(low):
            raise InvalidValueError(f"not an email address: {raw!r}")
        return low
    if name == "phone":
        result = phone_e164(text, region or param)
        if result is None:
            raise InvalidValueError(f"not a phone number: {raw!r}")
        return result
    if name == "country":
        code = country_alpha2(text)
        if code is None:
            raise InvalidValueError(f"unknown country: {raw!r}")
        return code
    if name == "upper":
        return text.upper()
    if name == "url":
        return _TRAILING_SLASHES.sub("", _URL_SCHEME.sub("", text.lower())) or None
    if name == "lower":
        return text.lower()
    if name == "id":
        return raw.strip()
    if name == "salesforce_id":
        sf = raw.strip()
        return sf_id18(sf) if _SF_ID.fullmatch(sf) else None
    return text


@functools.lru_cache(maxsize=200_000)
def phone_e164(raw: str, region: str | None = None) -> str | None:
    """Return a phone number in E.164, or ``None`` if it is not a possible number.

    Args:
        raw: The phone as typed (any punctuation, with or without ``+``).
        region: ISO alpha-2 region used when the number has no country code.

    Returns:
        ``+<country code><national number>`` or ``None``.
    """
    text = collapse_ws(raw)
    compact = re.sub(r"[\s().\-/]", "", text)
    if _E164.match(compact) and "(0)" not in text:
        return compact
    try:
        parsed = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    result: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return result


_COUNTRY_ALIASES = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED STATES OF AMERICA": "US",
    "AMERICA": "US",
    "DEUTSCHLAND": "DE",
    "HOLLAND": "NL",
    "SCHWEIZ": "CH",
    "SUISSE": "CH",
    "ÖSTERREICH": "AT",
    "ESPAÑA": "ES",
    "ITALIA": "IT",
    "SOUTH KOREA": "KR",
    "RUSSIA": "RU",
}


@functools.cache
def _country_lookup() -> dict[str, str]:
    table: dict[str, str] = {}
    for country in pycountry.countries:
        code = str(country.alpha_2)
        keys: list[object] = [code, country.alpha_3, country.numeric, country.name]
        keys += [getattr(country, attr, None) for attr in ("official_name", "common_name")]
        for key in keys:
            if key:
                table.setdefault(collapse_ws(str(key)).upper(), code)
    for alias, code in _COUNTRY_ALIASES.items():
        table.setdefault(alias, code)
    return table


def country_alpha2(raw: str) -> str | None:
    """Map a country written as code or name to ISO 3166-1 alpha-2 (``None`` if unknown)."""
    return _country_lookup().get(collapse_ws(raw).upper())


def country_table() -> pa.Table:
    """The country lookup as a table (``key`` upper-cased name/code → ``alpha2``) for SQL joins."""
    lookup = _country_lookup()
    return pa.table({"key": pa.array(list(lookup), pa.string()), "alpha2": pa.array(list(lookup.values()))})


def normalise_phones(pairs: Iterable[tuple[str, str | None]]) -> pa.Table:
    """Normalise distinct (raw phone, region) pairs for a SQL join.

    Args:
        pairs: Distinct raw phone strings with the region to parse them in.

    Returns:
        A table ``raw, region, e164`` where ``e164`` is NULL for impossible numbers.
    """
    raws: list[str] = []
    regions: list[str | None] = []
    out: list[str | None] = []
    for raw, region in pairs:
        raws.append(raw)
        regions.append(region)
        out.append(phone_e164(raw, region))
    return pa.table(
        {
            "raw": pa.array(raws, pa.string()),
            "region": pa.array(regions, pa.string()),
            "e164": pa.array(out, pa.string()),
        }
    )


#: Text that :func:`collapse_ws` may change: anything but printable ASCII (control
#: characters, tabs, line breaks, non-ASCII), two spaces in a row, or an outer space.
_MAY_COLLAPSE_SQL = "[^ -~]|  |^ | $"


def sql_collapse(col: str) -> str:
    """:func:`collapse_ws` in SQL (DuckDB dialect, transpiled for other engines).

    Most values are printable ASCII with single inner spaces, which collapsing leaves as
    they are: one match test spares them the two rewriting passes.
    """
    stripped = f"regexp_replace({col}, '{CONTROL_REGEX_SQL}', '', 'g')"
    rewritten = rf"trim(regexp_replace({stripped}, '\s+', ' ', 'g'))"
    return f"CASE WHEN regexp_matches({col}, '{_MAY_COLLAPSE_SQL}') THEN {rewritten} ELSE {col} END"


def sql_normalise(spec: str, col: str, collapsed: str | None = None) -> tuple[str, str]:
    """SQL expressions for one normaliser, except phone and country which need joins.

    Args:
        spec: Normaliser spec.
        col: SQL expression holding the raw value as a string.
        collapsed: SQL of ``col`` already whitespace-collapsed (:func:`sql_collapse`), when
            the caller computes that once for several expressions.

    Returns:
        ``(value_sql, invalid_sql)``: the normalised value (NULL when empty) and a
        boolean that is true when a non-empty value is invalid.
    """
    name, _ = split_normaliser(spec)
    text = collapsed or sql_collapse(col)
    if name in ("bool", "not_bool"):
        low = f"lower({text})"
        true_set = ", ".join(f"'{v}'" for v in sorted(_TRUE))
        false_set = ", ".join(f"'{v}'" for v in sorted(_FALSE - {""}))
        yes, no = ("'true'", "'false'") if name == "bool" else ("'false'", "'true'")
        value = (
            f"CASE WHEN {low} IN ({true_set}) THEN {yes} WHEN {low} IN ({false_set}) THEN {no} ELSE NULL END"
        )
        invalid = f"({low} <> '' AND {low} NOT IN ({true_set}, {false_set}))"
        return value, invalid
    if name == "sap_flag":
        flag = f"upper(coalesce({text}, ''))"
        return (
            f"CASE WHEN {flag} = 'X' THEN 'true' WHEN {flag} = '' THEN 'false' END",
            f"({flag} NOT IN ('X', ''))",
        )
    empty_to_null = f"nullif({text}, '')"
    if name == "url":
        bare = f"regexp_replace(lower({empty_to_null}), '{URL_SCHEME_REGEX_SQL}', '')"
        return f"nullif(regexp_replace({bare}, '/+$', ''), '')", "FALSE"
    if name == "email":
        low = f"lower({empty_to_null})"
        value = f"CASE WHEN regexp_matches({low}, '{EMAIL_REGEX_SQL}') THEN {low} END"
        invalid = f"({low} IS NOT NULL AND NOT regexp_matches({low}, '{EMAIL_REGEX_SQL}'))"
        return value, invalid
    if name == "upper":
        return f"upper({empty_to_null})", "FALSE"
    if name == "lower":
        return f"lower({empty_to_null})", "FALSE"
    if name == "id":
        return f"nullif(trim({col}), '')", "FALSE"
    if name == "salesforce_id":
        trimmed = f"nullif(trim({col}), '')"
        shaped = f"regexp_matches({trimmed}, '{SF_ID_REGEX_SQL}')"
        return (
            f"CASE WHEN {shaped} THEN {sf_id18_sql(trimmed)} END",
            f"({trimmed} IS NOT NULL AND NOT {shaped})",
        )
    if name in ("phone", "country"):
        raise ConfigError(f"normaliser {name!r} is applied through a lookup join, not inline")
    return empty_to_null, "FALSE"


#: A Salesforce record id: 15 case-sensitive alphanumerics, or 18 with the case suffix.
SF_ID_REGEX_SQL = "^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"
_SF_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")

# Salesforce ids: 15 characters case-sensitive, or 18 with a suffix that encodes the case
# of the first 15, so case-insensitive systems can hold them. Both spellings are one record.
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id18(record_id: str) -> str:
    """The 18-character form of a Salesforce id (15-character ids get their checksum)."""
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i in range(5):
            char = record_id[chunk * 5 + i]
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX_ALPHABET[bits]
    return record_id + suffix


def sf_id18_sql(col: str) -> str:
    """SQL computing :func:`sf_id18` (canonical dialect)."""
    chunks = []
    for chunk in range(3):
        terms = " + ".join(
            f"(CASE WHEN substr({col}, {chunk * 5 + i + 1}, 1) BETWEEN 'A' AND 'Z' THEN {1 << i} ELSE 0 END)"
            for i in range(5)
        )
        chunks.append(f"substr('{_SUFFIX_ALPHABET}', {terms} + 1, 1)")
    return f"CASE WHEN length({col}) = 15 THEN concat({col}, {', '.join(chunks)}) ELSE {col} END"
