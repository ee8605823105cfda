"""PAY-6: one callback endpoint per provider and payment account.

``POST /api/webhooks/payments/{provider}/{key}`` where ``key`` is the payment account's unguessable
webhook key (CloudPayments may append the notification kind: ``/check``, ``/pay``, ``/fail``,
``/refund``). The order of work is fixed: read at most ``MAX_BODY`` bytes, find the account,
verify by the provider's own scheme, parse, store the raw callback in the intake pipeline keyed by
the provider's event id, answer "received". The intake worker then confirms it where the scheme
asks (YooKassa re-reads the object through the API) and applies it exactly once
(``hub.payments.intake``). A refusal at the door is a 4xx in the provider's form and is recorded
for administrators (``GET /api/intake/events?source=payments``); so is what the worker refused
(unknown invoice, wrong amount: also in ``GET /api/payments/callbacks``).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import time
from dataclasses import replace
from typing import Any

from litestar import Controller, Request, Response, post
from sqlalchemy import select

from hub.cache import TTLCache
from hub.connectors.payments import PROVIDERS, CallbackRejected, connector
from hub.db import Database
from hub.intake import Applied, Received, TransientApplyError, accept, reject
from hub.intake.worker import apply_inline
from hub.payments.apply import header_subset
from hub.payments.intake import KIND_HEADER, payment_source
from hub.payments.models import PaymentAccount

__all__ = ["MAX_BODY", "PaymentWebhookController", "client_address", "handle_callback"]

MAX_BODY = 64 * 1024
KINDS = ("check", "pay", "fail", "refund")


async def _read(request: Request[Any, Any, Any]) -> bytes:
    """The body, or a rejection once it passes MAX_BODY (without reading the rest)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise CallbackRejected(413, "payload_too_large", f"Callbacks are at most {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise CallbackRejected(413, "payload_too_large", f"Callbacks are at most {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# A looked-up endpoint is reused for a few seconds (credential changes apply after that): a
# callback burst costs no lookup.
_ENDPOINTS: TTLCache[tuple[str, str], PaymentAccount | None] = TTLCache(ttl=5.0)


async def _account(db: Database, provider: str, key: str) -> PaymentAccount | None:
    """The endpoint's payment account (detached), cached briefly."""
    return await _ENDPOINTS.get((provider, key), lambda: _read_endpoint(db, provider, key))


async def _read_endpoint(db: Database, provider: str, key: str) -> PaymentAccount | None:
    async with db.sessionmaker() as session:
        row = await session.scalar(
            select(PaymentAccount).where(
                PaymentAccount.webhook_key == key, PaymentAccount.provider == provider
            )
        )
        if row is not None:
            session.expunge(row)
        return row


def _unknown(provider: str) -> Response[Any]:
    from hub.errors import problem_response

    return problem_response(
        404, "unknown_webhook", "Unknown callback endpoint", f"No {provider} endpoint here"
    )


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The sender's address. Behind a trusted reverse proxy (HUB_TRUSTED_PROXIES) it is the
    right-most X-Forwarded-For entry that is not itself a trusted proxy; a peer that is not
    trusted is taken as it is (its X-Forwarded-For could say anything)."""
    peer = request.client.host if request.client else None
    trusted = _networks(request.app.state.settings.server.trusted_proxies)
    if peer is None or not _inside(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("x-forwarded-for", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _inside(hop, trusted):
            return hop
    return peer


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def _inside(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def handle_callback(
    request: Request[Any, Any, Any], provider: str, key: str, kind: str | None = None
) -> Response[Any]:
    """Verify and parse in the request, store through the intake pipeline, answer "received"; the
    intake worker applies it (:mod:`hub.payments.intake`). A CloudPayments ``check`` asks whether
    to take the payment at all: it is applied inline and its answer carries the decision."""
    if provider not in PROVIDERS:
        return _unknown(provider)
    module = connector(provider)
    state = request.app.state
    pa = await _account(state.db, provider, key[:64])
    if pa is None or not pa.active:
        return _unknown(provider)  # nothing to attribute the attempt to; nobody's data touched
    received = Received(
        source=payment_source(provider),
        body="",
        account_id=pa.account_id,
        endpoint_id=pa.id,
        headers=header_subset(request.headers) | ({KIND_HEADER: kind} if kind else {}),
        remote_addr=client_address(request),
    )
    try:
        body = await _read(request)
        received = replace(received, body=body.decode("utf-8", "replace")[:MAX_BODY])
        replay_key = module.verify(pa, body, request.headers, received.remote_addr, time.time())
        event = module.parse(body, request.headers, kind)
    except CallbackRejected as rejection:
        await reject(state.db, received, rejection.code, rejection.detail)
        return module.error_response(rejection)  # type: ignore[no-any-return]
    received = replace(
        received,
        # The same bytes again are the same delivery (a provider's retry, or a replay when the
        # signature repeats too); the same fact told in other bytes is caught when applied, by
        # its apply key (hub.payments.apply).
        dedupe_key=f"{pa.id}:{hashlib.sha256(body).hexdigest()}",
        replay_key=replay_key,
        order_key=f"{pa.id}:{event.payment_ref or event.provider_payment_id or event.capture_id or '-'}",
    )
    if event.kind == "check":  # a question, asked again on a retry: each one is answered
        return await _decide_now(request, module, replace(received, dedupe_key=None))
    if await accept(state.db, received) == "replayed":
        return await _replayed(state.db, module, received)
    return module.ok_response("received")  # type: ignore[no-any-return]


async def _decide_now(request: Request[Any, Any, Any], module: Any, received: Received) -> Response[Any]:
    try:
        applied = await apply_inline(request.app.state.jobs, received)
    except TransientApplyError as exc:
        rejection = CallbackRejected(503, "temporarily_unavailable", str(exc)[:300])
        return module.error_response(rejection)  # type: ignore[no-any-return]
    if applied == "replayed":
        return await _replayed(request.app.state.db, module, received)
    if isinstance(applied, Applied) and applied.outcome == "rejected":
        result = applied.result or {}
        rejection = CallbackRejected(
            int(result.get("status") or 422),
            applied.code or "rejected",
            applied.detail or "",
            provider_code=result.get("provider_code"),
        )
        return module.error_response(rejection)  # type: ignore[no-any-return]
    return module.ok_response("received")  # type: ignore[no-any-return]


async def _replayed(db: Database, module: Any, received: Received) -> Response[Any]:
    """The same signed request again (not the provider's own retry, which is signed afresh)."""
    rejection = CallbackRejected(409, "replayed_callback", "This exact signed request was already received")
    await reject(db, received, rejection.code, rejection.detail)
    return module.error_response(rejection)  # type: ignore[no-any-return]


class PaymentWebhookController(Controller):
    path = "/api/webhooks/payments"
    tags = ["payments: provider callbacks"]

    @post(
        "/{provider:str}/{key:str}",
        exclude_from_auth=True,
        status_code=200,
        summary="Provider callback (signature checked by the provider's scheme)",
        request_max_body_size=None,
    )
    async def callback(self, request: Request[Any, Any, Any], provider: str, key: str) -> Response[Any]:
        """Answers: YooKassa 200 ``{}``; T-Bank ``OK``; CloudPayments ``{"code": 0}`` (10/11/12/13/20
        on refusal); Stripe 200; Standard Webhooks 204. Refusals are 4xx."""
        return await handle_callback(request, provider, key)

    @post(
        "/{provider:str}/{key:str}/{kind:str}",
        exclude_from_auth=True,
        status_code=200,
        summary="CloudPayments notification of one kind (check, pay, fail, refund)",
        request_max_body_size=None,
    )
    async def callback_kind(
        self, request: Request[Any, Any, Any], provider: str, key: str, kind: str
    ) -> Response[Any]:
        if provider != "cloudpayments" or kind not in KINDS:
            return _unknown(provider)
        return await handle_callback(request, provider, key, kind)
