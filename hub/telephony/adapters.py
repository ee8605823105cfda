"""PBX dialects, one adapter each, all mapped onto one :class:`CanonicalEvent` (TEL-2).

* ``hub``: the hub's own JSON (``contracts/telephony.py``).
* ``cti``: the "generic CTI" form that many PBXes and PBX bridges post to help desks (Zammad's
  generic CTI is the reference): ``event`` = ``newCall`` / ``answer`` / ``hangup``, ``from``,
  ``to``, ``direction`` (``in``/``out``), ``callId`` (or ``call_id``), repeated ``user[]``,
  ``answeringNumber``, ``cause``, ``queue``; as ``application/x-www-form-urlencoded`` or JSON.
  Some bridges add ``duration`` and ``recordingUrl`` to the hangup; both are taken when present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from contracts.telephony import PbxEvent
from hub.errors import BadRequest, Unprocessable

__all__ = ["CanonicalEvent", "from_cti", "from_hub_json"]

MAX_CALL_ID = 250


@dataclass(slots=True)
class CanonicalEvent:
    """One call event, whatever dialect it came in."""

    kind: str  # ringing | answered | hangup | outgoing
    call_id: str
    direction: str  # in | out
    dialect: str
    raw: dict[str, Any]
    from_number: str | None = None
    to_number: str | None = None
    # Who is involved: ringing extensions (incoming) or the caller (outgoing). Extensions, or for
    # the CTI dialect also e-mails or names of employees.
    parties: list[str] = field(default_factory=list)
    answered_by: str | None = None
    cause: str | None = None
    duration: int | None = None
    recording_url: str | None = None
    occurred_at: datetime | None = None
    queue: str | None = None


def _call_id(value: Any) -> str:
    call_id = str(value).strip() if value is not None else ""
    if not call_id:
        raise Unprocessable("The event has no call id", code="call_id_required")
    if len(call_id) > MAX_CALL_ID:
        raise Unprocessable(f"The call id is longer than {MAX_CALL_ID} characters", code="invalid_pbx_event")
    return call_id


def from_hub_json(body: bytes) -> CanonicalEvent:
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest("The body is not JSON", code="invalid_json") from exc
    if not isinstance(raw, dict):
        raise Unprocessable("The event must be a JSON object", code="invalid_pbx_event")
    call_id = _call_id(raw.get("call_id"))
    try:
        event = msgspec.convert(raw, PbxEvent)
    except msgspec.ValidationError as exc:
        raise Unprocessable(str(exc), code="invalid_pbx_event") from exc
    direction = event.direction or ("out" if event.event == "outgoing" else "in")
    starts = event.event in ("ringing", "outgoing")
    parties = list(event.extensions)
    # A ringing on one extension may name it in ``extension`` rather than ``extensions``.
    if starts and event.extension and event.extension not in parties:
        parties.insert(0, event.extension)
    return CanonicalEvent(
        kind=event.event,
        call_id=call_id,
        direction=direction,
        dialect="hub",
        raw=raw,
        from_number=event.from_number,
        to_number=event.to_number,
        parties=parties,
        answered_by=None if starts else event.extension,
        cause=event.cause,
        duration=event.duration,
        recording_url=event.recording_url,
        occurred_at=event.occurred_at,
        queue=event.queue,
    )


_CTI_EVENTS = {"newCall", "answer", "hangup"}


def _cti_fields(body: bytes, content_type: str) -> tuple[dict[str, Any], list[str]]:
    """The CTI fields and the ``user[]`` values, from a form or from JSON."""
    if "json" in content_type:
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise BadRequest("The body is not JSON", code="invalid_json") from exc
        if not isinstance(raw, dict):
            raise Unprocessable("The event must be a JSON object", code="invalid_pbx_event")
        read = {key: _scalar(key, raw[key]) for key in _CTI_FIELDS if key in raw}
        users_raw = raw.get("user[]", raw.get("user", []))
        listed = users_raw if isinstance(users_raw, list) else [users_raw]
        named = [_scalar("user[]", u) for u in listed]
        return {**raw, **read}, [u for u in named if u]
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The form cannot be read", code="invalid_form") from exc
    fields: dict[str, Any] = {}
    users: list[str] = []
    for key, value in pairs:
        if key in ("user[]", "user"):
            if value:
                users.append(value)
        else:
            fields.setdefault(key, value)
    fields["user[]"] = users
    return fields, users


# The CTI fields the hub reads; in JSON each must be text or a number (extra fields are kept as
# they are, for the event log).
_CTI_FIELDS = (
    "event",
    "from",
    "to",
    "direction",
    "callId",
    "call_id",
    "answeringNumber",
    "cause",
    "queue",
    "duration",
    "recordingUrl",
    "recording_url",
    "recording",
)


def _scalar(key: str, value: Any) -> str | None:
    """A JSON field as text: numbers are taken as written, objects, lists and booleans refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if key == "event":
        raise Unprocessable(
            "event must be newCall, answer or hangup", code="invalid_event", error="Invalid event!"
        )
    raise Unprocessable(f"{key} must be text or a number", code="invalid_pbx_event", field=key)


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number <= 7 * 24 * 3600 else None


def _text(value: Any, limit: int) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text[:limit] or None


def from_cti(body: bytes, content_type: str) -> CanonicalEvent:
    fields, users = _cti_fields(body, content_type)
    event = fields.get("event")
    if event not in _CTI_EVENTS:
        raise Unprocessable(
            "event must be newCall, answer or hangup", code="invalid_event", error="Invalid event!"
        )
    call_id = _call_id(fields.get("callId") or fields.get("call_id"))
    direction = fields.get("direction") or "in"
    if direction not in ("in", "out"):
        raise Unprocessable(
            "direction must be in or out", code="invalid_direction", error="Invalid direction!"
        )
    if event == "newCall":
        kind = "ringing" if direction == "in" else "outgoing"
    else:
        kind = "answered" if event == "answer" else "hangup"
    recording = fields.get("recordingUrl") or fields.get("recording_url") or fields.get("recording")
    recording_url = _text(recording, 2000)
    if recording_url and not recording_url.startswith(("http://", "https://")):
        recording_url = None
    answered_by = _text(fields.get("answeringNumber"), 200)
    if kind == "answered" and answered_by is None and direction == "in" and users:
        answered_by = users[0]
    from_number = _text(fields.get("from"), 64)
    if kind == "outgoing" and not users and from_number:
        users = [from_number]  # an outgoing call is placed from the employee's extension
    return CanonicalEvent(
        kind=kind,
        call_id=call_id,
        direction=direction,
        dialect="cti",
        raw=fields,
        from_number=from_number,
        to_number=_text(fields.get("to"), 64),
        parties=[u[:200] for u in users][:50],
        answered_by=answered_by,
        cause=_text(fields.get("cause"), 40),
        duration=_int_or_none(fields.get("duration")),
        recording_url=recording_url,
        queue=_text(fields.get("queue"), 100),
    )
