"""What every payment connector shares: normalised events, requests, errors, HTTP with retries."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import msgspec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = [
    "REFUND_NOT_FOUND",
    "TIMEOUT",
    "CallbackRejected",
    "CreatedPayment",
    "PaymentRequest",
    "ProviderError",
    "ProviderEvent",
    "RefundRequest",
    "decode_json",
    "equal",
    "refund_by_ref",
    "send",
]

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class ProviderEvent:
    """One fact a provider states about a payment or a refund, in the hub's words.

    ``state``: for payments ``pending`` | ``succeeded`` | ``canceled``; for refunds ``pending`` |
    ``succeeded`` | ``failed``; ``check`` / ``ignored`` change nothing.
    """

    kind: str  # payment | refund | check | ignored
    state: str
    event_type: str
    payment_ref: str | None = None
    provider_payment_id: str | None = None
    capture_id: str | None = None  # what a refund is made against (TransactionId, payment_intent)
    provider_refund_id: str | None = None
    refund_ref: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    event_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # What names the fact when the provider gives the object no id (T-Bank refund notifications).
    subject: str | None = None

    @property
    def apply_key(self) -> str:
        """One key per (object, state): the same fact told twice (or by reconciliation) applies once."""
        if self.kind == "refund":
            subject = (
                self.provider_refund_id or self.refund_ref or self.subject or self.provider_payment_id or "?"
            )
        else:
            subject = self.provider_payment_id or self.payment_ref or "?"
        return f"{self.kind}:{subject}:{self.state}"[:300]


class CallbackRejected(Exception):
    """A callback the hub refuses; nothing is applied and the attempt is recorded."""

    def __init__(self, status: int, code: str, detail: str, *, provider_code: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.provider_code = provider_code


class ProviderError(Exception):
    """The provider's API refused (``transient=False``) or could not be reached / failed (True)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class PaymentRequest:
    payment_ref: str  # also the idempotency key of the create call
    amount: Decimal
    currency: str
    description: str
    notification_url: str
    return_url: str | None


@dataclass(frozen=True)
class CreatedPayment:
    provider_payment_id: str
    payment_url: str | None
    status: str


@dataclass(frozen=True)
class RefundRequest:
    """A refund to make, or (reconciliation) one to look up: by ``provider_refund_id`` when the
    provider told us one, else by our own ``refund_ref`` (sent as the idempotency key / metadata)."""

    refund_ref: str  # idempotency key
    provider_payment_id: str
    capture_id: str | None
    amount: Decimal
    currency: str
    reason: str
    provider_refund_id: str | None = None


# ``get_refund`` answers this state when the provider, asked by our reference, knows no such refund.
REFUND_NOT_FOUND = "not_found"


def refund_by_ref(
    items: list[dict[str, Any]] | None,
    request: RefundRequest,
    to_event: Callable[[dict[str, Any]], ProviderEvent],
) -> ProviderEvent:
    """Our refund among a payment's refunds listed by the provider, found by the ``refund_ref``
    we sent in its metadata; REFUND_NOT_FOUND when the provider never received it."""
    for item in items or []:
        metadata = item.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("refund_ref") == request.refund_ref:
            return to_event(item)
    return ProviderEvent("refund", REFUND_NOT_FOUND, "api.refund", refund_ref=request.refund_ref)


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison (never ``==`` on secrets or signatures)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise CallbackRejected(400, "malformed_callback", f"Body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CallbackRejected(400, "malformed_callback", "Body is not a JSON object")
    return data


class _Retryable(Exception):
    pass


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    attempts: int = 3,
    **kwargs: Any,
) -> httpx.Response:
    """One API call with a timeout and a few quick retries on transport errors and 5xx/429.

    Only used for calls that are safe to repeat (reads, or writes carrying an idempotency key).
    The outbox retries further, with backoff, across process restarts.
    """
    kwargs.setdefault("timeout", TIMEOUT)
    response: httpx.Response | None = None
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
            reraise=True,
        ):
            with attempt:
                response = await http.request(method, url, **kwargs)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"{response.status_code}")
    except _Retryable:
        assert response is not None
        raise ProviderError(
            f"{method} {url}: HTTP {response.status_code}", transient=True, status=response.status_code
        ) from None
    except httpx.TransportError as exc:
        raise ProviderError(f"{method} {url}: {exc!r}", transient=True) from exc
    assert response is not None
    if response.status_code >= 400:
        raise ProviderError(
            f"{method} {url}: HTTP {response.status_code} {response.text[:300]}",
            transient=False,
            status=response.status_code,
        )
    return response


def json_of(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ProviderError(f"provider answered non-JSON: {response.text[:200]}", transient=True) from exc
    if not isinstance(data, dict):
        raise ProviderError("provider answered a non-object", transient=True)
    return data


def header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name) or headers.get(name.lower())


def problem(rejection: CallbackRejected) -> Any:
    """The hub's problem JSON for providers that only look at the status code. The sender is not
    signed in: it gets the code only. The detail (a provider's API address, its answer, what did
    not match) is for the administrators' callback log (``GET /api/intake/events``)."""
    from hub.errors import problem_response

    return problem_response(rejection.status, rejection.code, "Callback rejected")


def pa_credential(account: Any, name: str) -> str:
    value = (account.credentials or {}).get(name)
    if not isinstance(value, str) or not value:
        raise ProviderError(f"payment account has no {name!r}", transient=False)
    return value
