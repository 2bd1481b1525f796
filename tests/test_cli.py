"""The CLI contract (SPEC §9) through real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

AAG = [sys.executable, "-m", "aag.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AAG, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_demo_shows_field_time_winning(tmp_path):
    result = run("demo", "--warehouse", str(tmp_path / "wh"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"]["phone"] == "+499876543210"
    assert data["profile"]["phone_source"] == "zendesk"
    assert data["explain_phone"]["winner"]["source_system"] == "zendesk"
    assert data["record_level_would_show"]["phone"] == "+49 111 000 0000"
    # The demo ends with gold built and a link to the explorer holding a read-only key.
    url = data["explorer"]["url"]
    assert url.startswith("http://127.0.0.1:8787/#key=aag_") and url.endswith(
        f"&customer={data['customer_id']}"
    )
    assert (tmp_path / "wh" / "gold" / "customer_profile_v2.parquet").exists()
    # The generated world: 1,000 people in five systems, files in all three formats, the
    # malformed rows quarantined, and the field-level rule well ahead of latest-record-wins.
    world = data["world"]
    assert world["people"] == world["people_in_one_customer"] == 1000
    assert set(world["files_by_format"]) == {"csv", "jsonl", "parquet"}
    assert world["rows_quarantined"] == world["malformed_rows_generated"] > 0
    assert world["records_deleted_in_source"] > 0
    assert world["field_level_accuracy"] >= 0.98
    assert world["field_level_accuracy"] - world["record_level_accuracy"] >= 0.05
    # Piped, the demo logs each world file and each dbt node to stderr as it goes.
    lines = log_lines(result)
    assert "generating the five-source world: 1,000 people" in lines, lines
    assert any(re.match(r"round7: \S+ committed, [\d,]+ rows landed", line) for line in lines), lines
    assert lines[-1] == "writing the gold Parquet files", lines
    keys = run("keys", "list", "--warehouse", str(tmp_path / "wh"))
    assert "demo-explorer" in keys.stdout and "read" in keys.stdout


def test_warehouse_from_env_and_profile_by_source(tmp_path):
    # A long path: messages must stay on one line whatever the width (scripts grep them).
    wh = tmp_path / ("w" * 90)
    env = {"AAG_WAREHOUSE": str(wh)}
    assert run("init", env=env).returncode == 0
    again = run("init", env=env)
    assert again.returncode == 0
    assert again.stdout.strip() == f"warehouse ready at {wh} (0 new item(s))", again.stdout
    src = tmp_path / "c.jsonl"
    src.write_text(
        json.dumps(
            {
                "Id": "0035g00000AbcdeAAA",
                "Email": " A@B.com",
                "LastModifiedDate": "2026-01-01T00:00:00Z",
            }
        )
        + "\n"
    )
    ingest = run("ingest", "salesforce", "Contact", str(src), "--json", env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)[0]["rows_landed"] == 1
    prof = run(
        "profile",
        "--source",
        "salesforce",
        "--source-id",
        "0035g00000AbcdeAAA",
        "--version",
        "1",
        "--json",
        env=env,
    )
    assert prof.returncode == 0, prof.stderr
    data = json.loads(prof.stdout)
    assert data["email"] == "a@b.com" and "email_source" not in data
    built = run("build", env=env)
    assert built.returncode == 0, built.stderr
    assert "customer_profile_v2" in built.stdout and "Running with dbt" not in built.stdout + built.stderr
    out = tmp_path / "p.csv"
    exp = run("export", "customer_profile_v2", "--format", "csv", "--out", str(out), env=env)
    assert exp.returncode == 0, exp.stderr
    assert out.read_text().replace('"', "").startswith("customer_id,email,email_source")


def test_values_that_look_like_markup_print_as_they_are(tmp_path):
    # Customer data is not rich markup: "[/b]" alone would make rich raise, "[b]" vanish.
    env = {"AAG_WAREHOUSE": str(tmp_path / "wh"), "COLUMNS": "200"}
    assert run("init", env=env).returncode == 0
    name, old = "[/b]Zoë [bold]X[/bold]", "[red]Old[/red]"
    rows = [
        {"Id": "0035g00000MarkpAAA", "FirstName": old, "LastModifiedDate": "2026-01-01T00:00:00Z"},
        {"Id": "0035g00000MarkpAAA", "FirstName": name, "LastModifiedDate": "2026-02-01T00:00:00Z"},
    ]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert run("ingest", "salesforce", "Contact", str(src), env=env).returncode == 0
    record = ["--source", "salesforce", "--source-id", "0035g00000MarkpAAA"]
    prof = run("profile", *record, env=env)
    assert prof.returncode == 0 and name in prof.stdout, prof.stdout + prof.stderr
    why = run("explain", *record, "--attribute", "first_name", env=env)
    assert why.returncode == 0, why.stderr
    assert f"winner: {name} from salesforce" in why.stdout and old in why.stdout, why.stdout
    bad = run("export", "no[/x]model", "--out", str(tmp_path / "x.csv"), env=env)
    assert bad.returncode != 0 and "no[/x]model" in bad.stderr, bad.stderr


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    wh = str(tmp_path / "wh")
    cases = [
        ("profile", "--customer", "nope", "--warehouse", wh),  # not initialised
        ("build", "--warehouse", str(tmp_path / "nowhere")),  # not initialised
    ]
    assert run("init", "--warehouse", wh).returncode == 0
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"garbage")
    cases += [
        ("profile", "--customer", "nope", "--warehouse", wh),
        ("ingest", "salesforce", "Contact", str(bad), "--warehouse", wh),
        ("ingest", "nosuch", "Thing", str(bad), "--warehouse", wh),
        ("ingest", "salesforce", "Contact", str(tmp_path / "missing.jsonl"), "--warehouse", wh),
        ("explain", "--customer", "x", "--attribute", "shoe_size", "--warehouse", wh),
        ("export", "nosuch_model", "--warehouse", wh),
        ("export", "customer_profile_v2", "--warehouse", wh),  # gold not built yet
        ("profile", "--warehouse", wh),
    ]
    for args in cases:
        result = run(*args)
        assert result.returncode != 0, args
        # Piped, progress lines may come first (stamped, see LOG_LINE); the error is one line.
        lines = [line for line in result.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (Path(wh) / "bronze").exists()


LOG_LINE = re.compile(r"^\[ *\d+\.\ds\] \S")


def log_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Progress lines on stderr (piped: not a terminal), each stamped with the time elapsed."""
    lines = result.stderr.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), result.stderr
    return [line.split("] ", 1)[1] for line in lines]


