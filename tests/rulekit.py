"""Helpers for rule tests: build field events, apply batches, and a reference model."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from aag.engine.base import Engine
from aag.graph.memory import MemoryGraphStore
from aag.graph.store import GraphStore
from aag.model import FIELD_EVENTS, NODES
from aag.pipeline import plan_change

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    entity: str
    target: str | None  # None = removal
    minute: int
    eid: str
    rel: str = "HAS_PHONE"
    system: str = "crm"

    def row(self, batch: str = "b") -> dict[str, object]:
        return {
            "source_node_id": self.entity,
            "rel_type": self.rel,
            "source_system": self.system,
            "target_node_id": self.target,
            "updated_at": T0 + timedelta(minutes=self.minute),
            "source_event_id": self.eid,
            "confidence": 1.0,
            "source_field": "Phone",
            "batch_id": batch,
        }


def events_table(events: list[Ev], batch: str = "b") -> pa.Table:
    return pa.Table.from_pylist([e.row(batch) for e in events], schema=FIELD_EVENTS)


PATHS: Counter[str] = Counter()

#: An edge version as the reference model shapes it: (entity, rel, system, target, start,
#: is_current, eid).
Edge = tuple[str, str, str, str, datetime, bool, str]
#: An edge version as stored: those columns and its sorted properties.
Version = tuple[str, str, str, str, datetime, bool, str, tuple[tuple[str, str], ...]]


def apply(
    engine: Engine,
    store: MemoryGraphStore,
    events: list[Ev],
    batch: str = "b",
    day_precision: tuple[str, ...] = (),
) -> int:
    """Apply one batch; returns the number of new edge versions."""
    engine.register("batch_events", events_table(events, batch))
    engine.register("batch_nodes", NODES.empty_table())
    plan = plan_change(engine, store, "batch_events", "batch_nodes", day_precision=day_precision)
    try:
        store.commit(plan.change())
    finally:
        plan.release()
    PATHS.update(plan.paths)
    return plan.new_versions


def versions(store: GraphStore) -> list[Version]:
    """Edge rows without ingestion bookkeeping (batch_id), sorted."""
    rows = store.relationships().to_pylist()
    out: list[Version] = []
    for r in rows:
        props = dict(r["properties"] or [])
        props.pop("batch_id", None)
        out.append(
            (
                r["source_node_id"],
                r["rel_type"],
                r["source_system"],
                r["target_node_id"],
                r["updated_at"],
                r["is_current"],
                r["source_event_id"],
                tuple(sorted(props.items())),
            )
        )
    return sorted(out, key=repr)


def day_of(e: Ev) -> object:
    """The UTC day an event happened on."""
    return (T0 + timedelta(minutes=e.minute)).date()


def reference(events: list[Ev], day_precision: tuple[str, ...] = ()) -> list[Edge]:
    """SPEC §3 as plain Python: (entity, rel, system, target, start, is_current, eid).

    Events whose id starts with one of ``day_precision`` have day precision: a finer
    event of the key on the same day with the same target shadows them.
    """
    by_key: dict[tuple[str, str, str], list[Ev]] = {}
    for e in set(events):
        by_key.setdefault((e.entity, e.rel, e.system), []).append(e)
    out: list[Edge] = []
    for key, evs in by_key.items():
        finer = {(day_of(e), e.target) for e in evs if not e.eid.startswith(day_precision)}
        evs = [e for e in evs if not (e.eid.startswith(day_precision) and (day_of(e), e.target) in finer)]
        evs.sort(key=lambda e: (e.minute, e.eid, "" if e.target is None else "\x01" + e.target))
        runs: list[list[Any]] = []  # [target, start, eid, ended]
        prev: str | None = None
        for e in evs:
            if e.target is not None and e.target != prev:
                if runs and not runs[-1][3]:
                    runs[-1][3] = True
                runs.append([e.target, e.minute, e.eid, False])
            elif e.target is None and prev is not None:
                runs[-1][3] = True
            prev = e.target
        for target, start, eid, ended in runs:
            out.append((*key, target, T0 + timedelta(minutes=start), not ended, eid))
    return sorted(out, key=repr)


def simple(store: GraphStore) -> list[Edge]:
    """Edge rows as the reference model shapes them (no properties), sorted."""
    return sorted((row[:7] for row in versions(store)), key=repr)
