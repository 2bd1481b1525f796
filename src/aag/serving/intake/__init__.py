"""Segment-compatible intake: validate, land durably, process in micro-batches.

A request is acknowledged only once its calls are on disk: each accepted request is
written as one JSON Lines file (Segment ``identifies`` bronze rows, exactly the
columns of SPEC §7) to ``<warehouse>/bronze/_intake/segment/identifies/pending`` —
written to a temporary name, ``fsync``-ed, renamed, and the folder ``fsync``-ed — so a
crash after the ``200`` loses nothing.

A worker thread turns what is pending into micro-batches: it concatenates the pending
files into one batch file, records which files went in (``batches/<id>.json``), runs
the ordinary ingest of that file (bronze landing, rules, ledger), and only then deletes
the pending files. A crash anywhere in between leaves the batch file and its list; the
next start ingests it again, which the batch ledger makes a no-op if it had been
committed, and the Segment extractor keys events by ``message_id``, so a call re-sent by
a client (or re-landed in another micro-batch) changes nothing either.

The intake never takes the warehouse's writer lock to acknowledge, so events keep
arriving while a CLI ingest runs; the worker waits its turn for the lock.

Modules: :mod:`~aag.serving.intake.calls` (validating a request, a call as a bronze
row) and :mod:`~aag.serving.intake.worker` (durable landing and the micro-batch worker).
"""

from aag.serving.intake.calls import (
    MAX_BODY_BYTES,
    MAX_CALL_BYTES,
    MAX_DEPTH,
    SOURCE,
    BatchRequest,
    IdentifyCall,
    bronze_row,
    effective_time,
    parse_calls,
)
from aag.serving.intake.worker import TMP_GRACE_SECONDS, Intake, IntakeStatus

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CALL_BYTES",
    "MAX_DEPTH",
    "SOURCE",
    "TMP_GRACE_SECONDS",
    "BatchRequest",
    "IdentifyCall",
    "Intake",
    "IntakeStatus",
    "bronze_row",
    "effective_time",
    "parse_calls",
]
