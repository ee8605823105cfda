"""TEL-2 through the intake pipeline: PBX call events, acknowledged early, applied by the worker.

The request (``hub.telephony.controllers``) authenticates the PBX token, parses the event in its
dialect (a malformed one is refused at the door and recorded), and stores the raw event keyed by
the PBX's own event key: (account, call id, event), the key ``call_events`` has always had. A
repeat is caught there, before any caller matching, and answered ``duplicate``. Otherwise the PBX
is answered ``received`` at once (``PbxEventReceived``; CTI PBXes get their usual ``{}``).

Why early and not inline: the aim is ring -> pop-up frame p99 < 25 ms at 100 events/s. Applying
in the request made the PBX wait for the caller match and the call update and capped a process
at about 85 events/s; the worker wakes within milliseconds of the commit (in this process at
once, in others by PostgreSQL NOTIFY) and applies a burst in batches, so acknowledging early adds
no visible latency to the pop-up. Nothing the PBX does depends on the applied outcome.

Here the worker parses the stored event again (cheap) and applies it with
:func:`hub.telephony.service.apply_event` (caller match, call state machine, pop-up, activity) in a
savepoint of the batch's transaction. Events of one call share an order key (account + call id),
so they are applied one at a time in the order they came.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

import msgspec
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import utcnow
from hub.errors import BadRequest, NotFound, Unprocessable
from hub.intake import Applied, EventView, Received
from hub.jobs import JobContext
from hub.telephony.adapters import CanonicalEvent, from_cti, from_hub_json
from hub.telephony.models import TelephonySettings
from hub.telephony.service import apply_event, event_party

__all__ = ["DIALECT_HEADER", "SOURCE", "PbxEvents", "keyed", "parse", "received"]

SOURCE = "telephony"
# The dialect the event came in (``hub`` or ``cti``), kept with the stored headers.
DIALECT_HEADER = "x-hub-pbx-dialect"
# What is kept of a refused event's body (a PBX event is well under a kilobyte).
MAX_REFUSED_BODY = 64 * 1024


def parse(dialect: str, body: bytes, content_type: str) -> CanonicalEvent:
    """The event in either dialect; BadRequest / Unprocessable when it is malformed."""
    return from_hub_json(body) if dialect == "hub" else from_cti(body, content_type)


def received(
    settings: TelephonySettings, dialect: str, body: bytes, content_type: str, remote_addr: str | None
) -> Received:
    """What reached the door from an authenticated PBX (no token: it is never stored)."""
    return Received(
        source=SOURCE,
        body=body.decode("utf-8", "replace")[:MAX_REFUSED_BODY],
        account_id=settings.account_id,
        endpoint_id=settings.id,
        headers={"content-type": content_type, DIALECT_HEADER: dialect},
        remote_addr=remote_addr,
    )


def keyed(door: Received, event: CanonicalEvent, body: bytes) -> Received:
    """A parsed event with the PBX's own event key (one call's event is taken once) and its call
    as the order key. The whole body is kept: the worker parses exactly what the door did.

    The key names the parties a ``ringing`` rings (a hunt group sends one per extension) and when
    it happened (the event's own time, else the hour it came in): a PBX that restarted its
    call-id counter uses old ids for new calls. A retry that crosses the hour is still caught
    when applied (``call_events``)."""
    party = event_party(event)
    key = f"{door.account_id}:{event.call_id}:{event.kind}" + (f":{party}" if party else "")
    return replace(
        door,
        body=body.decode("utf-8"),  # valid UTF-8: both dialects' parsers refuse anything else
        dedupe_key=f"{key}@{_when(event)}",
        order_key=f"{door.account_id}:{event.call_id}",
    )


def _when(event: CanonicalEvent) -> str:
    if event.occurred_at is not None:
        return f"{event.occurred_at.astimezone(UTC):%Y%m%dT%H%M%S}"
    return f"{utcnow():%Y%m%dT%H}"


_SETTINGS_OF_ACCOUNT = select(TelephonySettings).where(
    TelephonySettings.account_id == bindparam("account_id")
)


async def _settings(session: AsyncSession, account_id: int | None) -> TelephonySettings:
    """The account's PBX settings, read once per batch (the batch's session) however many events
    it has. Detached, so a rolled-back savepoint of another event cannot expire it."""
    cache: dict[int | None, TelephonySettings] = session.info.setdefault("telephony_settings", {})
    if account_id not in cache:
        row = await session.scalar(_SETTINGS_OF_ACCOUNT, {"account_id": account_id})
        if row is None:
            raise NotFound("The account has no PBX settings any more", code="telephony_not_set_up")
        session.expunge(row)
        cache[account_id] = row
    return cache[account_id]


class PbxEvents:
    """The intake source ``telephony``: PBX call events of both dialects."""

    name = SOURCE

    async def prepare(self, ctx: JobContext, event: EventView) -> CanonicalEvent:
        content_type = str(event.headers.get("content-type") or "")
        return parse(str(event.headers.get(DIALECT_HEADER)), event.body.encode(), content_type)

    async def apply(self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: Any) -> Applied:
        settings = await _settings(session, event.account_id)
        result = await apply_event(session, settings, prepared)
        return Applied(result.outcome, result=msgspec.to_builtins(result))

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None:
        """An event that can never be applied (unreadable, its account's settings gone) is done
        with, saying why; anything else is tried again (bounded), then shown as failed."""
        if isinstance(exc, BadRequest | Unprocessable | NotFound):
            return Applied("rejected", exc.code, exc.detail[:500])
        return None
