"""Field-history files for a generated world: what its CRM and ERP logs would say.

The world (:mod:`aag.world`) writes record-level files only. These helpers derive, from
its Salesforce Contact and SAP KNA1 files, the logs those systems keep beside them:
``ContactHistory`` rows dating some Contact fields to the exact second before the
record's ``LastModifiedDate``, and SAP change documents (``CDHDR`` headers, ``CDPOS``
items) dating KNA1 fields within the day of ``LAEDA``. Each round's logs follow that
round's record file, headers before items, as ``aag ingest`` needs them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: Contact fields a ContactHistory row changes, and how long before the record's time.
CONTACT_CHANGES = (("Phone", timedelta(hours=3)), ("Email", timedelta(days=2)))
#: KNA1 fields a change document item changes (NAME1 with NAME2: the full name).
KNA1_CHANGES = ("TELF1", "NAME1", "NAME2", "ORT01", "LOEVM")


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the world's malformed rows: no record to log a change of
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _write(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _contact_history(rows: list[dict[str, Any]], every: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        try:
            at = datetime.fromisoformat(str(row["LastModifiedDate"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if n % every or not row.get("Id"):
            continue
        for field, before in CONTACT_CHANGES:
            out.append(
                {
                    "Id": f"017H{len(out):011d}",
                    "ContactId": row["Id"],
                    "Field": field,
                    "OldValue": None,
                    "NewValue": row.get(field),
                    "CreatedDate": (at - before).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
    return out


def _change_documents(
    rows: list[dict[str, Any]], every: int, first: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        day = str(row.get("LAEDA") or "")
        try:
            datetime.strptime(day, "%Y%m%d")
        except ValueError:
            continue
        if n % every or not row.get("KUNNR"):
            continue
        number = f"{first + len(headers):010d}"
        document = {"OBJECTCLAS": "DEBI", "OBJECTID": row["KUNNR"], "CHANGENR": number}
        headers.append({**document, "UDATE": day, "UTIME": "093000", "USERNAME": "CLERK", "TCODE": "XD02"})
        for field in KNA1_CHANGES:
            if field == "LOEVM" and row.get(field) != "X":
                continue
            items.append(
                {
                    **document,
                    "TABNAME": "KNA1",
                    "TABKEY": f"100{row['KUNNR']}",
                    "FNAME": field,
                    "CHNGIND": "U",
                    "VALUE_NEW": row.get(field),
                }
            )
    return headers, items


def with_history_files(
    files: Sequence[tuple[str, str, Path]], folder: Path, every: int = 3
) -> list[tuple[str, str, Path]]:
    """The world's files with field-history files after each Contact and KNA1 file.

    Args:
        files: The world's ``(system, object, path)`` files in ingest order (JSON Lines).
        folder: Where the history files go.
        every: Log the changes of every ``every``-th record of a file.
    """
    out: list[tuple[str, str, Path]] = []
    for n, (system, obj, path) in enumerate(files):
        out.append((system, obj, path))
        logs: list[tuple[str, list[dict[str, Any]]]] = []
        if (system, obj) == ("salesforce", "Contact"):
            logs = [("ContactHistory", _contact_history(_rows(path), every))]
        elif (system, obj) == ("sap", "KNA1"):
            headers, items = _change_documents(_rows(path), every, first=1000 * (n + 1))
            logs = [("CDHDR", headers), ("CDPOS", items)]
        out += [(system, log, _write(folder / f"{n}_{log}.jsonl", rows)) for log, rows in logs if rows]
    return out
