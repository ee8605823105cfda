"""What administrators see of inbound events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["IntakeEventDetail", "IntakeEventRead"]


class IntakeEventRead(msgspec.Struct, kw_only=True):
    id: int
    source: str  # payments.stripe, telephony, monitoring, ...
    endpoint_id: int | None
    dedupe_key: str | None
    order_key: str | None
    remote_addr: str | None
    received_at: datetime
    # pending, applying: on its way; done: applied (``outcome`` says what it did); failed: could
    # not be applied (retry it); rejected: refused at the door (``error_code`` says why)
    state: str
    outcome: str | None
    error_code: str | None
    attempts: int
    applied_at: datetime | None


class IntakeEventDetail(IntakeEventRead, kw_only=True):
    error_detail: str | None
    headers: dict[str, Any]
    body: str
    result: dict[str, Any] | None
