"""Chunked ingestion: a file read and processed in tiny chunks gives the tables of a one-piece run.

The files below are built so that one record's events straddle chunk boundaries: every
sync round of the generated world concatenated into one file per object and shuffled, so a
contact's repeated values (SCD2 runs to collapse, first event time to keep) and its changes
arrive out of order across many chunks; Segment copies of one message sit in different
chunks; bad rows are mixed in. Each file is ingested once in one piece and once in chunks of
a few rows, and every table of the two warehouses is compared.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aag.bronze import _decode_lines, _decode_lines_slowly, read_chunks, read_rows
from aag.errors import InputError
from aag.pipeline import FileProgress
from aag.service import AagService
from aag.world import generate

from .tables import LOG, as_csv, canonical_log, differences, snapshot

#: Rows per chunk in the chunked runs: small enough that every file has many chunks.
TINY = 7
#: Larger than any file here: the one-piece run.
WHOLE = 1 << 40

BAD_ROWS = ["{not json", "[1, 2, 3]", '{"Id": null, "Email": "x@y.z"}']


def _combined(files: list[tuple[str, str, Path]], folder: Path) -> list[tuple[str, str, Path]]:
    """All rounds of each object in one shuffled file, with bad rows mixed in."""
    lines: dict[tuple[str, str], list[str]] = {}
    for system, obj, path in files:
        lines.setdefault((system, obj), []).extend(path.read_text(encoding="utf-8").splitlines())
    rng = random.Random(3)
    out = []
    folder.mkdir(parents=True, exist_ok=True)
    # ADR6 before KNA1 (KNA1 joins the landed ADR6 rows), as the world orders them.
    order = sorted(lines, key=lambda k: (k != ("sap", "ADR6"), list(lines).index(k)))
    for system, obj in order:
        rows = lines[(system, obj)]
        if system == "segment":
            rows = rows + rows[::5]  # at-least-once delivery: copies of every fifth message
        rows = rows + BAD_ROWS
        rng.shuffle(rows)
        path = folder / f"{system}_{obj}.jsonl"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        out.append((system, obj, path))
    return out


def _compare(whole: Path, chunked: Path) -> None:
    """Every table equal, the log as the event set it encodes (see :func:`canonical_log`)."""
    expected, actual = snapshot(whole), snapshot(chunked)
    assert set(expected) == set(actual)
    assert canonical_log(whole, batch_ids=False) == canonical_log(chunked, batch_ids=False)
    expected.pop(LOG), actual.pop(LOG)
    assert differences(expected, actual) == []


def _ingest(
    wh: Path, files: list[tuple[str, str, Path]], chunk_rows: int
) -> tuple[AagService, dict[str, list[int]]]:
    """Ingest the files; returns the service and the chunk numbers each file went through."""
    svc = AagService(str(wh))
    svc.init()
    chunks: dict[str, list[int]] = {}

    def seen(path: Path, where: FileProgress) -> None:
        if where.chunk:
            chunks.setdefault(path.name, []).append(where.chunk)

    for system, obj, path in files:
        report = svc.ingest(system, obj, [path], on_progress=seen, chunk_rows=chunk_rows)[0]
        assert report.status == "committed"
        assert report.rows_landed == report.rows_processed + report.rows_quarantined, report
    return svc, chunks


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, Path]]:
    root = tmp_path_factory.mktemp("chunks")
    return _combined(generate(root / "world", 30, formats="jsonl").files, root / "combined")


def test_tiny_chunks_give_the_one_piece_tables(world_files, tmp_path):
    _, whole_chunks = _ingest(tmp_path / "whole", world_files, WHOLE)
    _, tiny_chunks = _ingest(tmp_path / "tiny", world_files, TINY)
    # The one-piece run really is one chunk per file; the chunked one really is not.
    assert all(v == [1] for v in whole_chunks.values()), whole_chunks
    for system, obj, path in world_files:
        if (system, obj) == ("sap", "CDPOS"):
            continue
        rows = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        assert len(tiny_chunks[path.name]) == -(-rows // TINY), (path.name, rows)
    expected = snapshot(tmp_path / "whole")
    assert {"silver/relationships", "silver/nodes", LOG, "quarantine", "ledger/batches"} <= set(expected)
    _compare(tmp_path / "whole", tmp_path / "tiny")
    # The comparison is not vacuous: records changed over the rounds, so many keys have
    # several versions, and the bad rows were quarantined.
    edges = expected["silver/relationships"]
    assert sum(1 for r in edges if dict(r)["is_current"] is False) > 20
    assert len(expected["quarantine"]) >= len(world_files) * 2


def test_a_records_events_across_chunks_collapse_as_in_one_piece(tmp_path):
    """One contact's phone over four chunks of one row: repeated values are one version,
    dated by the first event of the run, and a late event moves that date back."""
    contact = {"Id": "0035g00000ChunkAAA", "LastName": "Chunk", "Email": "chunk@example.com"}
    stamps = [
        ("+4989111111", "2026-03-01T10:00:00Z"),
        ("+4989111111", "2026-03-02T10:00:00Z"),  # same value again: no new version
        ("+4989222222", "2026-03-03T10:00:00Z"),  # a change
        ("+4989111111", "2026-02-20T10:00:00Z"),  # late: the first run now starts here
    ]
    path = tmp_path / "contact.jsonl"
    path.write_text(
        "".join(json.dumps({**contact, "Phone": p, "LastModifiedDate": t}) + "\n" for p, t in stamps),
        encoding="utf-8",
    )
    results = {}
    for name, size in (("whole", WHOLE), ("one_row", 1)):
        svc, chunks = _ingest(tmp_path / name, [("salesforce", "Contact", path)], size)
        assert chunks[path.name] == ([1] if size == WHOLE else [1, 2, 3, 4])
        edges = svc.model("relationships").to_pylist()
        phones = sorted(
            (str(e["updated_at"]), e["is_current"]) for e in edges if e["rel_type"] == "HAS_PHONE"
        )
        results[name] = phones
    assert results["whole"] == [
        ("2026-02-20 10:00:00+00:00", False),
        ("2026-03-03 10:00:00+00:00", True),
    ]
    assert results["one_row"] == results["whole"]
    _compare(tmp_path / "whole", tmp_path / "one_row")


def test_csv_and_parquet_in_tiny_chunks_give_the_one_piece_tables(world_files, tmp_path):
    _, _, contacts = next(f for f in world_files if f[:2] == ("salesforce", "Contact"))
    rows = []
    for line in contacts.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    csv_path = as_csv(rows, tmp_path / "contacts.csv")
    # A row with too many columns: DuckDB rejects it, and it is quarantined with its line.
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write(",".join(["x"] * (len({k for r in rows for k in r}) + 1)) + "\r\n")
    cols = sorted({k for r in rows for k in r})
    parquet_path = tmp_path / "contacts.parquet"
    pq.write_table(
        pa.table(
            {c: pa.array([None if r.get(c) is None else str(r[c]) for r in rows], pa.string()) for c in cols}
        ),
        parquet_path,
        row_group_size=10,
    )
    files = [("salesforce", "Contact", csv_path), ("salesforce", "Contact", parquet_path)]
    _, whole = _ingest(tmp_path / "whole", files, WHOLE)
    _, tiny = _ingest(tmp_path / "tiny", files, TINY)
    assert whole == {"contacts.csv": [1, 2], "contacts.parquet": [1]}  # CSV: good rows, then rejects
    assert len(tiny["contacts.csv"]) == -(-len(rows) // TINY) + 1
    assert len(tiny["contacts.parquet"]) == -(-len(rows) // TINY)
    _compare(tmp_path / "whole", tmp_path / "tiny")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_chunks_are_the_rows_of_a_one_piece_read(tmp_path, suffix):
    rows = [{"Id": f"003{i:015d}", "Note": "é" * (i % 50), "N": str(i)} for i in range(1000)]
    path = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + ("\r\n" if i % 3 else "\n\n") for i, r in enumerate(rows)))
    elif suffix == ".csv":
        as_csv(rows, path)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=64)
    fields = ("Id", "N")
    whole = read_rows(path, fields)
    for size in (1, 13, 999, 1000, 5000):
        chunks = list(read_chunks(path, fields, chunk_rows=size, chunk_bytes=300))
        assert pa.concat_tables([c.rows for c in chunks]).equals(whole)
        assert chunks[-1].done == chunks[-1].total
        assert all(c.rows.num_rows <= size for c in chunks)
    assert whole.num_rows == 1000


def test_a_file_rejected_whole_fails_before_the_first_chunk(tmp_path):
    bad = tmp_path / "binary.csv"
    bad.write_bytes(b'a,b\n"1,2\n' + bytes(range(256)) * 50)
    chunks = read_chunks(bad, ("a",), chunk_rows=1)
    with pytest.raises(InputError):
        next(chunks)


_PIECES = [
    b"a",
    b"{",
    b"}",
    b'"',
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\x0b",
    b"\x1c",
    "é".encode(),
    "\u3000".encode(),
]


@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.integers(min_value=1, max_value=9))
@settings(max_examples=400, deadline=None)
def test_vectorised_line_split_equals_the_line_by_line_reading(pieces, first):
    # Two implementations of one rule (numbering, CR LF, blank and white-space-only
    # lines): the fast one must never drift from the plain reading.
    data = b"".join(pieces)
    fast = _decode_lines(data, first)
    slow = _decode_lines_slowly(data, first)
    assert fast.to_pylist() == slow.to_pylist()
    assert fast.schema == slow.schema


def test_a_block_with_invalid_utf8_keeps_its_good_lines_and_marks_the_bad_one():
    lines = _decode_lines(b'{"a": 1}\r\n\xff\xfe\n\n{"b": 2}', 10).to_pylist()
    assert [(r["_row_number"], (r["_error"] or "")[:15]) for r in lines] == [
        (10, ""),
        (11, "not valid UTF-8"),
        (13, ""),
    ]
    assert lines[1]["_line"] == '"\\\\xff\\\\xfe"'  # the bytes, escaped
    assert lines[0]["_line"] == '{"a": 1}'
