"""Outbound HTTP to partner hubs: address validation, timeouts and a bounded response (EX-10)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from contracts.exchange import MAX_INBOX_BYTES
from hub.errors import BadRequest
from hub.settings import Settings

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TIMEOUT",
    "TOTAL_TIMEOUT",
    "MessageTooLarge",
    "PartnerResponse",
    "check_partner_address",
    "post_to_partner",
    "validate_partner_url",
]

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# httpx's timeouts bound each read; a partner that trickles its answer is cut off after this.
TOTAL_TIMEOUT = 15.0
# A partner answers with a small JSON document; anything bigger is refused unread.
MAX_RESPONSE_BYTES = 64 * 1024


def validate_partner_url(url: str, settings: Settings) -> str:
    """A partner hub's base URL, normalised; https only and no loopback or private address unless
    ``settings.server.allow_insecure_partners`` (local test networks)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise BadRequest("The partner address is not a URL", code="partner_url_invalid") from exc
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise BadRequest("The partner address must be an http(s) URL", code="partner_url_invalid")
    if parts.query or parts.fragment:
        raise BadRequest("The partner address takes no query or fragment", code="partner_url_invalid")
    if not settings.server.allow_insecure_partners:
        if parts.scheme != "https":
            raise BadRequest("Partner hubs must use https", code="partner_url_insecure")
        if _is_local(host):
            raise BadRequest("Partner hubs on local addresses are refused", code="partner_url_insecure")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


async def check_partner_address(url: str, settings: Settings) -> str:
    """``validate_partner_url``, and the host name must resolve to public addresses only (a public
    name pointing at a loopback or private address is refused as well), unless
    ``allow_insecure_partners``."""
    normalised = validate_partner_url(url, settings)
    if settings.server.allow_insecure_partners:
        return normalised
    parts = urlsplit(normalised)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise BadRequest("The partner address does not resolve", code="partner_url_invalid") from exc
    if any(_is_local(str(info[4][0])) for info in infos):
        raise BadRequest("Partner hubs on local addresses are refused", code="partner_url_insecure")
    return normalised


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


class MessageTooLarge(ValueError):
    """The body is over the partner's inbox limit: sending it again cannot help."""


@dataclass(frozen=True, slots=True)
class PartnerResponse:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


async def post_to_partner(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> PartnerResponse:
    """POST JSON with timeouts (``TOTAL_TIMEOUT`` in all), no redirects, and at most
    ``MAX_RESPONSE_BYTES`` of answer read.

    Raises ``httpx.TransportError`` (network), ``TimeoutError`` (too slow in total),
    ``MessageTooLarge`` (over the partner's inbox limit, nothing sent) or ``ValueError`` (answer
    too large)."""
    content = msgspec.json.encode(body)
    if len(content) > MAX_INBOX_BYTES:
        raise MessageTooLarge(f"message of {len(content)} bytes is over the partner's {MAX_INBOX_BYTES}")
    async with asyncio.timeout(TOTAL_TIMEOUT):
        return await _post(http, url, content)


async def _post(http: httpx.AsyncClient, url: str, content: bytes) -> PartnerResponse:
    async with http.stream(
        "POST",
        url,
        content=content,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=TIMEOUT,
        follow_redirects=False,
    ) as response:
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > MAX_RESPONSE_BYTES:
                raise ValueError(f"partner answer larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        parsed = msgspec.json.decode(bytes(received)) if received else None
    except msgspec.DecodeError:
        parsed = None
    return PartnerResponse(response.status_code, parsed)
