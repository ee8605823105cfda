"""The hub's own PBX event contract (TEL-2): what a PBX, or a bridge in front of it, posts.

``POST /api/telephony/pbx/events/{token}`` (or ``/api/telephony/pbx/events`` with the token in the
``X-PBX-Token`` header) with one :class:`PbxEvent` as JSON. The answer is a
:class:`PbxEventReceived` (200) as soon as the event is stored, or problem JSON: 401
``invalid_pbx_token`` / ``telephony_disabled``, 400 ``invalid_json``, 422 ``call_id_required`` /
``invalid_pbx_event`` (also for an ``occurred_at`` without a zone). No call is touched by a
refused event; a refusal by a known PBX (switched off, malformed) is listed for the account's
administrators under ``GET /api/intake/events?source=telephony&state=rejected``.

One call is a sequence of events sharing ``call_id``:

* ``ringing``   an incoming call rings on ``extensions`` (one or more internal numbers);
* ``answered``  picked up by ``extension``;
* ``hangup``    ended, with ``cause``, ``duration`` (seconds of talk) and ``recording_url``;
* ``outgoing``  an employee on ``extension`` dials ``to_number``.

Each (call_id, event) is taken once: a repeat is answered ``duplicate`` and changes nothing;
events may arrive in any order (``hangup`` before ``answered``, ``hangup`` for a call the hub never
saw ringing) and still leave one correct call record.

**Acknowledged early (changed with the intake pipeline, issue 11).** The hub answers once the
event is stored, before it is applied: ``received`` (or ``duplicate``). The hub's intake worker
applies it moments later (woken within milliseconds; events of one call in the order they came),
and the pop-up goes out then. The answer used to be a :class:`PbxEventResult` carrying what
applying did (``applied`` / ``late``, the hub's call id and status); applying in the request
held every PBX event for the whole caller match and call update, which capped a process at about
85 events/s, while a PBX only needs to know the event arrived. What applying did is now kept, as a
:class:`PbxEventResult`, on the inbound event (``GET /api/intake/events/{id}``: ``outcome`` and
``result``); the call itself is in ``GET /api/telephony/calls``.

The JSON Schema exported from these Structs lives in ``contracts/schemas/`` (a test keeps the
file and the code equal; regenerate with ``python -m contracts.telephony``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from contracts._schema import SCHEMA_DIR, json_schema, write_schema_files

__all__ = [
    "CAUSES",
    "SCHEMA_DIR",
    "HangupCause",
    "PbxEvent",
    "PbxEventReceived",
    "PbxEventResult",
    "schemas",
    "write_schemas",
]


CallId = Annotated[str, msgspec.Meta(max_length=250, description="Unique per call; shared by its events")]
Number = Annotated[str, msgspec.Meta(max_length=64, description="As the PBX writes it (+, spaces, dashes)")]
Extension = Annotated[str, msgspec.Meta(min_length=1, max_length=20, description="Internal number")]
HangupCause = Literal[
    "normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound", "forwarded", "failed"
]
CAUSES: tuple[str, ...] = (
    "normalClearing",
    "busy",
    "cancel",
    "noAnswer",
    "congestion",
    "notFound",
    "forwarded",
    "failed",
)


class PbxEvent(msgspec.Struct, kw_only=True):
    """One call event in the hub's own dialect."""

    event: Literal["ringing", "answered", "hangup", "outgoing"]
    call_id: CallId
    direction: Literal["in", "out"] | None = None  # default: "out" for outgoing, else "in"
    from_number: Number | None = None
    to_number: Number | None = None
    extensions: Annotated[list[Extension], msgspec.Meta(max_length=50)] = []
    extension: Extension | None = None
    cause: HangupCause | None = None
    duration: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)] | None = None
    recording_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://")] | None = None
    # With a zone (``Z`` or ``+03:00``): a bare local time is ambiguous and is refused.
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    queue: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class PbxEventReceived(msgspec.Struct):
    """The hub's answer to an event: stored, to be applied moments later (``received``), or a
    repeat of one stored before (``duplicate``: nothing more happens)."""

    call_id: str
    event: str
    outcome: Literal["received", "duplicate"]


class PbxEventResult(msgspec.Struct):
    """What applying the event did (kept on the inbound event: ``GET /api/intake/events/{id}``)."""

    call_id: str
    event: str
    # applied: changed the call; duplicate: seen before, nothing changed; late: arrived after the
    # call ended and only filled in what was missing.
    outcome: Literal["applied", "duplicate", "late"]
    call: int  # the hub's id of the call record
    status: Literal["requested", "ringing", "answered", "ended"]


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema files of this contract, by file name."""
    return {
        "telephony.pbx_event.schema.json": json_schema(PbxEvent),
        "telephony.pbx_event_received.schema.json": json_schema(PbxEventReceived),
        "telephony.pbx_event_result.schema.json": json_schema(PbxEventResult),
    }


def write_schemas() -> None:
    write_schema_files(schemas())


if __name__ == "__main__":
    write_schemas()
