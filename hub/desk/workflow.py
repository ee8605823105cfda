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
    clients: a client (contact) may make it (confirm or reopen a resolved ticket; cancel a new
    ticket nobody has taken, DESK-11).
    staff_roles: when set, only employees of these roles may, and with a comment: closing a
    resolved ticket is the client's confirmation, a rating or the auto-close timeout, or a
    dispatcher's or administrator's decision with a comment (e.g. confirmed by phone, DESK-4).
    client_needs: what a client's transition requires besides ``needs`` (``unassigned``).
    previous_only: only back to the status the ticket had before ``pending``.
    """

    needs: frozenset[str] = frozenset()
    clients: bool = False
    staff_roles: frozenset[str] = frozenset()
    client_needs: frozenset[str] = frozenset()
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
    # "A resident may cancel only a new ticket" (seed 002 §16): open, and nobody has taken it.
    ("open", "cancelled"): Rule(frozenset({"comment"}), clients=True, client_needs=frozenset({"unassigned"})),
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
    ("resolved", "closed"): Rule(clients=True, staff_roles=frozenset({"administrator", "dispatcher"})),
    ("resolved", "reopened"): Rule(clients=True),
}


def allowed_from(status: str) -> list[str]:
    return [to for (frm, to) in TRANSITIONS if frm == status]


def _check_client(rule: Rule, responsible_id: int | None) -> None:
    if not rule.clients:
        raise Forbidden(
            "A client may only confirm or reopen a resolved ticket, or cancel a new one",
            code="transition_not_allowed_for_client",
        )
    if "unassigned" in rule.client_needs and responsible_id is not None:
        raise Conflict(
            "The ticket is already being handled: ask us to cancel it in a reply", code="ticket_taken"
        )


def _check_staff(rule: Rule, actor: Actor) -> frozenset[str]:
    """What staff must add for this transition (a comment); refuses those who may not make it."""
    if not rule.staff_roles:
        return frozenset()
    if actor.role not in rule.staff_roles:
        raise Forbidden(
            "A resolved ticket closes when the client confirms or rates it, after the auto-close "
            "timeout, or by a dispatcher or administrator with a comment",
            code="confirmation_required",
        )
    return frozenset({"comment"})


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
    if actor.is_client:
        _check_client(rule, responsible_id)
    if actor.kind in STAFF and not by_rating:
        needs = _check_staff(rule, actor)
        if "comment" in needs and not (comment and comment.strip()):
            raise Unprocessable(f"Status {to!r} needs a comment from staff", code="comment_required")
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
