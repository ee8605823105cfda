"""Background work of telephony: the stale-call sweeper and click-to-call delivery (outbox)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hub.connectors.pbx import OriginateRejected, OriginateUnavailable, PbxTarget, originate_call
from hub.db import utcnow
from hub.jobs import JobContext, periodic_job
from hub.live import publish_after_commit
from hub.outbox import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
)
from hub.telephony.models import Call, TelephonySettings
from hub.telephony.service import ORIGINATE_TOPIC, calls_channel, close_stale_calls

__all__ = ["ORIGINATE_MAX_AGE", "deliver_originate", "sweep_stale_calls"]

# Ringing an employee's phone minutes after they clicked would surprise them: give up instead.
ORIGINATE_MAX_AGE = timedelta(minutes=2)


@periodic_job("telephony.sweep_stale_calls", interval=lambda s: max(s.server.sweeper_interval_seconds, 5.0))
async def sweep_stale_calls(ctx: JobContext) -> None:
    """TEL-2: close calls whose hangup never came."""
    async with ctx.db.sessionmaker() as session, session.begin():
        await close_stale_calls(session)


async def _set_state(ctx: DeliveryContext, call_id: int, state: str, error: str | None = None) -> None:
    async with ctx.db.sessionmaker() as session, session.begin():
        values: dict[str, object] = {
            "originate_state": state,
            "originate_error": error,
            "updated_at": utcnow(),
        }
        if state == "failed":
            values |= {"status": "ended", "ended_at": utcnow(), "cause": "failed"}
        await session.execute(
            update(Call).where(Call.id == call_id, Call.originate_state != "sent").values(**values)
        )
        call = await session.get(Call, call_id)
        if call is not None:
            publish_after_commit(
                session,
                calls_channel(call.account_id),
                "call.updated",
                {"call": {"id": call.id, "status": call.status, "originate_state": state, "error": error}},
            )


@outbox_handler(ORIGINATE_TOPIC)
async def deliver_originate(ctx: DeliveryContext, message: MessageView) -> None:
    """TEL-7: send the originate request; no session is held while the PBX is called."""
    call_id = int(message.payload["call_id"])
    async with ctx.db.sessionmaker() as session, session.begin():
        row = (
            await session.execute(
                select(Call, TelephonySettings)
                .join(TelephonySettings, TelephonySettings.account_id == Call.account_id)
                .where(Call.id == call_id)
            )
        ).first()
    if row is None:
        raise PermanentDeliveryError("call or telephony settings gone")
    call, settings = row
    if call.originate_state == "sent":
        return
    if not settings.originate_url:
        await _set_state(ctx, call_id, "failed", "click-to-call is not configured")
        raise PermanentDeliveryError("click-to-call is not configured")
    if utcnow() - call.created_at > ORIGINATE_MAX_AGE:
        await _set_state(ctx, call_id, "failed", "too late to ring the employee")
        raise PermanentDeliveryError("too late to ring the employee")
    target = PbxTarget(
        settings.originate_url,
        settings.originate_auth,
        settings.originate_username,
        settings.originate_secret,
    )
    try:
        await originate_call(
            ctx.http,
            target,
            extension=call.from_number or "",
            number=call.to_number or "",
            call_id=call.external_id,
        )
    except OriginateRejected as exc:
        await _set_state(ctx, call_id, "failed", str(exc))
        raise PermanentDeliveryError(str(exc)) from exc
    except OriginateUnavailable as exc:
        if message.attempts >= (message.max_attempts or ctx.settings.outbox.max_attempts):
            await _set_state(ctx, call_id, "failed", str(exc))
        raise TransientDeliveryError(str(exc)) from exc
    await _set_state(ctx, call_id, "sent")
