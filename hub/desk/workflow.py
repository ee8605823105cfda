"""DESK-4: the ONE transition table of the ticket workflow, and its checks.

Every path that changes a ticket's status (API, partner messages, client app, pop-ups, the
sweeper) goes through :func:`hub.desk.service.change_status`, which asks :func:`check` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.desk.actors import Actor
from hub.errors import Conflict, Forbidden, Unprocessable

__all__ = ["FINAL", "OPEN_LIKE", "STAFF", "STATUSES", "TRANSITIONS", "Rule", "allowed_from", "check"]

STATUSES = ("open", "in_progress", "pending", "resolved", "closed", "cancelled", "reopened")
FINAL = frozenset({"closed", "cancelled"})
# ``reopened`` behaves like ``open``.
OPEN_LIKE = frozenset({"open", "reopened"})
# Actors working for the account itself (not the client, a partner or the system).
STAFF = frozenset({"employee", "monitoring"})


@dataclass(frozen=True)
class Rule:
    """What a transition requires.

    needs: ``responsible`` (a responsible employee is set), ``comment``, ``until`` (pending).
    clients: a client (contact) may make it (confirm or reopen a resolved ticket).
    staff: an employee (or monitoring operator) may make it by hand; closing a resolved ticket is
    not theirs but the client's confirmation, a rating or the auto-close timeout (DESK-4).
    previous_only: only back to the status the ticket had before ``pending``.
    """

    needs: frozenset[str] = frozenset()
    clients: bool = False
    staff: bool = True
    previous_only: bool = False


_RESPONSIBLE = Rule(frozenset({"responsible"}))
_PENDING = Rule(frozenset({"until", "comment"}))
_COMMENT = Rule(frozenset({"comment"}))
_FREE = Rule()

_FROM_OPEN = {
    "in_progress": _RESPONSIBLE,
    "pending": _PENDING,
    "resolved": _RESPONSIBLE,
    "cancelled": _COMMENT,
}

TRANSITIONS: dict[tuple[str, str], Rule] = {
    **{("open", to): rule for to, rule in _FROM_OPEN.items()},
    **{("reopened", to): rule for to, rule in _FROM_OPEN.items()},
    ("in_progress", "pending"): _PENDING,
    ("in_progress", "resolved"): _RESPONSIBLE,
    ("in_progress", "cancelled"): _COMMENT,
    ("pending", "open"): _FREE,
    ("pending", "in_progress"): _RESPONSIBLE,
    ("pending", "resolved"): _RESPONSIBLE,
    ("pending", "cancelled"): _COMMENT,
    # Back to where it was when ``until`` passes (or by hand) when that was ``reopened``.
    ("pending", "reopened"): Rule(previous_only=True),
    # Confirmed by the client, by a rating or by the auto-close timeout; or sent back.
    ("resolved", "closed"): Rule(clients=True, staff=False),
    ("resolved", "reopened"): Rule(clients=True),
}


def allowed_from(status: str) -> list[str]:
    return [to for (frm, to) in TRANSITIONS if frm == status]


def check(
    *,
    current: str,
    to: str,
    actor: Actor,
    responsible_id: int | None,
    previous: str | None,
    comment: str | None,
    until: datetime | None,
    now: datetime,
    by_rating: bool = False,
) -> Rule:
    """Raise a problem with a stable code when the transition is not allowed; else its rule.

    ``by_rating``: the change follows a rating (which confirms a resolution whoever enters it).
    """
    if to not in STATUSES:
        raise Unprocessable(f"Unknown status {to!r}", code="unknown_status")
    rule = TRANSITIONS.get((current, to))
    if rule is None or (rule.previous_only and previous != to):
        raise Conflict(
            f"A ticket cannot go from {current!r} to {to!r}",
            code="transition_not_allowed",
            from_status=current,
            to_status=to,
            allowed=[
                s
                for s in allowed_from(current)
                if not TRANSITIONS[(current, s)].previous_only or s == previous
            ],
        )
    if actor.is_client and not rule.clients:
        raise Forbidden(
            "A client may only confirm or reopen a resolved ticket", code="transition_not_allowed_for_client"
        )
    if actor.kind in STAFF and not rule.staff and not by_rating:
        raise Forbidden(
            "A resolved ticket closes when the client confirms or rates it, or after the auto-close timeout",
            code="confirmation_required",
        )
    if "responsible" in rule.needs and responsible_id is None:
        raise Unprocessable(f"Status {to!r} needs a responsible employee", code="responsible_required")
    if "until" in rule.needs:
        if until is None:
            raise Unprocessable("Pending needs an 'until' time", code="until_required")
        if until.tzinfo is None:
            raise Unprocessable("'until' needs a time zone", code="until_naive")
        if until <= now:
            raise Unprocessable("'until' must be in the future", code="until_in_past")
    if "comment" in rule.needs and not (comment and comment.strip()):
        raise Unprocessable(f"Status {to!r} needs a comment", code="comment_required")
    return rule
