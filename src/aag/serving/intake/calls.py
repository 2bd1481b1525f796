"""Segment ``identify`` calls: validate a request and turn each call into a bronze row.

Nothing here touches the disk: :func:`parse_calls` checks a request body (JSON,
Unicode, Segment's shapes) and :func:`bronze_row` makes the row the worker lands,
with the client's clock skew checked and a ``messageId`` derived when a call has none.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aag.config import DEFAULT_FUTURE_TOLERANCE, EARLIEST_EVENT_TIME
from aag.errors import InputError

SOURCE = ("segment", "identifies")
#: Segment's own limits: 32 KB per call, 500 KB per batch request.
MAX_CALL_BYTES = 32 * 1024
MAX_BODY_BYTES = 512 * 1024
#: Deepest JSON nesting accepted in traits (Segment traits are shallow objects).
MAX_DEPTH = 16


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class IdentifyCall(BaseModel):
    """One Segment ``identify`` call, as Segment's HTTP API accepts it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = None
    user_id: str | None = Field(default=None, alias="userId", max_length=1024)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=1024)
    message_id: str | None = Field(default=None, alias="messageId", max_length=512)
    timestamp: datetime | None = None
    #: When the client sent the call, by its own clock: measures its clock skew.
    sent_at: datetime | None = Field(default=None, alias="sentAt")
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _identify_only(cls, value: str | None) -> str | None:
        if value is not None and value != "identify":
            raise ValueError(f"type {value!r} is not supported here (only identify)")
        return value

    @field_validator("user_id", "anonymous_id", "message_id", mode="before")
    @classmethod
    def _string_id(cls, value: Any) -> Any:
        # Segment accepts numeric ids and sends them on as strings.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timestamp", "sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-03-01T09:05:00Z)")
        return value

    @field_validator("traits")
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_DEPTH:
            raise ValueError(f"traits nest deeper than {MAX_DEPTH} levels")
        return value


class BatchRequest(BaseModel):
    """Segment's ``/v1/batch`` body."""

    model_config = ConfigDict(extra="allow")

    batch: list[IdentifyCall] = Field(min_length=1, max_length=2500)
    #: Segment libraries stamp a batch once, when they send it: it applies to every call
    #: that has no ``sentAt`` of its own.
    sent_at: datetime | None = Field(default=None, alias="sentAt")

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-03-01T09:05:00Z)")
        return value

    def calls(self) -> list[IdentifyCall]:
        """The calls, each with the batch's ``sentAt`` where it has none of its own."""
        if self.sent_at is None:
            return self.batch
        return [c if c.sent_at else c.model_copy(update={"sent_at": self.sent_at}) for c in self.batch]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def effective_time(call: IdentifyCall, received_at: datetime) -> datetime:
    """When the call happened, corrected for the client's clock skew as Segment does.

    ``timestamp + (received_at - sentAt)`` when the call says when it was sent (the
    Segment extractor applies the same correction to the landed row); the arrival time
    when it has no ``timestamp``.

    Raises:
        OverflowError: When the correction leaves the representable years.
    """
    if call.timestamp is None:
        return received_at
    if call.sent_at is None:
        return call.timestamp
    return call.timestamp + (received_at - call.sent_at)


def bronze_row(
    call: IdentifyCall, received_at: datetime, tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
) -> dict[str, Any]:
    """A call as a Segment ``identifies`` bronze row (SPEC §7 columns, plus ``sent_at``).

    A call without ``messageId`` gets one derived from its content (without its
    ``sentAt``, which a retry changes), so an exact re-send is still recognised; without
    ``timestamp`` it is stamped with its arrival.

    Raises:
        InputError: Without ``userId`` and ``anonymousId``, or when the call's time
            (after skew correction) is before 1900 or more than ``tolerance`` after
            ``received_at`` (SPEC §11).
    """
    if not (call.user_id or "").strip() and not (call.anonymous_id or "").strip():
        raise InputError("an identify call needs userId or anonymousId")
    message_id = call.message_id
    if not message_id:
        content = call.model_dump(by_alias=True, mode="json", exclude={"sent_at"})
        canonical = json.dumps(content, sort_keys=True)
        message_id = "aag-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    _check_time(call, received_at, tolerance, message_id)
    row = {
        "message_id": message_id,
        "user_id": call.user_id,
        "anonymous_id": call.anonymous_id,
        "timestamp": _iso(call.timestamp or received_at),
        "received_at": _iso(received_at),
        "traits": call.traits,
    }
    if call.timestamp is not None and call.sent_at is not None:
        # Landed as sent: the extractor corrects the skew from these three times.
        row["sent_at"] = _iso(call.sent_at)
    return row


def _check_time(call: IdentifyCall, received_at: datetime, tolerance: timedelta, message_id: str) -> None:
    """Reject a call whose corrected time is out of range (one readable line)."""
    try:
        when = effective_time(call, received_at)
        ok = EARLIEST_EVENT_TIME <= when <= received_at + tolerance
        shown = _iso(when)
    except OverflowError:
        ok, shown = False, "beyond the representable years"
    if ok:
        return
    corrected = " (corrected for clock skew with sentAt)" if call.timestamp and call.sent_at else ""
    hours = tolerance.total_seconds() / 3600
    raise InputError(
        f"call {message_id}: event time out of range: timestamp{corrected} is {shown}; "
        f"accepted are times from {EARLIEST_EVENT_TIME:%Y-%m-%d} to {hours:g} h after receipt"
    )


def parse_calls(body: bytes, batch: bool) -> list[IdentifyCall]:
    """Validate a request body; raises :class:`InputError` with one readable line.

    Args:
        body: The raw request body (already size-checked).
        batch: Whether it is a ``/v1/batch`` body (else one identify call).
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise InputError("body nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object")
    try:
        # JSON may escape a lone UTF-16 surrogate ("\ud800"), which is no character:
        # it could be neither landed as UTF-8 nor read back.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise InputError(f"body holds a lone surrogate ({bad}), which is not valid Unicode") from None
    try:
        if batch:
            return BatchRequest.model_validate(data).calls()
        call = IdentifyCall.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from None
    except RecursionError:
        raise InputError("body nests too deeply") from None
    return [call]
