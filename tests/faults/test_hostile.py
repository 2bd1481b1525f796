"""Hostile and broken input: every row ends processed or quarantined with a reason, a file
that cannot be read changes nothing, and nothing crashes without a clear error."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aag.errors import InputError
from aag.pipeline import BatchReport
from aag.service import AagService

from .tables import differences, snapshot, tally

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "'; DROP TABLE relationships; --",
            '=HYPERLINK("http://x","y")',
            "+cmd|' /C calc'!A0",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999+14:00",
            "2026-03-01T09:05:00-12:00",
            "2026-02-30T10:00:00Z",
            "\u0000\u202e\ud7ff",
            "0035g00000AbcdeAAA",
        ]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = (
    "Id",
    "FirstName",
    "Email",
    "Phone",
    "MailingCountry",
    "HasOptedOutOfEmail",
    "LastModifiedDate",
    "IsDeleted",
)


@pytest.fixture(scope="module")
def svc(tmp_path_factory) -> AagService:
    service = AagService(str(tmp_path_factory.mktemp("hostile") / "wh"))
    service.init()
    return service


def _accounted(svc: AagService, report: BatchReport, rows_in_file: int) -> None:
    """Every row written to the file landed, and each landed row was processed or quarantined.

    ``rows_in_file`` is counted from what the test wrote, not from what the reader returned,
    so a row the reader drops shows up here. A file sent before is checked on its ledger row.
    """
    if report.status == "already ingested":
        ledger = [b for b in svc.warehouse.batches().to_pylist() if b["batch_id"] == report.batch_id]
        assert len(ledger) == 1 and ledger[0]["rows_landed"] == rows_in_file, (ledger, rows_in_file)
        return
    assert report.rows_landed == rows_in_file, (report, rows_in_file)
    assert report.rows_landed == report.rows_processed + report.rows_quarantined, report


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({}, optional={f: VALUES for f in FIELDS}), min_size=1, max_size=6))
def test_random_rows_are_processed_or_quarantined_with_a_reason(svc, tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("rows") / "contacts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = svc.ingest("salesforce", "Contact", [path])[0]
    _accounted(svc, report, rows_in_file=len(rows))
    for q in svc.warehouse.quarantine().to_pylist():
        assert q["reason"] and q["raw"] is not None
    tally("fuzzed bronze files (processed or quarantined with a reason)")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traits=VALUES, depth=st.integers(min_value=0, max_value=60))
def test_segment_traits_of_any_shape_and_depth(svc, tmp_path_factory, traits, depth):
    for _ in range(depth):
        traits = {"address": traits}
    row = {"message_id": "m1", "user_id": "u1", "timestamp": "2026-03-01T09:00:00Z", "traits": traits}
    path = tmp_path_factory.mktemp("seg") / "identifies.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    _accounted(svc, svc.ingest("segment", "identifies", [path])[0], rows_in_file=1)
    tally("fuzzed bronze files (processed or quarantined with a reason)")


def _unreadable(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parquet_bytes = folder / "real.parquet"
    pq.write_table(pa.table({"Id": ["0035g00000AbcdeAAA"]}), parquet_bytes)
    cases = {
        "parquet-bytes.jsonl": parquet_bytes.read_bytes(),
        "json-text.parquet": b'{"Id": "0035g00000AbcdeAAA"}\n',
        "truncated.parquet": parquet_bytes.read_bytes()[:40],
        "binary.csv": bytes(range(256)) * 10,
        "empty.jsonl": b"",
    }
    out = []
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        out.append(folder / name)
    return out


def test_a_file_that_cannot_be_read_is_rejected_whole_and_changes_nothing(svc, tmp_path):
    for path in _unreadable(tmp_path / "bad"):
        before = snapshot(Path(svc.warehouse.uri))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "aag.cli",
                "ingest",
                "salesforce",
                "Contact",
                str(path),
                "--warehouse",
                svc.warehouse.uri,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            # Readable after all (an empty file is a batch of zero rows): accounted for.
            assert "0 rows landed" in done.stdout or "committed" in done.stdout, (path.name, done.stdout)
            continue
        # Piped, stamped progress lines ("[   0.1s] ...") may come first; the error is one line.
        err = "\n".join(line for line in done.stderr.strip().splitlines() if not line.startswith("["))
        assert err.startswith("error:") and len(err.splitlines()) == 1, (path.name, err)
        assert "Traceback" not in done.stderr
        assert differences(before, snapshot(Path(svc.warehouse.uri))) == [], path.name
        with pytest.raises(InputError):
            svc.ingest("salesforce", "Contact", [path])


def test_broken_lines_huge_values_and_invalid_utf8_are_quarantined_not_fatal(svc, tmp_path):
    good = {
        "Id": "0035g00000HugeaAAA",
        "Email": "huge@example.com",
        "LastModifiedDate": "2026-01-01T00:00:00Z",
    }
    lines = [
        json.dumps(good).encode(),
        json.dumps({**good, "Id": "0035g00000HugebAAA", "FirstName": "x" * 10_000_000}).encode(),
        b'{"Id": "0035g00000BrokeAAA", "Email": "cut@exa',
        b'{"Id": "0035g00000Utf8xAAA", "FirstName": "\xff\xfe broken", '
        b'"LastModifiedDate": "2026-01-01T00:00:00Z"}',
        json.dumps({**good, "Id": "0035g00000YearaAAA", "LastModifiedDate": "0001-01-01T00:00:00Z"}).encode(),
        json.dumps(
            {**good, "Id": "0035g00000YearbAAA", "LastModifiedDate": "9999-12-31T23:59:59+14:00"}
        ).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = svc.ingest("salesforce", "Contact", [path])[0]
    _accounted(svc, report, rows_in_file=len(lines))
    assert report.rows_quarantined >= 2
    reasons = [
        q["reason"] for q in svc.warehouse.quarantine().to_pylist() if q["batch_id"] == report.batch_id
    ]
    assert all(reasons)


@pytest.mark.parametrize("good_rows", [0, 2])
def test_a_csv_row_that_is_not_utf8_is_quarantined_with_its_bytes(svc, tmp_path, good_rows):
    # A Latin-1 export: the "ü" is the single byte 0xFC, which is not UTF-8.
    header = b"Id,Email,LastModifiedDate\n"
    good = [f"0035g00000Good{i}AAA,g{i}@x.de,2026-01-01T00:00:00Z\n".encode() for i in range(good_rows)]
    bad = b"0035g00000LatinAAA,m\xfcller@example.com,2026-01-01T00:00:00Z\n"
    data = header + b"".join(good[:1]) + bad + b"".join(good[1:])
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    rows_in_file = data.count(b"\n") - 1  # every line but the header is a row
    report = svc.ingest("salesforce", "Contact", [path])[0]
    _accounted(svc, report, rows_in_file)
    assert report.rows_quarantined == 1
    [row] = [q for q in svc.warehouse.quarantine().to_pylist() if q["batch_id"] == report.batch_id]
    assert "UTF-8" in row["reason"] and "0xFC" in row["reason"]
    assert "m\\xfcller@example.com" in json.loads(row["raw"])  # the original bytes, escaped


def test_the_same_bytes_in_another_format_are_judged_by_their_own_reader(tmp_path):
    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    row = b'{"Id": "0035g00000SameBAAA", "LastModifiedDate": "2026-01-01T00:00:00Z"}\n'
    (tmp_path / "same.jsonl").write_bytes(row)
    (tmp_path / "same.parquet").write_bytes(row)
    assert svc.ingest("salesforce", "Contact", [tmp_path / "same.jsonl"])[0].status == "committed"
    # Not "already ingested": the Parquet reader sees these bytes and rejects them.
    with pytest.raises(InputError, match="cannot read as Parquet"):
        svc.ingest("salesforce", "Contact", [tmp_path / "same.parquet"])
    # Two empty files of two formats are two batches; the same file again is one.
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.csv").write_bytes(b"")
    assert svc.ingest("salesforce", "Contact", [tmp_path / "empty.jsonl"])[0].status == "committed"
    try:
        status = svc.ingest("salesforce", "Contact", [tmp_path / "empty.csv"])[0].status
    except InputError as exc:  # the CSV reader may refuse a file without a header
        status = str(exc)
    assert status != "already ingested"
    assert svc.ingest("salesforce", "Contact", [tmp_path / "same.jsonl"])[0].status == "already ingested"


def test_a_ledger_written_before_formats_were_keyed_still_counts_for_its_own_format(tmp_path):
    from aag.graph.ledger import LedgerEntry
    from aag.pipeline import batch_id_for

    svc = AagService(str(tmp_path / "wh"))
    svc.init()
    data = b'{"Id": "0035g00000LegacAAA", "LastModifiedDate": "2026-01-01T00:00:00Z"}\n'
    (tmp_path / "old.jsonl").write_bytes(data)
    (tmp_path / "old.parquet").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    # The ledger row an older AAG wrote for old.jsonl: keyed on source, object and content.
    svc.warehouse.record_batches(
        [
            LedgerEntry(
                batch_id=batch_id_for("salesforce", "Contact", digest),
                source_system="salesforce",
                source_object="Contact",
                file_name="old.jsonl",
                file_sha256=digest,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
            )
        ]
    )
    assert svc.ingest("salesforce", "Contact", [tmp_path / "old.jsonl"])[0].status == "already ingested"
    with pytest.raises(InputError, match="cannot read as Parquet"):
        svc.ingest("salesforce", "Contact", [tmp_path / "old.parquet"])