def test_piped_ingest_and_build_log_progress_lines(tmp_path):
    wh = str(tmp_path / "wh")
    assert run("init", "--warehouse", wh).returncode == 0
    src = tmp_path / "contacts.jsonl"
    rows = [
        {
            "Id": f"0035g00000Log{i:02d}AAA",
            "Email": f"p{i}@x.example",
            "LastModifiedDate": "2026-01-01T00:00:00Z",
        }
        for i in range(5)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest = run("ingest", "salesforce", "Contact", str(src), "--chunk-rows", "2", "--warehouse", wh)
    assert ingest.returncode == 0, ingest.stderr
    lines = log_lines(ingest)
    # One line per step of each of the three chunks, one per finished chunk, one per file.
    assert "[1/1] contacts.jsonl: chunk 3, committing" in lines, lines
    assert any(line.startswith("[1/1] contacts.jsonl: chunk 2 done, ") for line in lines), lines
    assert lines[-1].startswith("[1/1] contacts.jsonl: committed, 5 rows landed, 0 quarantined"), lines
    built = run("build", "--warehouse", wh)
    assert built.returncode == 0, built.stderr
    lines = log_lines(built)
    assert lines[0] == "dbt build: parsing the project" and "None" not in built.stderr, lines
    counted = [re.match(r"dbt build: \[(\d+)/(\d+)\] ", line) for line in lines[1:-1]]
    assert all(counted) and [int(m[1]) for m in counted if m] == list(range(1, len(counted) + 1)), lines
    assert {int(m[2]) for m in counted if m} == {len(counted)}, lines
    assert lines[-1] == "writing the gold Parquet files", lines


def test_piped_seed_demo_logs_each_batch(tmp_path):
    result = run("demo", "--people", "0", "--warehouse", str(tmp_path / "wh"))
    assert result.returncode == 0, result.stderr
    lines = log_lines(result)
    assert lines[0] == "seed case: ingesting salesforce.Contact salesforce_contact_2024-03-01.jsonl", lines
    assert len(lines) == 6 and all(line.startswith("seed case: ingesting ") for line in lines), lines
    # The way to call aag again is a command, not the package's __main__.py.
    assert "__main__.py" not in result.stdout, result.stdout


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command prints: non-zero exit, no traceback, no 'internal error'."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_export_to_a_folder_says_it_is_a_folder(tmp_path):
    wh = str(tmp_path / "wh")
    assert run("init", "--warehouse", wh).returncode == 0
    folder = tmp_path / "out"
    folder.mkdir()
    line = one_error_line(run("export", "nodes", "--format", "csv", "--out", str(folder), "--warehouse", wh))
    assert f"{folder} is a folder" in line and "File exists" not in line, line
    assert list(folder.iterdir()) == []


def test_ingest_of_a_folder_says_it_is_a_folder(tmp_path):
    wh = str(tmp_path / "wh")
    assert run("init", "--warehouse", wh).returncode == 0
    (tmp_path / "in").mkdir()
    line = one_error_line(run("ingest", "salesforce", "Contact", str(tmp_path / "in"), "--warehouse", wh))
    assert f"{tmp_path / 'in'} is a folder" in line and "no such file" not in line, line
    assert not (Path(wh) / "bronze").exists()


def test_init_on_a_file_says_the_warehouse_is_a_file(tmp_path):
    path = tmp_path / "wh"
    path.write_text("not a warehouse\n")
    line = one_error_line(run("init", "--warehouse", str(path)))
    assert line == f"error: the warehouse {path} is a file, not a folder", line
    below = one_error_line(run("init", "--warehouse", str(path / "sub")))
    assert line != below and f"{path} is a file" in below, below
    assert path.read_text() == "not a warehouse\n"


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for real: a read-only bind mount as root, else no write permission."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(modes[p] & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_keys_on_a_read_only_warehouse_name_the_keys_file(tmp_path):
    wh = tmp_path / "wh"
    assert run("init", "--warehouse", str(wh)).returncode == 0
    assert run("keys", "add", "first", "--warehouse", str(wh)).returncode == 0
    keys = wh / "config" / "api_keys.csv"
    before = keys.read_text()
    with read_only(wh):
        for args in (("add", "second"), ("revoke", "first")):
            line = one_error_line(run("keys", *args, "--warehouse", str(wh)))
            assert f"cannot write the API keys file {keys}" in line, line
            assert "Read-only file system" in line or "Permission denied" in line, line
    assert keys.read_text() == before


@pytest.mark.spark
def test_ingest_with_the_spark_engine_gives_the_local_tables(tmp_path):
    """``AAG_ENGINE=spark aag ingest`` runs the whole batch on local Spark.

    One call (each starts a JVM): the demo's two Zendesk files, the second changing the
    phone, so the rules close a version as well as open them.
    """
    from aag.demo import write_demo_files
    from aag.service import AagService

    paths = [str(p) for b, p in write_demo_files(tmp_path / "files") if b.source_system == "zendesk"]
    assert len(paths) == 2
    for engine in ("local", "spark"):
        env = {"AAG_WAREHOUSE": str(tmp_path / engine), "AAG_ENGINE": engine}
        assert run("init", env=env).returncode == 0
        done = run("ingest", "zendesk", "users", *paths, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
    local, spark = (AagService(str(tmp_path / e)) for e in ("local", "spark"))
    keep = ["source_node_id", "target_node_id", "rel_type", "updated_at", "is_current", "source_event_id"]
    rows = sorted(spark.model("relationships").select(keep).to_pylist(), key=repr)
    assert rows == sorted(local.model("relationships").select(keep).to_pylist(), key=repr)
    assert any(not r["is_current"] and r["rel_type"] == "HAS_PHONE" for r in rows)
    # Profiles resolved from each warehouse's own tables (gold needs 'aag build', not run here).
    assert spark.customer_profiles(2).to_pylist() == local.customer_profiles(2).to_pylist()
    assert local.customer_profiles(2).num_rows > 0
