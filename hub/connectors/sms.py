"""SMS through SMS.ru's HTTP API (https://sms.ru/api/send).

``POST https://sms.ru/sms/send`` (form: ``api_id``, ``to``, ``msg``, ``json=1``, optional
``from`` and ``test=1``). The JSON answer has a request-level ``status``/``status_code`` (100 =
accepted) and one entry per number under ``sms`` with its own ``status_code`` and ``sms_id``; an
accepted request without an entry for the number counts as accepted.
Codes 220 (service temporarily unavailable) and 500 are worth retrying; the others (200 bad
api_id, 201 no funds, 202 bad number, 204 sender not approved, 207 number not allowed, ...) are
not: the message is dead-lettered so an administrator sees why.
"""

from __future__ import annotations

from typing import Any

import httpx

from hub.connectors._http import TIMEOUT, classify, transport_error
from hub.outbox import PermanentDeliveryError, TransientDeliveryError

__all__ = ["normalise_number", "send_sms"]

_RETRYABLE = {220, 500}


def normalise_number(raw: str) -> str:
    """SMS.ru wants digits in international form without '+' (79255070602)."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]  # the Russian trunk prefix
    return digits


def _check(code: Any, text: Any) -> None:
    if code == 100:
        return
    detail = f"SMS.ru status {code}: {text or ''}"
    if code in _RETRYABLE:
        raise TransientDeliveryError(detail)
    raise PermanentDeliveryError(detail)


async def send_sms(
    http: httpx.AsyncClient,
    *,
    base_url: str,
    api_id: str,
    to: str,
    text: str,
    sender: str | None = None,
    test: bool = False,
) -> str | None:
    """Send one SMS; returns SMS.ru's ``sms_id``."""
    number = normalise_number(to)
    if len(number) < 10:
        raise PermanentDeliveryError(f"not a phone number: {to!r}")
    form = {"api_id": api_id, "to": number, "msg": text, "json": "1"}
    if sender:
        form["from"] = sender
    if test:
        form["test"] = "1"
    try:
        response = await http.post(f"{base_url.rstrip('/')}/sms/send", data=form, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise transport_error("SMS.ru", exc) from exc
    classify("SMS.ru", response)
    body = response.json()
    _check(body.get("status_code"), body.get("status_text"))
    entry = _entry(body.get("sms"), number)
    if entry is None:
        # The request was accepted (100) and the answer names no verdict for this number: the
        # message is with SMS.ru; dead-lettering it would only hide a sent SMS.
        return None
    _check(entry.get("status_code"), entry.get("status_text"))
    return entry.get("sms_id")


def _entry(per_number: Any, number: str) -> dict[str, Any] | None:
    """SMS.ru's verdict for our one number: keyed by it, or the only entry if it spelt it otherwise."""
    if not isinstance(per_number, dict) or not per_number:
        return None
    entry = per_number.get(number)
    if entry is None and len(per_number) == 1:
        entry = next(iter(per_number.values()))
    return entry if isinstance(entry, dict) else None
