"""Extraction runs the same SQL on DuckDB and Spark and must give identical events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aag.bronze import read_rows
from aag.config import load_config
from aag.demo import write_demo_files
from aag.graph.delta import now_utc
from aag.sources import extractor_for
from aag.sources.base import EVENTS_TABLE, NODES_TABLE, landed_table

ADR6_ROWS = [
    {
        "ADDRNUMBER": "500001",
        "PERSNUMBER": "",
        "CONSNUMBER": "001",
        "SMTP_ADDR": "a@x.io",
        "DATE_FROM": "20250101",
    },
    {"ADDRNUMBER": "500001", "PERSNUMBER": "", "CONSNUMBER": "002", "SMTP_ADDR": "b@x.io", "FLGDEFAULT": "X"},
    {"ADDRNUMBER": "500002", "CONSNUMBER": "001", "SMTP_ADDR": "not an email"},
    {"ADDRNUMBER": "", "SMTP_ADDR": "lost@x.io"},
]


CDHDR_ROWS = [
    {"OBJECTCLAS": "DEBI", "OBJECTID": "1", "CHANGENR": "0000004711", "UDATE": "20260301", "UTIME": "142305"},
    {"OBJECTCLAS": "DEBI", "OBJECTID": "1", "CHANGENR": "0000004712", "UDATE": "20260301", "UTIME": "250000"},
    {"OBJECTCLAS": "DEBI", "OBJECTID": "1", "CHANGENR": "0000004713", "UDATE": "20261301", "UTIME": "120000"},
    {"OBJECTCLAS": "DEBI", "OBJECTID": "1", "CHANGENR": "", "UDATE": "20260301", "UTIME": "120000"},
    {"OBJECTCLAS": "MATERIAL", "OBJECTID": "M-1", "CHANGENR": "1", "UDATE": "x", "UTIME": ""},
]


def _item(nr: str, fname: str, new: str | None, **kw: str) -> dict[str, Any]:
    return {"OBJECTCLAS": "DEBI", "OBJECTID": "1", "CHANGENR": nr, "TABNAME": "KNA1", "FNAME": fname} | {
        "VALUE_NEW": new,
        **kw,
    }


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _other_sources(folder: Path) -> list[tuple[str, str, Path]]:
    """Objects beyond the demo's, each with good rows and bad ones."""
    sf = "2026-03-01T09:05:00Z"
    kna1 = {"KUNNR": "1", "NAME1": "Muster", "NAME2": "GmbH", "LAND1": "DE", "TELF1": "030 1234567"}
    at = "2026-03-01T09:00:00Z"
    return [
        (
            "salesforce",
            "Account",
            _write(
                folder / "account.jsonl",
                [
                    {
                        "Id": "0015g00000AcmeX",
                        "Name": "Acme",
                        "Website": "HTTPS://acme.io/",
                        "LastModifiedDate": sf,
                    },
                    {"Id": None, "Name": "No id", "LastModifiedDate": sf},
                ],
            ),
        ),
        (
            "salesforce",
            "Asset",
            _write(
                folder / "asset.jsonl",
                [
                    {
                        "Id": "02i5g00000Pump1",
                        "AccountId": "0015g00000AcmeX",
                        "Name": "Pump",
                        "LastModifiedDate": sf,
                    },
                    {"Id": "02i5g00000Pump2", "AccountId": None, "IsDeleted": True, "LastModifiedDate": sf},
                    {
                        "Id": "02i5g00000Pump3",
                        "AccountId": "0015g00000AcmeX",
                        "LastModifiedDate": "13/13/2026",
                    },
                ],
            ),
        ),
        (
            "sap",
            "KNA1",
            _write(
                folder / "kna1.jsonl",
                [
                    {**kna1, "ADRNR": "500001", "LAEDA": "20260301", "ERDAT": "20200101"},
                    {**kna1, "KUNNR": "2", "ADRNR": "500002", "LAEDA": "", "ERDAT": "20190505"},
                    {**kna1, "KUNNR": "3", "LAEDA": "20261345"},
                    {**kna1, "KUNNR": "4", "LAEDA": "00000000", "ERDAT": "abc"},
                    {**kna1, "KUNNR": "5", "LAEDA": "20260401", "LOEVM": "X"},
                ],
            ),
        ),
        ("sap", "ADR6", _write(folder / "adr6.jsonl", ADR6_ROWS)),
        ("sap", "CDHDR", _write(folder / "cdhdr.jsonl", CDHDR_ROWS)),
        (
            "sap",
            "CDPOS",
            _write(
                folder / "cdpos.jsonl",
                [
                    _item("0000004711", "TELF1", "+49 30 7654321"),
                    _item("0000004711", "TELF1", "030 7654321"),  # national: no region in a history row
                    _item("0000004711", "LAND1", "Deutschland"),
                    _item("0000004711", "NAME1", "Muster AG"),
                    _item("0000004711", "NAME2", ""),
                    _item("0000004711", "STRAS", ""),
                    _item("0000004711", "KDGRP", "01", TABNAME="KNVV"),
                    _item("0000004712", "ORT01", "Köln"),
                    _item("0000004713", "ORT01", "Köln"),
                    _item("0000009999", "ORT01", "Bonn"),
                    _item("0000004711", "LOEVM", "X"),
                    _item("0000004711", "LOEVM", "Y"),
                    _item("1", "MATKL", "X", OBJECTCLAS="MATERIAL", OBJECTID="M-1", TABNAME="MARA"),
                    _item("0000004711", "ORT01", "Potsdam", OBJECTID=""),
                ],
            ),
        ),
        (
            "salesforce",
            "ContactHistory",
            _write(
                folder / "contact_history.jsonl",
                [
                    {
                        "Id": "017A1",
                        "ContactId": "0035g00000Abcde",
                        "Field": "Phone",
                        "NewValue": "+49 30 1234567",
                        "CreatedDate": sf,
                    },
                    {
                        "Id": "017A2",
                        "ContactId": "0035g00000Abcde",
                        "Field": "MailingCountry",
                        "NewValue": "UK",
                        "CreatedDate": sf,
                    },
                    {
                        "Id": "017A3",
                        "ContactId": "0035g00000Abcde",
                        "Field": "HasOptedOutOfEmail",
                        "NewValue": "true",
                        "CreatedDate": sf,
                    },
                    {
                        "Id": "017A4",
                        "ContactId": "0035g00000Abcde",
                        "Field": "Email",
                        "NewValue": "",
                        "CreatedDate": sf,
                    },
                    {"Id": "017A5", "ContactId": "0035g00000Abcde", "Field": "created", "CreatedDate": sf},
                    {"Id": "017A6", "ContactId": None, "Field": "Phone", "NewValue": "+1", "CreatedDate": sf},
                    {
                        "Id": "017A7",
                        "ContactId": "0035g00000Abcde",
                        "Field": "Phone",
                        "NewValue": "no",
                        "CreatedDate": "yesterday",
                    },
                    {
                        "Id": "017A8",
                        "ContactId": "0035g00000Abcde",
                        "Field": "Phone",
                        "NewValue": "no phone",
                        "CreatedDate": sf,
                    },
                ],
            ),
        ),
        (
            "segment",
            "identifies",
            _write(
                folder / "identifies.jsonl",
                [
                    {
                        "message_id": "m1",
                        "user_id": "0035g00000Abcde",
                        "timestamp": at,
                        "traits": {"email": "A@x.io"},
                    },
                    {
                        "message_id": "m1",
                        "user_id": "0035g00000Abcde",
                        "timestamp": at,
                        "traits": {"email": "A@x.io"},
                    },
                    {
                        "message_id": "m2",
                        "anonymous_id": "anon-1",
                        "timestamp": at,
                        "traits": {
                            "phone": None,
                            "address": {"city": "Roma", "country": "IT"},
                            "lastName": "",
                        },
                    },
                    {"message_id": "m3", "user_id": "u3", "timestamp": at, "traits": [1]},
                    {"message_id": "m4", "user_id": "u4", "timestamp": "never", "traits": {}},
                ],
            ),
        ),
    ]


