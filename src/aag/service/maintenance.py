"""Table maintenance: compaction and clustering (``aag optimize``), and ``aag vacuum``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aag.graph.deletion_vectors import drop_dead_vectors
from aag.graph.delta import is_local
from aag.graph.warehouse import Warehouse


def optimize(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """Rewrite small files into large ones; cluster edges by entity for lookups.

    Every batch adds files, and a profile or explanation reads one entity's edges:
    Z-ordering ``relationships`` (and the event log) by ``source_node_id`` lets the
    reader skip files by their statistics. Contents do not change; run
    :func:`vacuum` afterwards to delete the replaced files.
    """
    wh.require()
    graph = wh.graph
    plan: list[tuple[str, list[str] | None]] = [
        (graph.relationships_uri, ["source_node_id"]),
        (graph.edge_events_uri, ["source_node_id"]),
        (graph.nodes_uri, None),
        (wh.quarantine_uri, None),
        *[(uri, None) for uri in bronze_tables(wh)],
    ]
    out: dict[str, dict[str, Any]] = {}
    with wh.writer_lock():
        for uri, columns in plan:
            if not wh.io.exists(uri):
                continue
            optimizer = wh.io.open(uri).optimize
            metrics = optimizer.z_order(columns) if columns else optimizer.compact()
            out[uri] = {
                "files_removed": int(metrics.get("numFilesRemoved", 0)),
                "files_added": int(metrics.get("numFilesAdded", 0)),
            }
    return out


def vacuum(wh: Warehouse) -> dict[str, int]:
    """Delete files no longer referenced by any table version (irreversible)."""
    wh.require()
    uris = [
        wh.graph.nodes_uri,
        wh.graph.relationships_uri,
        wh.graph.edge_events_uri,
        wh.quarantine_uri,
        wh.ledger_uri,
        wh.erasures_uri,
    ]
    uris += bronze_tables(wh)
    removed: dict[str, int] = {}
    with wh.writer_lock():
        for uri in uris:
            if not wh.io.exists(uri):
                continue
            table = wh.io.open(uri)
            files = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
            removed[uri] = len(files) + _drop_change_data(uri)
            if wh.local:
                removed[uri] += drop_dead_vectors(uri)
    return removed


def _drop_change_data(uri: str) -> int:
    """Delete a local table's change data files; returns how many.

    delta-rs's vacuum leaves ``_change_data`` alone, and those files hold the rows every
    merge replaced, erased customers' values included. Without them the feed cannot be
    read back past this point, so the next ``aag build`` is a full one.
    """
    folder = Path(uri) / "_change_data"
    if not is_local(uri) or not folder.is_dir():
        return 0
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        path.unlink()
    return len(files)


def bronze_tables(wh: Warehouse) -> list[str]:
    """Every bronze table of the warehouse (on a local one, those that exist)."""
    if not wh.local:
        return [wh.bronze_uri(s.source_system, s.source_object) for s in wh.config.objects]
    root = Path(wh.uri) / "bronze"
    return [str(p.parent) for p in root.glob("*/*/_delta_log")] if root.exists() else []
