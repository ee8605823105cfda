"""Who made a change: recorded on comments and in the history (DESK-6, DESK-7)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.principal import Principal

__all__ = ["Actor"]


@dataclass(frozen=True, slots=True)
class Actor:
    """The author of a change.

    kind: ``employee`` | ``contact`` (client, through the app or a portal) | ``partner`` (a paired
    account, see hub/exchange) | ``monitoring`` (monitoring-centre operator) | ``system``.
    ``id`` is the employee / contact id where there is one; ``name`` is what history shows
    (history hides it for contacts, DESK-7). ``role`` is an employee's role (administrator,
    dispatcher, engineer): some transitions are theirs only (DESK-4).
    """

    kind: str
    id: int | None = None
    name: str | None = None
    role: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls("system", None, name)

    @classmethod
    def from_principal(cls, principal: Principal) -> Actor:
        if principal.kind == "employee":
            return cls("employee", principal.subject_id, principal.name, principal.role)
        if principal.kind == "app_user":
            return cls("contact", principal.contact_id, principal.name)
        return cls("system", None, principal.name)

    @property
    def is_client(self) -> bool:
        return self.kind == "contact"
