"""PBX originate connector (TEL-7): ask the PBX to ring an extension, then dial a number.

The request is a generic JSON POST most PBX bridges accept or can be told to accept::

    POST {originate_url}
    {"extension": "101", "number": "+79123456789", "call_id": "hub-…"}

with HTTP Basic auth (username + password) or a bearer token, and an ``Idempotency-Key`` header
so a retried request does not ring the employee twice. The PBX is expected to report the call
back with the same ``call_id`` (hub JSON ``outgoing`` event or CTI ``newCall`` with direction
``out``). Failures are classified for the outbox: timeouts, connection errors, 5xx and 429 are
transient (retried with backoff); other 4xx are permanent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx

__all__ = ["OriginateRejected", "OriginateUnavailable", "PbxTarget", "originate_call"]

TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class OriginateUnavailable(Exception):
    """The PBX could not be reached or failed; asking again later may work."""


class OriginateRejected(Exception):
    """The PBX refused the request (bad credentials, unknown extension); asking again will not help."""


@dataclass(frozen=True, slots=True)
class PbxTarget:
    url: str
    auth: str = "none"  # none | basic | bearer
    username: str | None = None
    secret: str | None = None


async def originate_call(
    http: httpx.AsyncClient, target: PbxTarget, *, extension: str, number: str, call_id: str
) -> None:
    headers = {"Idempotency-Key": call_id, "Accept": "application/json"}
    if target.auth == "basic":
        pair = f"{target.username or ''}:{target.secret or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif target.auth == "bearer" and target.secret:
        headers["Authorization"] = f"Bearer {target.secret}"
    try:
        response = await http.post(
            target.url,
            json={"extension": extension, "number": number, "call_id": call_id},
            headers=headers,
            timeout=TIMEOUT,
        )
    except httpx.TransportError as exc:
        raise OriginateUnavailable(f"PBX unreachable: {exc!r}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise OriginateUnavailable(f"PBX answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise OriginateRejected(f"PBX refused: HTTP {response.status_code} {response.text[:200]}")
