"""Synthetic Salesforce ``Contact`` exports for the ingest benchmark.

Writes three JSON Lines files for N contacts:

* ``contacts_initial.jsonl``  the full initial export (N rows);
* ``contacts_changed_1pct.jsonl``  1% of the contacts (every 100th, so spread
  uniformly over the id space), each with exactly one or two mapped fields
  changed and a later ``LastModifiedDate`` (the CRM re-sends the whole record);
* ``contacts_resync_nochange.jsonl``  the initial rows again, byte-identical
  per row, in reverse order under another file name, so the file hash (and
  hence the batch id) differs while every record and timestamp is the same.

Values are deterministic functions of the row index (no RNG state), so a run
is reproducible and any row can be regenerated on its own.

Two shapes (``--shape``): ``unique`` (the default, byte-identical to the files of
earlier versions) draws last names from 31 values, cities from 20 (4 per country)
and streets from 10 names × 197 house numbers (1,970 values); e-mails and phones
are per contact. ``shared`` draws last names from 5,000 values, cities from 500
(100 per country, with that country's area codes) and streets from 300 values
(house number included); everything else is as in ``unique``. Rows are built with
plain string formatting (values never contain quotes or backslashes), which
keeps 1M rows at a few seconds.

Usage::

    python benchmarks/gen_salesforce.py 1000000 /tmp/sf_1m
    python benchmarks/gen_salesforce.py 1000000 /tmp/sf_1m_shared --shape shared
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path

FIRST = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Greta",
    "Hugo",
    "Ida",
    "Jonas",
    "Katrin",
    "Lukas",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
    "Quentin",
    "Rosa",
    "Simon",
    "Tara",
    "Uwe",
    "Vera",
    "William",
    "Xenia",
    "Yusuf",
    "Zoe",
    "José",
    "Łukasz",
    "Zoë",
    "Sören",
)
LAST = (
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Smith",
    "Johnson",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Martin",
    "Bernard",
    "Dubois",
    "Rossi",
    "Russo",
    "Ferrari",
    "Novak",
    "Svoboda",
    "Berg",
    "Lindqvist",
    "O'Neil",
    "van Dijk",
    "de Vries",
    "Nowak",
    "Kowalski",
    "Jansen",
    "Peeters",
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "corp.example")
STREETS = (
    "Hauptstraße",
    "Bahnhofstr.",
    "Main Street",
    "Market St",
    "High Street",
    "Rue de la Paix",
    "Via Roma",
    "Kerkstraat",
    "Storgatan",
    "Leopoldstr.",
)

# (ISO code, spellings of the country seen in MailingCountry, country calling code,
#  cities with area codes, postal code pattern)
COUNTRIES = (
    (
        "DE",
        ("Germany", "DE", "Deutschland", "DEU"),
        "49",
        (("Berlin", "30"), ("München", "89"), ("Hamburg", "40"), ("Köln", "221")),
        "{:05d}",
    ),
    (
        "US",
        ("United States", "US", "USA", "United States"),
        "1",
        (("San Francisco", "415"), ("New York", "212"), ("Chicago", "312"), ("Austin", "512")),
        "{:05d}",
    ),
    (
        "GB",
        ("United Kingdom", "GB", "UK", "GBR"),
        "44",
        (("London", "20"), ("Manchester", "161"), ("Leeds", "113"), ("Bristol", "117")),
        "SW{:d} 1AA",
    ),
    (
        "FR",
        ("France", "FR", "FRA", "France"),
        "33",
        (("Paris", "1"), ("Lyon", "4"), ("Marseille", "4"), ("Lille", "3")),
        "{:05d}",
    ),
    (
        "NL",
        ("Netherlands", "NL", "NLD", "Holland"),
        "31",
        (("Amsterdam", "20"), ("Rotterdam", "10"), ("Utrecht", "30"), ("Den Haag", "70")),
        "{:04d} AB",
    ),
)

# -- the shared shape's value pools --------------------------------------------------
#: Shapes of the generated data (see the module docstring).
SHAPES = ("unique", "shared")

_ONSETS = (
    "Ba",
    "Be",
    "Bra",
    "Da",
    "De",
    "Fa",
    "Ga",
    "Ha",
    "He",
    "Ka",
    "Ke",
    "La",
    "Le",
    "Ma",
    "Me",
    "Na",
    "Pa",
    "Ra",
    "Sa",
    "Ta",
)
_MIDDLES = (
    "l",
    "n",
    "r",
    "s",
    "t",
    "m",
    "k",
    "d",
    "b",
    "g",
    "v",
    "w",
    "z",
    "x",
    "p",
    "ll",
    "nn",
    "rr",
    "ss",
    "tt",
    "mm",
    "ck",
    "nd",
    "rt",
    "st",
)
_ENDINGS = ("er", "ann", "ini", "sson", "ez", "ov", "berg", "ford", "ova", "ard")


def _pool(count: int, extra: str = "") -> tuple[str, ...]:
    """``count`` distinct made-up names (onset + middle + ending, then ``extra``)."""
    names = tuple(
        f"{_ONSETS[k % len(_ONSETS)]}{_MIDDLES[k // len(_ONSETS) % len(_MIDDLES)]}"
        f"{_ENDINGS[k // (len(_ONSETS) * len(_MIDDLES)) % len(_ENDINGS)]}{extra}"
        for k in range(count)
    )
    assert len(set(names)) == count, count
    return names


#: 5,000 last names, 500 cities (the first 100 for COUNTRIES[0], …), 300 streets.
SHARED_LAST = _pool(5000)
SHARED_CITIES = _pool(500, "ville")
SHARED_STREETS = tuple(f"{STREETS[k % len(STREETS)]} {1 + k // len(STREETS)}" for k in range(300))
_CITIES_PER_COUNTRY = len(SHARED_CITIES) // 5

#: Contacts 003Dn + 10 digits: only the 'D' is upper case, so the 18-character
#: checksum suffix is the same for every generated id (see aag.sources.salesforce).
CONTACT_PREFIX = "003Dn"
ACCOUNT_PREFIX = "001Dn"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _suffix(id15: str) -> str:
    out = ""
    for chunk in range(3):
        bits = 0
        for i in range(5):
            if "A" <= id15[chunk * 5 + i] <= "Z":
                bits |= 1 << i
        out += _SUFFIX_ALPHABET[bits]
    return out


_C_SUFFIX = _suffix(CONTACT_PREFIX + "0" * 10)
_A_SUFFIX = _suffix(ACCOUNT_PREFIX + "0" * 10)

#: Base time of the initial export (2024-01-01T00:00:00Z) and of the changed batch.
_BASE_EPOCH = 1_704_067_200
_CHANGE_EPOCH = 1_748_736_000  # 2025-06-01T00:00:00Z

CHANGE_STRIDE = 100  # every 100th contact changes (1%)
CHANGE_OFFSET = 37
AGAIN_OFFSET = 73  # the second 1% batch (bench_ingest.py): other contacts than the first


def contact_id(i: int) -> str:
    """18-character Salesforce-like Contact Id of row ``i``."""
    return f"{CONTACT_PREFIX}{i:010d}{_C_SUFFIX}"


def _iso(epoch: int) -> str:
    # Fast UTC formatting without datetime objects per row.
    days, secs = divmod(epoch, 86400)
    y, m, d = _civil_from_days(days)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.000Z"


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _mix(i: int) -> int:
    """A cheap deterministic hash of the row index (decorrelates choices from i % k)."""
    return ((i * 2654435761) & 0xFFFFFFFF) >> 8


def _phone(i: int, cc: str, country: str, area: str) -> str:
    """~80% strict E.164; ~10% national format (needs the record's country to parse),
    ~10% spaced international format."""
    local = 1_000_000 + (i * 7919) % 9_000_000  # 7 digits
    bucket = _mix(i) % 10
    if country == "US":
        exch, line = 200 + local // 10000 % 800, local % 10000
        if bucket == 0:
            return f"({area}) {exch:03d}-{line:04d}"
        if bucket == 1:
            return f"+1 {area} {exch:03d} {line:04d}"
        return f"+1{area}{exch:03d}{line:04d}"
    if bucket == 0:
        return f"0{area} {local}"
    if bucket == 1:
        return f"+{cc} {area} {local // 1000} {local % 1000:03d}"
    return f"+{cc}{area}{local}"


_ASCII = str.maketrans(
    {"ü": "ue", "ö": "oe", "ä": "ae", "ß": "ss", "é": "e", "ë": "e", "ł": "l", "'": "", " ": ""}
)


def _postal(pattern: str, i: int) -> str:
    if pattern == "{:05d}":
        return pattern.format(10000 + (i * 37) % 89999)
    if pattern.startswith("{:04d}"):
        return pattern.format(1000 + (i * 37) % 8999)
    return pattern.format(1 + i % 20)


def contact_fields(i: int, shape: str = "unique") -> dict[str, object]:
    """The field values of contact ``i`` in the initial export of ``shape``."""
    c = i % len(COUNTRIES)
    country, spellings, cc, cities, postal = COUNTRIES[c]
    city, area = cities[(i // 5) % len(cities)]
    first = FIRST[(i * 7) % len(FIRST)]
    last = LAST[(i * 13 // 3) % len(LAST)]
    street = f"{STREETS[i % len(STREETS)]} {1 + i % 197}"
    if shape == "shared":
        j = _mix(i + 7) % _CITIES_PER_COUNTRY
        city, area = SHARED_CITIES[c * _CITIES_PER_COUNTRY + j], cities[j % len(cities)][1]
        last = SHARED_LAST[_mix(i * 13 + 5) % len(SHARED_LAST)]
        street = SHARED_STREETS[_mix(i + 11) % len(SHARED_STREETS)]
    elif shape != "unique":
        raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")
    local_part = f"{first}.{last}".lower().translate(_ASCII)
    return {
        "Id": contact_id(i),
        "AccountId": f"{ACCOUNT_PREFIX}{i // 3:010d}{_A_SUFFIX}",
        "FirstName": first,
        "LastName": last,
        "Email": f"{local_part}{i}@{DOMAINS[i % len(DOMAINS)]}",
        "Phone": _phone(i, cc, country, area),
        "MailingStreet": street,
        "MailingCity": city,
        "MailingPostalCode": _postal(postal, i),
        "MailingCountry": spellings[(i // 25) % len(spellings)],
        "HasOptedOutOfEmail": i % 7 == 0,
        "LastModifiedDate": _iso(_BASE_EPOCH + (i * 97) % (60 * 86400)),
        "IsDeleted": False,
    }


def _changed_fields(i: int, shape: str = "unique") -> dict[str, object]:
    """Contact ``i`` with one or two fields changed and a later LastModifiedDate."""
    row = contact_fields(i, shape)
    k = i // CHANGE_STRIDE
    kind = k % 5
    if kind == 0:
        row["Email"] = f"new.address{i}@changed.example"
    elif kind == 1:
        row["Phone"] = f"+4917{10_000_000 + i % 89_999_999:08d}"
    elif kind == 2:
        row["MailingStreet"] = f"Neue Allee {1 + i % 311}b"
    elif kind == 3:
        row["LastName"] = f"{row['LastName']}-Changed"
    else:
        row["HasOptedOutOfEmail"] = not row["HasOptedOutOfEmail"]
    if k % 2 == 1:  # half of them change a second field
        row["MailingCity"] = f"{row['MailingCity']} Neustadt"
    row["LastModifiedDate"] = _iso(_CHANGE_EPOCH + (i * 13) % 86400)
    return row


def _line(r: dict[str, object]) -> str:
    # Values hold no '"' or '\\' (asserted by the self-check below), so no escaping needed.
    return (
        f'{{"Id":"{r["Id"]}","AccountId":"{r["AccountId"]}","FirstName":"{r["FirstName"]}",'
        f'"LastName":"{r["LastName"]}","Email":"{r["Email"]}","Phone":"{r["Phone"]}",'
        f'"MailingStreet":"{r["MailingStreet"]}","MailingCity":"{r["MailingCity"]}",'
        f'"MailingPostalCode":"{r["MailingPostalCode"]}","MailingCountry":"{r["MailingCountry"]}",'
        f'"HasOptedOutOfEmail":{"true" if r["HasOptedOutOfEmail"] else "false"},'
        f'"LastModifiedDate":"{r["LastModifiedDate"]}","IsDeleted":false}}\n'
    )


def _write(path: Path, lines: Iterable[str]) -> int:
    n = 0
    buf: list[str] = []
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            buf.append(line)
            n += 1
            if len(buf) >= 50_000:
                handle.write("".join(buf))
                buf.clear()
        handle.write("".join(buf))
    return n


def changed_indices(n: int) -> range:
    """Row indices of the 1% batch: every 100th contact (uniform over the export)."""
    return range(CHANGE_OFFSET, n, CHANGE_STRIDE)


def changed_again_indices(n: int) -> range:
    """Row indices of a second 1% batch: every 100th contact, none of the first batch's."""
    return range(AGAIN_OFFSET, n, CHANGE_STRIDE)


def write_changed_again(n: int, path: Path, days_later: int, shape: str = "unique") -> Path:
    """Write the second 1% batch, stamped ``days_later`` days after the first one."""
    rows = (_changed_fields(i, shape) for i in changed_again_indices(n))
    shift = days_later * 86400

    def stamped(row: dict[str, object], i: int) -> dict[str, object]:
        row["LastModifiedDate"] = _iso(_CHANGE_EPOCH + shift + (i * 13) % 86400)
        return row

    _write(path, (_line(stamped(r, i)) for r, i in zip(rows, changed_again_indices(n), strict=True)))
    return path


def generate(n: int, out_dir: Path | str, shape: str = "unique") -> dict[str, Path]:
    """Write the three benchmark files for ``n`` contacts of ``shape``; returns their paths.

    Keys: ``initial``, ``changed``, ``resync``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "initial": out / "contacts_initial.jsonl",
        "changed": out / "contacts_changed_1pct.jsonl",
        "resync": out / "contacts_resync_nochange.jsonl",
    }
    lines = [_line(contact_fields(i, shape)) for i in range(n)]
    _write(paths["initial"], lines)
    _write(paths["resync"], reversed(lines))  # same rows, other order ⇒ other file hash
    del lines
    _write(paths["changed"], (_line(_changed_fields(i, shape)) for i in changed_indices(n)))
    return paths


def _self_check() -> None:
    import json

    for shape in SHAPES:
        for i in list(range(200)) + list(changed_indices(5000)):
            for row in (contact_fields(i, shape), _changed_fields(i, shape)):
                text = _line(row)
                assert json.loads(text) == row, (i, text)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``gen_salesforce.py N OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of contacts")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--shape", choices=SHAPES, default="unique", help="value pools (module docstring)")
    args = parser.parse_args(argv)
    _self_check()
    started = time.perf_counter()
    paths = generate(args.n, args.out_dir, args.shape)
    took = time.perf_counter() - started
    for name, path in paths.items():
        print(f"{name:8s} {path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"generated {args.n} contacts in {took:.1f}s")


if __name__ == "__main__":
    main()
