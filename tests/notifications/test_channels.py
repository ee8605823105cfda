"""DESK-10: notifications go through the durable outbox to each channel's far side (faked with
respx or a local SMTP server): delivered, retried after a failure, dead-lettered after the bound."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from authlib.jose import jwt
from litestar import Litestar
from sqlalchemy import event, select

from hub.connectors.fcm import clear_token_cache
from hub.db import Database, utcnow
from hub.jobs import JobContext
from hub.notifications import notify
from hub.notifications.models import DeviceToken
from hub.outbox.worker import deliver_due, drain_outbox
from tests.conftest import Tenant
from tests.notifications.helpers import (
    FCM_BASE,
    SMS_BASE,
    TG_BASE,
    TG_TOKEN,
    TOKEN_URI,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    SmtpSink,
    configure,
    make_app_user,
    messages,
    public_key_pem,
    service_account,
)

TICKET = SimpleNamespace(id=7, number=42, status="resolved", object_id=None, account_id=0)
FCM_SEND = f"{FCM_BASE}/v1/projects/hub-test/messages:send"
SMS_SEND = f"{SMS_BASE}/sms/send"
TG_SEND = f"{TG_BASE}/bot{TG_TOKEN}/sendMessage"


def _later() -> Any:
    return utcnow() + timedelta(hours=1)


async def _notify(
    db: Database, tenant: Tenant, recipients: list[tuple[str, int]], event: str = "status_changed"
) -> int:
    async with db.sessionmaker() as session, session.begin():
        return await notify(
            session,
            account_id=tenant.id,
            event=event,
            ticket=TICKET,
            recipients=recipients,
            data={"status": "resolved", "link": "hubapp://objects/1/tickets?first=7"},
        )


async def _status(db: Database, topic: str) -> list[tuple[str, int]]:
    return [(m.status, m.attempts) for m in await messages(db, topic)]


@pytest.fixture(autouse=True)
def _fresh_fcm_cache() -> None:
    clear_token_cache()


# --- fan-out and switches ------------------------------------------------------------------------


async def test_one_message_per_recipient_and_channel_and_per_event_switches(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: notify() queues one outbox message per (recipient, channel) in the caller's
    transaction; channels are switchable per event type per account."""
    db: Database = app.state.db
    user = await make_app_user(client, tenant, email="client@example.com", mobile="+7 916 123-45-67")
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": 2525, "sender": "desk@alpha.test", "security": "none"},
    )
    await configure(client, tenant, "sms", {"api_id": "SMSRU-KEY", "base_url": SMS_BASE})
    await configure(client, tenant, "telegram", {"bot_token": TG_TOKEN, "base_url": TG_BASE})
    await configure(client, tenant, "webhook", {"url": WEBHOOK_URL, "secret": WEBHOOK_SECRET})
    point = await client.post(
        "/api/notifications/contact-points",
        json={
            "owner_kind": "employee",
            "owner_id": tenant.dispatcher.id,
            "channel": "telegram",
            "address": "555001",
        },
        headers=tenant.admin.headers,
    )
    assert point.status_code == 201, point.text

    queued = await _notify(db, tenant, [("employee", tenant.dispatcher.id), ("contact", user.contact_id)])
    topics = sorted(m.topic for m in await messages(db))
    # dispatcher: e-mail + telegram (no phone); client: e-mail + sms; one webhook per event.
    assert topics == sorted(
        ["notify.email", "notify.telegram", "notify.email", "notify.sms", "notify.webhook"]
    )
    assert queued == 5
    sms = (await messages(db, "notify.sms"))[0]
    assert sms.payload["to"] == "+79161234567" and sms.payload["recipient"] == [
        "contact",
        user.contact_id,
    ]

    switched = await client.put(
        "/api/notifications/rules",
        json={"rules": {"status_changed": {"sms": False, "webhook": False}}},
        headers=tenant.admin.headers,
    )
    assert switched.status_code == 200 and switched.json()["rules"]["status_changed"]["sms"] is False
    assert switched.json()["rules"]["new_ticket"]["sms"] is True
    assert await _notify(db, tenant, [("contact", user.contact_id)]) == 1  # e-mail only
    assert await _notify(db, tenant, [("contact", user.contact_id)], event="new_ticket") == 3


