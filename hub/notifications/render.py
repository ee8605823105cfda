"""The words of a notification: one subject and one short text per event, the same on every channel.

Client-facing texts name the ticket by number and status only: descriptions never travel in
notifications (MON-4 keeps them from other object users; an SMS or a lock-screen push is no safer).
"""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

_STATUS = {
    "open": "open",
    "in_progress": "in progress",
    "pending": "pending",
    "resolved": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
    "reopened": "reopened",
}


def _ticket_fields(ticket: Any) -> dict[str, Any]:
    if ticket is None:
        return {}
    return {
        "ticket_id": getattr(ticket, "id", None),
        "ticket_number": getattr(ticket, "number", None),
        "ticket_status": getattr(ticket, "status", None),
        "object_id": getattr(ticket, "object_id", None),
    }


def render(event: str, ticket: Any, data: dict[str, Any]) -> dict[str, Any]:
    fields = _ticket_fields(ticket)
    number = fields.get("ticket_number")
    ref = f"Ticket #{number}" if number is not None else "Ticket"
    status = _STATUS.get(str(data.get("status") or fields.get("ticket_status") or ""), "")
    if event == "new_ticket":
        subject, text = f"{ref}: new", f"{ref} was created."
    elif event == "ticket_registered":
        subject, text = (
            f"{ref}: registered",
            f"Your request was registered as {ref}. We will keep you posted.",
        )
    elif event == "responsible_changed":
        subject, text = f"{ref}: responsible changed", f"{ref} has a new responsible employee."
    elif event == "status_changed":
        subject, text = f"{ref}: {status}", f"{ref} is now {status}."
    elif event == "public_comment":
        subject, text = f"{ref}: new reply", f"{ref} has a new reply."
    elif event == "rating_request":
        subject, text = f"{ref}: please rate the work", f"{ref} is done. How did we do? Tap to rate."
    elif event == "partner_decision":
        partner = data.get("partner") or "The partner"
        subject, text = (
            f"{ref}: partner decision",
            f"{partner} set its ticket to {status or data.get('status')}.",
        )
    elif event == "partner_protocol_error":
        partner = data.get("partner") or "A partner"
        subject, text = (
            f"{ref}: message to {partner} refused",
            f"{partner} refused a message as {data.get('code')}: {data.get('reason')}",
        )
    elif event == "refund_requested":
        subject, text = f"{ref}: refund requested", f"A refund of {data.get('amount', '')} was requested."
    elif event == "refund_changed":
        subject, text = f"{ref}: refund {data.get('status', '')}", f"Your refund is {data.get('status', '')}."
    else:
        subject, text = ref, event
    return {"event": event, **fields, "subject": subject, "text": text, "data": data}
