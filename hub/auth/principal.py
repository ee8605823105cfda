"""Who is calling: an employee, an app user or an integration key, always within one account."""

from __future__ import annotations

import msgspec

__all__ = ["Principal"]


class Principal(msgspec.Struct, frozen=True):
    kind: str  # employee | app_user | api_key
    account_id: int
    subject_id: int
    name: str
    role: str | None = None  # employee role
    key_kind: str | None = None  # api key kind: pbx | monitoring | script
    contact_id: int | None = None  # app users act as a contact

    @property
    def is_employee(self) -> bool:
        return self.kind == "employee"

    @property
    def employee_id(self) -> int | None:
        return self.subject_id if self.kind == "employee" else None
