"""Deferred confirmations: a re-sync with later record times and unchanged values.

Rows that only re-send their record's values with a later record time land in bronze
without being extracted (``aag.pipeline.deferral``). The graph must be exactly the graph
of a run that extracts every row (``AAG_DEFER=0``), also after late rows that fall
before the deferred times, in any order and on both engines. Deferral is on by default
(the tests set ``AAG_DEFER`` either way).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aag.engine.base import Engine
from aag.graph import bronze_reads
from aag.graph.bronze_reads import LandedBronze
from aag.pipeline import batch
from aag.service import AagService

Row = dict[str, Any]


def contact(record: str, when: str, **values: Any) -> Row:
    row: Row = {
        "Id": record,
        "FirstName": "Alex",
        "LastName": "Example",
        "Email": f"{record.lower()}@example.com",
        "Phone": "+49 111 000 0000",
        "MailingCity": "München",
        "MailingCountry": "Germany",
        "LastModifiedDate": when,
        "IsDeleted": "false",
    }
    row.update(values)
    return row


def write(path: Path, rows: list[Row]) -> Path:
    if path.suffix == ".csv":
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def relationships(svc: AagService) -> list[tuple[Any, ...]]:
    """Every edge row, properties included, in a stable order."""
    return sorted(
        tuple((k, tuple(sorted(dict(v or []).items())) if k == "properties" else v) for k, v in r.items())
        for r in svc.warehouse.graph.relationships().to_pylist()
    )


def ids(n: int) -> list[str]:
    return [f"003DEFER{i:010d}" for i in range(n)]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Initial load, a later-time re-sync (CSV), a late change under it, a later change."""
    folder = tmp_path / "in"
    folder.mkdir()
    records = ids(4)
    initial = [contact(r, "2025-01-01T10:00:00Z") for r in records]
    resync = [contact(r, "2025-03-01T10:00:00Z") for r in reversed(records)]
    late = [contact(records[0], "2025-02-01T10:00:00Z", Email="moved@example.com")]
    later = [contact(records[1], "2025-04-01T10:00:00Z", LastName="Changed")]
    return {
        "initial": write(folder / "initial.jsonl", initial),
        "resync": write(folder / "resync.csv", resync),
        "late": write(folder / "late.jsonl", late),
        "later": write(folder / "later.jsonl", later),
    }


def _run(root: Path, files: list[Path], engine: Engine | None = None) -> tuple[AagService, list[Any]]:
    svc = AagService(str(root), engine=engine) if engine is not None else AagService(str(root))
    svc.init()
    reports = [svc.ingest("salesforce", "Contact", [path])[0] for path in files]
    return svc, reports