async def test_channel_settings_hide_secrets_and_refuse_bad_config(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: administrators configure channels; secrets are never shown back; bad settings are a 422 problem."""
    await configure(client, tenant, "telegram", {"bot_token": TG_TOKEN, "base_url": TG_BASE})
    listed = await client.get("/api/notifications/channels", headers=tenant.admin.headers)
    telegram = next(c for c in listed.json()["items"] if c["channel"] == "telegram")
    assert telegram["configured"] and telegram["secrets_set"] == ["bot_token"]
    assert TG_TOKEN not in listed.text
    # Changing a non-secret field keeps the stored secret.
    await configure(client, tenant, "telegram", {"base_url": "https://tg2.test"})
    listed = await client.get("/api/notifications/channels", headers=tenant.admin.headers)
    assert next(c for c in listed.json()["items"] if c["channel"] == "telegram")["secrets_set"] == [
        "bot_token"
    ]
    bad = await client.put(
        "/api/notifications/channels",
        json={"channel": "webhook", "config": {"url": "ftp://x", "secret": "nope"}},
        headers=tenant.admin.headers,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_channel_config"
    refused = await client.get("/api/notifications/channels", headers=tenant.dispatcher.headers)
    assert refused.status_code == 403


# --- e-mail over SMTP ----------------------------------------------------------------------------


async def _email_setup(client: httpx.AsyncClient, tenant: Tenant, sink: SmtpSink) -> int:
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": sink.port, "sender": "desk@alpha.test", "security": "none"},
    )
    return (await make_app_user(client, tenant, email="client@example.com")).contact_id


async def test_email_delivered_to_local_smtp_server(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: e-mail goes over real SMTP (a local server here), with a subject naming the ticket."""
    sink = SmtpSink()
    controller = sink.start()
    try:
        contact_id = await _email_setup(client, tenant, sink)
        await _notify(app.state.db, tenant, [("contact", contact_id)])
        await drain_outbox(app.state.jobs)
    finally:
        controller.stop()
    assert len(sink.received) == 1
    mail = sink.received[0]
    assert mail["To"] == "client@example.com" and mail["Subject"] == "Ticket #42: resolved"
    assert "hubapp://objects/1/tickets?first=7" in mail.get_payload()
    assert await _status(app.state.db, "notify.email") == [("delivered", 1)]


async def test_email_retried_after_temporary_refusal_then_dead_after_bound(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: a 4xx SMTP reply is retried (delivered once when the server recovers); a server
    that keeps refusing ends in dead-letter after the bound; a 5xx reply is dead at once."""
    jobs: JobContext = app.state.jobs
    sink = SmtpSink(refuse=["451 4.3.0 try again later"])
    controller = sink.start()
    try:
        contact_id = await _email_setup(client, tenant, sink)
        await _notify(jobs.db, tenant, [("contact", contact_id)])
        assert await deliver_due(jobs) == 1
        assert await _status(jobs.db, "notify.email") == [("pending", 1)]
        await drain_outbox(jobs, now=_later())
        assert len(sink.received) == 1
        assert await _status(jobs.db, "notify.email") == [("delivered", 2)]

        sink.always = "451 4.3.0 still busy"
        await _notify(jobs.db, tenant, [("contact", contact_id)])
        await drain_outbox(jobs, now=_later())
        bound = jobs.settings.outbox.max_attempts
        assert (await _status(jobs.db, "notify.email"))[1] == ("dead", bound)

        sink.always = "550 5.1.1 no such user"
        await _notify(jobs.db, tenant, [("contact", contact_id)])
        await drain_outbox(jobs, now=_later())
        assert (await _status(jobs.db, "notify.email"))[2] == ("dead", 1)
    finally:
        controller.stop()
    assert len(sink.received) == 1


# --- SMS.ru --------------------------------------------------------------------------------------


def _smsru_ok(number: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {number: {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}},
            "balance": 10.5,
        },
    )


async def _sms_setup(client: httpx.AsyncClient, tenant: Tenant) -> int:
    await configure(client, tenant, "sms", {"api_id": "SMSRU-KEY", "base_url": SMS_BASE, "sender": "Alpha"})
    return (await make_app_user(client, tenant, mobile="8 (916) 123-45-67")).contact_id


async def test_sms_delivered_through_smsru_api(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: SMS goes to SMS.ru's /sms/send with api_id, the number in international digits, json=1."""
    contact_id = await _sms_setup(client, tenant)
    await _notify(app.state.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=True) as far:
        route = far.post(SMS_SEND).mock(return_value=_smsru_ok("79161234567"))
        await drain_outbox(app.state.jobs)
    form = parse_qs(route.calls[0].request.content.decode())
    assert form["api_id"] == ["SMSRU-KEY"] and form["to"] == ["79161234567"] and form["json"] == ["1"]
    assert form["from"] == ["Alpha"] and form["msg"] == ["Ticket #42 is now resolved."]
    assert await _status(app.state.db, "notify.sms") == [("delivered", 1)]


async def test_sms_accepted_request_without_a_per_number_entry_is_delivered(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: SMS.ru answering status 100 for the request but with no entry for the number (or
    one under another spelling of it) has taken the SMS: delivered, not dead-lettered; a refusal in
    the number's own entry is still dead."""
    contact_id = await _sms_setup(client, tenant)
    answers = [
        httpx.Response(200, json={"status": "OK", "status_code": 100, "balance": 10.5}),
        _smsru_ok("+7 916 123-45-67"),
        httpx.Response(
            200,
            json={
                "status": "OK",
                "status_code": 100,
                "sms": {"79161234567": {"status": "ERROR", "status_code": 207, "status_text": "not allowed"}},
            },
        ),
    ]
    with respx.mock() as far:
        far.post(SMS_SEND).mock(side_effect=answers)
        for _ in answers:
            await _notify(app.state.db, tenant, [("contact", contact_id)])
            await drain_outbox(app.state.jobs)
    assert await _status(app.state.db, "notify.sms") == [("delivered", 1), ("delivered", 1), ("dead", 1)]


async def test_sms_retried_after_gateway_failure_dead_after_bound_and_on_refusal(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: SMS.ru code 220 / HTTP 5xx are retried; a gateway that stays down is dead-lettered
    after the bound; a refusal such as 201 (no funds) is dead at once."""
    jobs: JobContext = app.state.jobs
    contact_id = await _sms_setup(client, tenant)
    await _notify(jobs.db, tenant, [("contact", contact_id)])
    unavailable = httpx.Response(200, json={"status": "ERROR", "status_code": 220, "status_text": "busy"})
    with respx.mock() as far:
        route = far.post(SMS_SEND).mock(side_effect=[unavailable, _smsru_ok("79161234567")])
        await deliver_due(jobs)
        await drain_outbox(jobs, now=_later())
        assert route.call_count == 2
    assert await _status(jobs.db, "notify.sms") == [("delivered", 2)]

    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock() as far:
        far.post(SMS_SEND).mock(return_value=httpx.Response(503))
        await drain_outbox(jobs, now=_later())
    assert (await _status(jobs.db, "notify.sms"))[1] == ("dead", jobs.settings.outbox.max_attempts)

    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock() as far:
        far.post(SMS_SEND).mock(
            return_value=httpx.Response(
                200, json={"status": "ERROR", "status_code": 201, "status_text": "no funds"}
            )
        )
        await drain_outbox(jobs, now=_later())
    dead = (await messages(jobs.db, "notify.sms"))[2]
    assert (dead.status, dead.attempts) == ("dead", 1) and "201" in (dead.last_error or "")


# --- Telegram ------------------------------------------------------------------------------------


async def _telegram_setup(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await configure(client, tenant, "telegram", {"bot_token": TG_TOKEN, "base_url": TG_BASE})
    point = await client.post(
        "/api/notifications/contact-points",
        json={
            "owner_kind": "employee",
            "owner_id": tenant.engineer.id,
            "channel": "telegram",
            "address": "-100777",
        },
        headers=tenant.admin.headers,
    )
    assert point.status_code == 201


async def test_telegram_delivered_retried_and_dead_lettered(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: Telegram Bot API sendMessage to the employee's chat; 429/5xx retried, a chat that
    blocked the bot (403) dead at once, a Telegram that stays down dead after the bound."""
    jobs: JobContext = app.state.jobs
    await _telegram_setup(client, tenant)
    ok = httpx.Response(200, json={"ok": True, "result": {"message_id": 9}})
    await _notify(jobs.db, tenant, [("employee", tenant.engineer.id)])
    with respx.mock() as far:
        route = far.post(TG_SEND).mock(
            side_effect=[httpx.Response(429, json={"ok": False, "parameters": {"retry_after": 3}}), ok]
        )
        await deliver_due(jobs)
        await drain_outbox(jobs, now=_later())
    body = json.loads(route.calls[1].request.content)
    assert body["chat_id"] == "-100777" and body["text"].startswith("Ticket #42 is now resolved.")
    assert await _status(jobs.db, "notify.telegram") == [("delivered", 2)]

    await _notify(jobs.db, tenant, [("employee", tenant.engineer.id)])
    with respx.mock() as far:
        far.post(TG_SEND).mock(
            return_value=httpx.Response(
                403, json={"ok": False, "error_code": 403, "description": "bot was blocked"}
            )
        )
        await drain_outbox(jobs, now=_later())
    assert (await _status(jobs.db, "notify.telegram"))[1] == ("dead", 1)

    await _notify(jobs.db, tenant, [("employee", tenant.engineer.id)])
    with respx.mock() as far:
        far.post(TG_SEND).mock(side_effect=httpx.ConnectError("down"))
        await drain_outbox(jobs, now=_later())
    assert (await _status(jobs.db, "notify.telegram"))[2] == ("dead", jobs.settings.outbox.max_attempts)


# --- webhook -------------------------------------------------------------------------------------


async def test_webhook_signed_with_standard_webhooks_headers_retried_and_dead_lettered(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: the generic webhook carries webhook-id/-timestamp/-signature (HMAC-SHA256 over
    id.timestamp.body with the whsec_ key); the id is the same on a retry; down = dead after bound."""
    jobs: JobContext = app.state.jobs
    await configure(client, tenant, "webhook", {"url": WEBHOOK_URL, "secret": WEBHOOK_SECRET})
    await _notify(jobs.db, tenant, [("employee", tenant.dispatcher.id)])
    with respx.mock() as far:
        route = far.post(WEBHOOK_URL).mock(side_effect=[httpx.Response(500), httpx.Response(204)])
        await deliver_due(jobs)
        await drain_outbox(jobs, now=_later())
    first, second = (call.request for call in route.calls)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = (
        f"{second.headers['webhook-id']}.{second.headers['webhook-timestamp']}.".encode() + second.content
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert second.headers["webhook-signature"] == f"v1,{expected}"
    body = json.loads(second.content)
    assert body["type"] == "ticket.status_changed" and body["data"]["ticket_number"] == 42
    assert body["data"]["recipients"] == [["employee", tenant.dispatcher.id]]
    assert await _status(jobs.db, "notify.webhook") == [("delivered", 2)]

    await _notify(jobs.db, tenant, [("employee", tenant.dispatcher.id)])
    with respx.mock() as far:
        far.post(WEBHOOK_URL).mock(return_value=httpx.Response(502))
        await drain_outbox(jobs, now=_later())
    assert (await _status(jobs.db, "notify.webhook"))[1] == ("dead", jobs.settings.outbox.max_attempts)


# --- FCM push ------------------------------------------------------------------------------------


async def _push_setup(client: httpx.AsyncClient, tenant: Tenant, tokens: list[str]) -> int:
    await configure(client, tenant, "push", {"service_account": service_account(), "base_url": FCM_BASE})
    user = await make_app_user(client, tenant)
    for token in tokens:
        registered = await client.post(
            "/api/app/devices", json={"token": token, "platform": "android"}, headers=user.headers
        )
        assert registered.status_code == 201, registered.text
    return user.contact_id


def _oauth(far: respx.MockRouter) -> respx.Route:
    return far.post(TOKEN_URI).mock(
        return_value=httpx.Response(
            200, json={"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}
        )
    )


async def test_push_via_fcm_v1_with_cached_service_account_token(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: push goes through FCM HTTP v1 with an OAuth token got by a service-account JWT
    assertion (RS256, signed by authlib), fetched once and cached until it expires."""
    contact_id = await _push_setup(client, tenant, ["device-token-aaaa", "device-token-bbbb"])
    await _notify(app.state.db, tenant, [("contact", contact_id)], event="rating_request")
    with respx.mock(assert_all_called=True) as far:
        oauth = _oauth(far)
        send = far.post(FCM_SEND).mock(
            return_value=httpx.Response(200, json={"name": "projects/hub-test/messages/1"})
        )
        await drain_outbox(app.state.jobs)
    assert oauth.call_count == 1 and send.call_count == 2
    form = parse_qs(oauth.calls[0].request.content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(form["assertion"][0], public_key_pem())
    assert claims["iss"] == "push@hub-test.iam.gserviceaccount.com" and claims["aud"] == TOKEN_URI
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    request = send.calls[0].request
    assert request.headers["Authorization"] == "Bearer ya29.test"
    message = json.loads(request.content)["message"]
    assert message["token"] in {"device-token-aaaa", "device-token-bbbb"}
    assert message["data"] == {
        "event": "rating_request",
        "ticket_id": "7",
        "link": "hubapp://objects/1/tickets?first=7",
    }
    assert await _status(app.state.db, "notify.push") == [("delivered", 1), ("delivered", 1)]


def _oauth_tokens(far: respx.MockRouter, *tokens: str, expires_in: int = 3599) -> respx.Route:
    return far.post(TOKEN_URI).mock(
        side_effect=[
            httpx.Response(200, json={"access_token": t, "expires_in": expires_in, "token_type": "Bearer"})
            for t in tokens
        ]
    )


async def test_push_access_token_fetched_again_once_it_is_about_to_expire(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: the cached OAuth token is used only while it has more than a minute left; a token
    that expires sooner (expires_in below the margin) is fetched again for the next send."""
    jobs: JobContext = app.state.jobs
    contact_id = await _push_setup(client, tenant, ["device-token-aaaa"])
    with respx.mock(assert_all_called=True) as far:
        oauth = _oauth_tokens(far, "ya29.short", "ya29.next", expires_in=30)
        send = far.post(FCM_SEND).mock(return_value=httpx.Response(200, json={"name": "m/1"}))
        for _ in range(2):
            await _notify(jobs.db, tenant, [("contact", contact_id)])
            await drain_outbox(jobs)
    assert oauth.call_count == 2
    assert [c.request.headers["Authorization"] for c in send.calls] == [
        "Bearer ya29.short",
        "Bearer ya29.next",
    ]
    assert await _status(jobs.db, "notify.push") == [("delivered", 1), ("delivered", 1)]


async def test_push_401_drops_the_cached_access_token(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: FCM answering 401 (a revoked access token) drops the cached token: the retry fetches
    a new one and succeeds with it."""
    jobs: JobContext = app.state.jobs
    contact_id = await _push_setup(client, tenant, ["device-token-aaaa"])
    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=True) as far:
        oauth = _oauth_tokens(far, "ya29.revoked", "ya29.fresh")
        send = far.post(FCM_SEND).mock(
            side_effect=[httpx.Response(401), httpx.Response(200, json={"name": "m/1"})]
        )
        await deliver_due(jobs)
        assert await _status(jobs.db, "notify.push") == [("pending", 1)]
        await drain_outbox(jobs, now=_later())
    assert oauth.call_count == 2
    assert [c.request.headers["Authorization"] for c in send.calls] == [
        "Bearer ya29.revoked",
        "Bearer ya29.fresh",
    ]
    assert await _status(jobs.db, "notify.push") == [("delivered", 2)]


async def test_push_retried_dead_lettered_and_unregistered_token_removed(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: FCM 503 is retried; FCM down for good is dead-lettered after the bound; a token FCM
    calls UNREGISTERED (404) is removed from the user's devices and not retried, and its message is
    dead-lettered with that reason rather than reported delivered."""
    jobs: JobContext = app.state.jobs
    contact_id = await _push_setup(client, tenant, ["device-token-gone"])
    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=False) as far:
        _oauth(far)
        far.post(FCM_SEND).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"name": "m/1"})])
        await deliver_due(jobs)
        await drain_outbox(jobs, now=_later())
    assert await _status(jobs.db, "notify.push") == [("delivered", 2)]

    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=False) as far:
        _oauth(far)
        far.post(FCM_SEND).mock(return_value=httpx.Response(500))
        await drain_outbox(jobs, now=_later())
    assert (await _status(jobs.db, "notify.push"))[1] == ("dead", jobs.settings.outbox.max_attempts)

    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=False) as far:
        _oauth(far)
        send = far.post(FCM_SEND).mock(return_value=httpx.Response(404, json=_fcm_error(404, "UNREGISTERED")))
        await drain_outbox(jobs, now=_later())
    assert send.call_count == 1
    removed = (await messages(jobs.db, "notify.push"))[2]
    # Not "delivered": the push never arrived; the dead letter says why.
    assert (removed.status, removed.attempts) == ("dead", 1)
    assert "token removed" in (removed.last_error or "") and "UNREGISTERED" in (removed.last_error or "")
    assert await _tokens(jobs.db) == []
    # With the token gone, the next notification queues no push at all.
    assert await _notify(jobs.db, tenant, [("contact", contact_id)]) == 0


def _fcm_error(
    http_status: int, fcm_code: str | None, message: str = "Requested entity was not found."
) -> Any:
    status = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}[http_status]
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
    return {
        "error": {
            "code": http_status,
            "message": message,
            "status": status,
            "details": details if fcm_code else [],
        }
    }


async def _tokens(db: Database) -> list[str]:
    async with db.sessionmaker() as session:
        return list(await session.scalars(select(DeviceToken.token).order_by(DeviceToken.token)))


async def test_push_keeps_tokens_unless_fcm_says_the_token_itself_is_gone(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: a bare 404 (e.g. a wrong project id) and an INVALID_ARGUMENT about the payload are
    permanent failures that keep every device token; INVALID_ARGUMENT about the registration token
    (malformed) removes that token only."""
    jobs: JobContext = app.state.jobs
    contact_id = await _push_setup(client, tenant, ["device-token-aaaa", "device-token-bbbb"])
    answers = [
        httpx.Response(404, text="<html>Not Found</html>"),
        httpx.Response(404, json=_fcm_error(404, None)),
        httpx.Response(400, json=_fcm_error(400, None, "Invalid value at 'message.data[0].value'")),
    ]
    for answer in answers:
        await _notify(jobs.db, tenant, [("contact", contact_id)])
        with respx.mock(assert_all_called=False) as far:
            _oauth(far)
            far.post(FCM_SEND).mock(return_value=answer)
            await drain_outbox(jobs, now=_later())
        assert await _tokens(jobs.db) == ["device-token-aaaa", "device-token-bbbb"]
    assert await _status(jobs.db, "notify.push") == [("dead", 1)] * 6

    malformed = _fcm_error(
        400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["message"]["token"] == "device-token-aaaa":
            return httpx.Response(400, json=malformed)
        return httpx.Response(200, json={"name": "projects/hub-test/messages/9"})

    await _notify(jobs.db, tenant, [("contact", contact_id)])
    with respx.mock(assert_all_called=False) as far:
        _oauth(far)
        far.post(FCM_SEND).mock(side_effect=answer)
        await drain_outbox(jobs, now=_later())
    assert await _tokens(jobs.db) == ["device-token-bbbb"]
    assert sorted((await _status(jobs.db, "notify.push"))[6:]) == [("dead", 1), ("delivered", 1)]


async def test_device_registration_belongs_to_the_signed_in_app_user(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: app users register their device token; only their own device can be removed."""
    first = await make_app_user(client, tenant, "First")
    second = await make_app_user(client, tenant, "Second")
    made = await client.post("/api/app/devices", json={"token": "tok-1234567890"}, headers=first.headers)
    assert made.status_code == 201
    device_id = made.json()["id"]
    assert (await client.delete(f"/api/app/devices/{device_id}", headers=second.headers)).status_code == 404
    assert (await client.delete(f"/api/app/devices/{device_id}", headers=first.headers)).status_code == 204
    staff = await client.post(
        "/api/app/devices", json={"token": "tok-1234567890"}, headers=tenant.admin.headers
    )
    assert staff.status_code == 403


async def test_concurrent_registrations_of_one_device_token_all_succeed(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: the app registering its token several times at once (start-up plus token refresh),
    also from two users of one phone, never fails: every call succeeds and one row remains, owned
    by one of them."""
    first = await make_app_user(client, tenant, "First")
    second = await make_app_user(client, tenant, "Second")
    answers = await asyncio.gather(
        *(
            client.post("/api/app/devices", json={"token": "tok-shared-phone"}, headers=who.headers)
            for who in (first, second, first, second, first, second)
        )
    )
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    async with app.state.db.sessionmaker() as session:
        rows = list(await session.scalars(select(DeviceToken)))
    assert len(rows) == 1 and rows[0].contact_id in {first.contact_id, second.contact_id}


async def test_concurrent_channel_rule_and_contact_point_saves_all_succeed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: two administrators saving the same channel, the same switch or the same extra
    address at the same moment both get 200/201, not a conflict; one row of each remains."""
    channel = {"channel": "telegram", "config": {"bot_token": TG_TOKEN, "base_url": TG_BASE}}
    rules = {"rules": {"status_changed": {"sms": False}}}
    point = {
        "owner_kind": "employee",
        "owner_id": tenant.engineer.id,
        "channel": "telegram",
        "address": "-1007",
    }
    headers = tenant.admin.headers
    answers = await asyncio.gather(
        *(client.put("/api/notifications/channels", json=channel, headers=headers) for _ in range(3)),
        *(client.put("/api/notifications/rules", json=rules, headers=headers) for _ in range(3)),
        *(client.post("/api/notifications/contact-points", json=point, headers=headers) for _ in range(3)),
    )
    assert [a.status_code for a in answers] == [200] * 6 + [201] * 3, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers[6:]}) == 1
    listed = await client.get("/api/notifications/channels", headers=headers)
    assert next(c for c in listed.json()["items"] if c["channel"] == "telegram")["configured"] is True
    rules_now = await client.get("/api/notifications/rules", headers=headers)
    assert rules_now.json()["rules"]["status_changed"]["sms"] is False


async def test_saving_a_channel_or_device_reads_its_row_once_and_answers_the_new_values(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: saving a channel again (switched off) and re-registering a device answer with the
    values just stored, taken from the upsert itself: no second read of the row."""
    db: Database = app.state.db
    channel = {"channel": "telegram", "config": {"bot_token": TG_TOKEN, "base_url": TG_BASE}}
    user = await make_app_user(client, tenant, "Phone owner")
    first = await client.post("/api/app/devices", json={"token": "tok-reused-1"}, headers=user.headers)
    assert first.status_code == 201, first.text
    assert (
        await client.put("/api/notifications/channels", json=channel, headers=tenant.admin.headers)
    ).is_success
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        off = await client.put(
            "/api/notifications/channels", json={**channel, "enabled": False}, headers=tenant.admin.headers
        )
        again = await client.post(
            "/api/app/devices", json={"token": "tok-reused-1", "platform": "ios"}, headers=user.headers
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert off.status_code == 200 and off.json()["enabled"] is False, off.text
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"], again.text
    assert again.json()["platform"] == "ios"
    # put_channel: the stored row (to keep its secrets) and the upsert; register_device: the upsert.
    assert sum("notification_channels" in s for s in statements) == 2
    assert sum("device_tokens" in s for s in statements) == 1
