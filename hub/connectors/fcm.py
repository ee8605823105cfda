"""Mobile push through Firebase Cloud Messaging HTTP v1.

Auth: a service-account JWT (RS256, signed with authlib) is exchanged at the token URI for an
OAuth2 access token (grant ``urn:ietf:params:oauth:grant-type:jwt-bearer``, scope
``https://www.googleapis.com/auth/firebase.messaging``); the token is cached in the process until
shortly before it expires. Send: ``POST {base}/v1/projects/{project}/messages:send`` with
``{"message": {"token", "notification": {"title", "body"}, "data": {str: str}}}``.

Errors (https://firebase.google.com/docs/cloud-messaging/error-codes): only FCM's own verdict on
the token raises :class:`TokenGone` (the caller drops the token): an ``FcmError`` detail with
``errorCode`` ``UNREGISTERED`` (app uninstalled, token expired), or ``INVALID_ARGUMENT`` whose
message is about the registration token (a malformed token). A bare 404 (a wrong project id, a
proxy) or an ``INVALID_ARGUMENT`` about the payload is a permanent failure that keeps every
token. 401 drops the cached access token and retries; 429/5xx are transient; other 4xx are
permanent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.jose import jwt

from hub.connectors._http import TIMEOUT, transport_error
from hub.outbox import PermanentDeliveryError, TransientDeliveryError

__all__ = ["SCOPE", "FcmAccount", "TokenGone", "access_token", "clear_token_cache", "send_push"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_MARGIN_SECONDS = 60


class TokenGone(Exception):
    """FCM says this registration token no longer exists."""


@dataclass(frozen=True, slots=True)
class FcmAccount:
    project_id: str
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str
    base_url: str = "https://fcm.googleapis.com"


_cache: dict[tuple[str, str, str], tuple[str, float]] = {}
_locks: dict[tuple[str, str, str], asyncio.Lock] = {}


def clear_token_cache() -> None:
    _cache.clear()


def _assertion(account: FcmAccount, now: int) -> str:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(header, claims, account.private_key).decode()


async def access_token(http: httpx.AsyncClient, account: FcmAccount) -> str:
    """A valid OAuth2 access token, from the cache while it has a minute left."""
    key = (account.token_uri, account.client_email, account.private_key_id or "")
    cached = _cache.get(key)
    if cached and cached[1] - _MARGIN_SECONDS > time.time():
        return cached[0]
    async with _locks.setdefault(key, asyncio.Lock()):
        cached = _cache.get(key)  # another delivery may have fetched it meanwhile
        if cached and cached[1] - _MARGIN_SECONDS > time.time():
            return cached[0]
        now = int(time.time())
        try:
            assertion = _assertion(account, now)
        except Exception as exc:  # an unusable key will not improve by retrying
            raise PermanentDeliveryError(f"FCM service-account key unusable: {exc!r}") from exc
        try:
            response = await http.post(
                account.token_uri, data={"grant_type": _GRANT, "assertion": assertion}, timeout=TIMEOUT
            )
        except httpx.TransportError as exc:
            raise transport_error("Google OAuth", exc) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientDeliveryError(f"Google OAuth HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"Google OAuth refused the service account: {response.text[:300]}")
        body = response.json()
        token = str(body["access_token"])
        _cache[key] = (token, now + float(body.get("expires_in", 3600)))
        return token


def _error(response: httpx.Response) -> tuple[str, str, str]:
    """(FCM errorCode, gRPC status, message) of an error answer; empty strings where absent."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", "", ""
    if not isinstance(error, dict):
        return "", "", ""
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    fcm_code = next((str(d["errorCode"]) for d in details if d.get("errorCode")), "")
    return fcm_code, str(error.get("status") or ""), str(error.get("message") or "")


def _token_gone(fcm_code: str, message: str) -> bool:
    if fcm_code == "UNREGISTERED":
        return True
    return fcm_code == "INVALID_ARGUMENT" and "registration token" in message.lower()


async def send_push(
    http: httpx.AsyncClient,
    account: FcmAccount,
    *,
    device_token: str,
    title: str,
    body: str,
    data: dict[str, str],
) -> str:
    """Send one push; returns FCM's message name. Raises :class:`TokenGone` for a dead token."""
    token = await access_token(http, account)
    url = f"{account.base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
    message = {
        "message": {
            "token": device_token,
            "notification": {"title": title, "body": body},
            "data": data,
            "android": {"priority": "high"},
        }
    }
    try:
        response = await http.post(
            url, json=message, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
    except httpx.TransportError as exc:
        raise transport_error("FCM", exc) from exc
    if response.status_code < 400:
        return str(response.json().get("name", ""))
    fcm_code, status, explanation = _error(response)
    if _token_gone(fcm_code, explanation):
        raise TokenGone(f"{fcm_code}: {explanation}")
    code = fcm_code or status
    if response.status_code == 401:
        _cache.pop((account.token_uri, account.client_email, account.private_key_id or ""), None)
        raise TransientDeliveryError("FCM refused the access token; a new one is fetched next time")
    if response.status_code >= 500 or response.status_code == 429 or code in ("UNAVAILABLE", "INTERNAL"):
        raise TransientDeliveryError(f"FCM HTTP {response.status_code} {code}")
    raise PermanentDeliveryError(f"FCM HTTP {response.status_code} {code}: {response.text[:300]}")