@pytest.mark.parametrize("name", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_a_later_time_resync_is_deferred_and_a_late_row_folds_it_back(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    engine = request.getfixturevalue(f"{name}_engine")
    monkeypatch.setenv("AAG_DEFER", "1")
    order = [files["initial"], files["resync"], files["late"], files["later"]]
    svc, reports = _run(tmp_path / "wh", order[:2], engine)
    resync = reports[1]
    # Counted from the input: every contact of the re-sync file, none extracted, nothing written.
    assert resync.rows_landed == resync.rows_deferred == 4
    assert resync.field_events == 0 and resync.edge_versions_written == 0
    log_before = svc.warehouse.graph.edge_events().num_rows
    for path in order[2:]:
        reports.append(svc.ingest("salesforce", "Contact", [path])[0])
    # The late e-mail falls before the re-sync's time: its record's deferred row comes back,
    # so the old address returns at the re-sync's time as it would have without deferral.
    assert reports[2].rows_folded == 1 and reports[3].rows_folded == 0
    assert svc.warehouse.graph.edge_events().num_rows > log_before
    monkeypatch.setenv("AAG_DEFER", "0")
    reference, ref_reports = _run(tmp_path / "ref", order, engine)
    assert ref_reports[1].rows_deferred == 0 and ref_reports[1].field_events > 0
    assert relationships(svc) == relationships(reference)
    emails = [
        r
        for r in svc.warehouse.graph.relationships().to_pylist()
        if r["rel_type"] == "HAS_EMAIL" and r["is_current"]
    ]
    assert len(emails) == 4


def first_load(a: str, b: str, c: str) -> list[Row]:
    """Three contacts of one day; ``b``'s e-mail is no address (a rejected field)."""
    return [
        contact(a, "2025-01-01T10:00:00Z"),
        contact(b, "2025-01-01T10:00:00Z", Email="not an address"),
        contact(c, "2025-01-01T10:00:00Z"),
    ]


def test_rows_with_quarantined_values_or_earlier_times_are_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AAG_DEFER", "1")
    folder = tmp_path / "in"
    folder.mkdir()
    (a, b, c) = ids(3)
    first = first_load(a, b, c)
    again = [
        contact(a, "2025-03-01T10:00:00Z"),  # deferred
        contact(b, "2025-03-01T10:00:00Z", Email="not an address"),  # its base was quarantined
        contact(c, "2024-12-01T10:00:00Z"),  # earlier than its base
    ]
    _, reports = _run(tmp_path / "wh", [write(folder / "1.jsonl", first), write(folder / "2.jsonl", again)])
    assert reports[1].rows_deferred == 1
    assert reports[1].fields_rejected == 1


def test_keyed_reads_of_landed_rows_equal_the_full_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small chunk reads the landed states of its own records and the landed rows of its
    # own digests only (DuckDB over bronze's files); a large one reads them all. Both must
    # see the same rows of the records asked about: quarantined rows lose their digest
    # (states) or are left out (digests), a byte-identical re-send is one state. The tiny
    # bronze here takes the keyed reads only when any share of its rows may.
    monkeypatch.setenv("AAG_DEFER", "1")
    monkeypatch.setattr(bronze_reads, "KEYED_SHARE", 1.0)
    folder = tmp_path / "in"
    folder.mkdir()
    (a, b, c) = ids(3)
    first = first_load(a, b, c)
    again = [contact(a, "2025-03-01T10:00:00Z"), contact(b, "2025-02-01T10:00:00Z")]
    # The third file re-sends the first's rows byte for byte, and one more.
    resend = [*first, contact(c, "2025-05-01T10:00:00Z", LastName="Later")]
    paths = [write(folder / f"{n}.jsonl", rows) for n, rows in enumerate([first, again, resend])]
    svc, reports = _run(tmp_path / "wh", paths)
    # a's and c's re-sent rows are byte-identical to landed ones and skip extraction (the
    # digest lookup must still see them); b's was quarantined, so it is extracted again.
    assert (reports[2].rows_unchanged, reports[2].fields_rejected) == (2, 1)
    bronze = svc.warehouse.bronze_uri("salesforce", "Contact")
    keys = svc.warehouse.io.read(bronze, "_row_digest")
    asked = pa.array([a, b, "003DEFERnotlanded"])
    wanted: set[str] = set(asked.to_pylist())

    def rows(table: pa.Table | pa.RecordBatchReader | None) -> list[tuple[Any, ...]]:
        assert table is not None
        found = table.read_all() if isinstance(table, pa.RecordBatchReader) else table
        return sorted(tuple(r.values()) for r in found.to_pylist() if r[found.column_names[0]] in wanted)

    landed = LandedBronze(svc.warehouse)
    keyed_states = landed.states("salesforce", "Contact", None, asked)
    digests = landed.digests("salesforce", "Contact", keys)
    assert isinstance(digests, pa.Table), "the keyed read was not taken"
    monkeypatch.setattr(bronze_reads, "KEYED_STATES", 0)
    full = LandedBronze(svc.warehouse)
    assert rows(keyed_states) == rows(full.states("salesforce", "Contact", None, asked))
    # Counted from the input: a and b have two distinct states each (b's first row was
    # quarantined: no digest); the re-sent rows equal their first landing's.
    assert len(rows(keyed_states)) == 4
    wanted = set(keys.column(0).to_pylist())
    # Every landed row but b's two quarantined ones (the first file's and its re-send).
    assert rows(digests) == rows(full.digests("salesforce", "Contact")) and len(rows(digests)) == 7


def test_random_batches_give_the_graph_of_a_run_without_deferral(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed-seed sweep (always the same cases): three records whose rows take few values
    # and times, in batches of random order. Half the rows re-send their record's previous
    # values (a re-sync, often later: deferred); a row with new values often falls before
    # its record's latest time, where a deferred row must be folded back. The sweep is
    # run once more with the fold switched off: some case must then differ, so the sweep
    # can see the fold fail, not only count it. A chunk reads its records' landed states
    # ahead whenever they are no more than the landed rows (at scale: a twentieth).
    monkeypatch.setattr(bronze_reads, "KEYED_SHARE", 1.0)
    rng = random.Random(11)
    combos = [{"Email": e, "LastName": n} for e in ("a@x.com", "b@x.com") for n in ("P", "Q")]
    deferred = folded = 0
    cases = []
    for case in range(8):
        root = tmp_path / str(case)
        root.mkdir()
        paths = []
        last: dict[str, tuple[dict[str, str], int, int]] = {}
        for n in range(rng.randrange(3, 6)):
            rows = []
            for record in rng.sample(ids(3), rng.randrange(1, 4)):
                previous = last.get(record)
                day = rng.randrange(1, 250)
                if previous is not None and rng.random() < 0.5:
                    values, since, latest = previous[0], previous[1], max(day, previous[2])
                else:
                    values = rng.choice([v for v in combos if previous is None or v != previous[0]])
                    if previous is not None and previous[2] - previous[1] > 1 and rng.random() < 0.7:
                        # A late row inside the run of the record's current values, where a
                        # deferred confirmation of them may lie.
                        day = rng.randrange(previous[1] + 1, previous[2])
                    since, latest = day, max(day, previous[2] if previous else 0)
                last[record] = (values, since, latest)
                when = (date(2025, 1, 1) + timedelta(days=day)).isoformat() + "T10:00:00Z"
                rows.append(contact(record, when, **values))
            paths.append(write(root / f"{n}.{rng.choice(['jsonl', 'csv'])}", rows))
        monkeypatch.setenv("AAG_DEFER", "1")
        svc, reports = _run(root / "wh", paths)
        deferred += sum(r.rows_deferred for r in reports)
        folded += sum(r.rows_folded for r in reports)
        monkeypatch.setenv("AAG_DEFER", "0")
        reference, _ = _run(root / "ref", paths)
        assert relationships(svc) == relationships(reference), case
        cases.append((root, paths, relationships(reference)))
    assert deferred > 0 and folded > 0, (deferred, folded)
    monkeypatch.setenv("AAG_DEFER", "1")
    monkeypatch.setattr(batch, "fold_deferred", lambda *args, **kwargs: 0)
    unfolded = [relationships(_run(root / "unfolded", paths)[0]) != ref for root, paths, ref in cases]
    assert any(unfolded), "no case needs the fold: the sweep cannot see it fail"
