"""GDPR erasure of one customer: graph, bronze, quarantine, intake spool and gold.

Values leave the warehouse physically: rows are deleted by their keys (the values never
appear in a query or a commit), ``aag vacuum`` then deletes the superseded files, and a
one-way key per record in the erasure log stops a source re-sending them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aag import gold
from aag.bronze import parse_raw
from aag.graph.deletion_vectors import purge
from aag.graph.delta import change_feed_paused, delete_matching
from aag.graph.warehouse import Warehouse
from aag.identity.erasure import (
    add_related,
    identifying_fields,
    identifying_rel_types,
    log_rows,
    needles_for,
    new_erasure,
    plan_erasure,
    records_by_object,
)
from aag.model import ERASURES
from aag.service.maintenance import bronze_tables
from aag.sources import extractor_for, objects_belonging_to


def erase_customer(wh: Warehouse, members: list[str], requested_by: str) -> dict[str, Any]:
    """GDPR erasure of one customer: every source record of its identity cluster.

    Removes the records' edges, the values only they used, their bronze rows (and the
    field-history and change-document rows landed under their ids) and their
    quarantine rows, then every bronze, quarantine and intake-spool row holding one of
    the person's e-mail addresses or phone numbers (rows that never became records),
    deletes the gold outputs (they hold the customer until the next ``aag build``), and
    logs a one-way key per record so later batches suppress them (the log names who asked
    and when, never a value). Run :func:`aag.service.maintenance.vacuum` to delete the superseded
    files.

    The caller holds the warehouse's intake and writer locks (in that order: the intake
    worker's own), so no batch and no spooled call lands meanwhile.

    Args:
        wh: The warehouse.
        members: The customer's record entities, its survivor first.
        requested_by: Who asked (logged).
    """
    graph = wh.graph
    plan = plan_erasure(graph, members)
    edges, records, drop_nodes = plan.edges, plan.records, plan.drop_nodes
    meta = {"aag.operation": "erase"}
    sources = pa.table({"source_node_id": members})
    bronze_rows = 0
    by_object = records_by_object(plan.records)

    def landed_of(system: str, obj: str, record_ids: list[str]) -> pa.Table | None:
        stored = wh.bronze_of(system, obj, record_ids, ["_raw"]) if record_ids else None
        if stored is None:
            return None
        return parse_raw(stored, extractor_for(wh.config.object(system, obj), wh.config).fields)

    landed = add_related(wh.config, by_object, landed_of)
    # Rows that never became records (a malformed id, a quarantined row, a call
    # still in the intake spool) are found by the person's identifying values.
    # Read before the value nodes go: their normalised spellings are needles too.
    rel_types = identifying_rel_types(wh.config)
    for (system, obj), record_ids in by_object.items():
        if (system, obj) not in landed and identifying_fields(wh.config, system, obj, rel_types):
            rows = landed_of(system, obj, record_ids)
            if rows is not None:
                landed[(system, obj)] = rows
    needles = needles_for(wh.config, graph, plan, landed)
    if wh.local:
        # Rows hidden behind deletion vectors (replaced edge versions) still hold their
        # values in the data files: rewrite those files without them first.
        purge(graph.relationships_uri, meta)
    with change_feed_paused(wh.io, graph.relationships_uri):
        delete_matching(wh.io, graph.relationships_uri, sources, meta)
        delete_matching(wh.io, graph.relationships_uri, pa.table({"target_node_id": members}), meta)
    delete_matching(wh.io, graph.edge_events_uri, sources, meta)
    delete_matching(wh.io, graph.nodes_uri, pa.table({"node_id": drop_nodes}), meta)
    log: list[dict[str, Any]] = []
    erasure = new_erasure(requested_by, members[0])
    for (system, obj), record_ids in by_object.items():
        # Field histories and change documents of a record are landed under its id.
        owned = [s.source_object for s in objects_belonging_to(wh.config, system, obj)]
        for bronze_object in (obj, *owned):
            log += log_rows(erasure, system, bronze_object, record_ids)
            bronze_rows += delete_matching(
                wh.io,
                wh.bronze_uri(system, bronze_object),
                pa.table({"_record_id": record_ids}),
                meta,
            )
        delete_matching(
            wh.io,
            wh.quarantine_uri,
            pa.table({"source_system": [system] * len(record_ids), "record_id": record_ids}),
            meta,
        )
    found_by_value = _erase_by_value(wh, needles, meta)
    gold_files = gold.discard(wh, erased=members) if wh.local else 0
    # Logged last: a crash before this re-runs as a fresh erasure of what is left.
    wh.log_erasure(pa.Table.from_pylist(log, schema=ERASURES))
    return {
        "erasure_id": erasure["erasure_id"],
        "edges_removed": edges.num_rows,
        "nodes_removed": len(drop_nodes),
        "bronze_rows_removed": bronze_rows,
        "source_records": len(records),
        "rows_found_by_value": found_by_value,
        "gold_files_removed": gold_files,
    }


def _holding(text: pa.Array | pa.ChunkedArray, needles: list[str]) -> pa.Array | pa.ChunkedArray:
    """Which texts contain any needle (case-insensitive)."""
    lowered = pc.utf8_lower(pc.fill_null(pc.cast(text, pa.large_string()), ""))
    hit = pc.match_substring(lowered, needles[0])
    for needle in needles[1:]:
        hit = pc.or_(hit, pc.match_substring(lowered, needle))
    return hit


def _erase_by_value(wh: Warehouse, needles: list[str], meta: dict[str, str]) -> int:
    """Delete every bronze, quarantine and intake-spool row holding one of ``needles``.

    Bronze and quarantine are streamed (never whole in memory); the needles never
    appear in a query or a commit (rows are deleted by their keys). Returns the rows
    deleted.
    """
    if not needles:
        return 0
    removed = 0
    targets = [(uri, "_raw", ["_batch_id", "_row_number"]) for uri in bronze_tables(wh)]
    targets.append((wh.quarantine_uri, "raw", ["source_system", "source_object", "batch_id", "row_number"]))
    for uri, text, key in targets:
        if not wh.io.exists(uri):
            continue
        cols = ", ".join([*key, text])
        hits = []
        for batch in wh.io.reader(uri, f"SELECT {cols} FROM t"):  # noqa: S608 - column names are module constants
            # DataFusion streams string views, which not every Arrow kernel takes.
            plain = pa.table(
                [
                    c.cast(pa.string()) if pa.types.is_string_view(c.type) else c
                    for c in batch.select(key).columns
                ],
                names=key,
            )
            mask = _holding(batch.column(text), needles)
            if pc.any(mask).as_py():
                hits.append(plain.filter(mask))
        if hits:
            keys = pa.concat_tables(hits)
            removed += delete_matching(wh.io, uri, keys, meta)
    if wh.local:
        removed += _erase_from_spool(wh.intake_root, needles)
    return removed


def _erase_from_spool(root: Path, needles: list[str]) -> int:
    """Drop the spooled intake lines holding a needle (files rewritten atomically)."""
    if not root.exists():
        return 0
    removed = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not (path.name.endswith(".jsonl") or path.name.endswith(".tmp")):
            continue
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)
        keep = [line for line in lines if not any(n in line.lower() for n in needles)]
        if len(keep) == len(lines):
            continue
        removed += len(lines) - len(keep)
        if not keep or path.name.endswith(".tmp"):
            # An unacknowledged leftover (.tmp) or a file with nothing else in it. A cut
            # batch's listing goes too: its pending files are still there (swept here as
            # well) and are cut again.
            path.unlink()
            if path.parent.name == "batches" and path.suffix == ".jsonl":
                path.with_suffix(".json").unlink(missing_ok=True)
            continue
        tmp = path.with_name(f".{path.name}.erase")
        tmp.write_bytes("".join(keep).encode("utf-8"))
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    return removed