def _rows(table: pa.Table) -> list[str]:
    return sorted(map(repr, table.to_pylist()))


@pytest.mark.spark
def test_demo_batches_extract_identically(tmp_path: Path, duckdb_engine, spark_engine):
    config = load_config()
    now = now_utc()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"Id": "0035g00000Abcde", "LastModifiedDate": "2026-13-45", "Phone": "x"}\n'
        '{"Id": "0035g00000Fghij", "LastModifiedDate": "2026-01-01T00:00:00Z",'
        ' "Phone": "n/a", "MailingCountry": "Atlantis", "Email": "ok@x.io"}\n{oops\n'
    )
    files = [(b.source_system, b.source_object, p) for b, p in write_demo_files(tmp_path)]
    files.append(("salesforce", "Contact", bad))
    files += _other_sources(tmp_path)
    # KNA1 joins landed ADR6 rows: both engines get the same ones.
    adr6 = extractor_for(config.object("sap", "ADR6"), config)
    landed = read_rows(_write(tmp_path / "adr6.jsonl", ADR6_ROWS), adr6.fields)
    landed = landed.append_column("_batch_id", pa.array(["b0"] * landed.num_rows, pa.string()))
    landed = landed.append_column("_landed_at", pa.array([now.as_py()] * landed.num_rows, now.type))
    # CDPOS joins landed CDHDR headers the same way.
    cdhdr = extractor_for(config.object("sap", "CDHDR"), config)
    headers = read_rows(_write(tmp_path / "cdhdr.jsonl", CDHDR_ROWS), cdhdr.fields)
    headers = headers.append_column("_batch_id", pa.array(["b0"] * headers.num_rows, pa.string()))
    headers = headers.append_column("_landed_at", pa.array([now.as_py()] * headers.num_rows, now.type))
    for engine in (duckdb_engine, spark_engine):
        engine.register(landed_table("ADR6"), landed)
        engine.register(landed_table("CDHDR"), headers)
    for system, obj, path in files:
        spec = config.object(system, obj)
        extractor = extractor_for(spec, config)
        rows = read_rows(path, extractor.fields)
        out = {}
        for name, engine in (("local", duckdb_engine), ("spark", spark_engine)):
            # One extractor per file and run: it may keep state across a file's chunks.
            extractor = extractor_for(spec, config)
            extracted = extractor.extract(engine, rows, "b1", now)
            extractor.close()
            out[name] = (
                extracted,
                engine.query(f"SELECT * FROM {EVENTS_TABLE}"),
                engine.query(f"SELECT * FROM {NODES_TABLE}"),
            )
        local, local_events, local_nodes = out["local"]
        spark, spark_events, spark_nodes = out["spark"]
        assert local.events > 0 or path == bad or obj in ("ADR6", "CDHDR")
        assert _rows(local_events) == _rows(spark_events), path.name
        assert _rows(local_nodes) == _rows(spark_nodes), path.name
        assert _rows(local.quarantine) == _rows(spark.quarantine), path.name
        assert local.rows_quarantined == spark.rows_quarantined
