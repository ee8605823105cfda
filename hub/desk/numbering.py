"""A new ticket's number and everything its references say, in one statement (DESK-3).

Creating a ticket is a hot path (the monitoring centre, the pop-up, the client app). The number
comes from ``UPDATE accounts ... RETURNING`` (the UPDATE takes the account row's lock until the
transaction ends, so concurrent creations get distinct numbers); the same RETURNING carries scalar
subqueries for the object, contact, company, responsible (or the default one, DESK-12), executors,
observers and the object's app users, each within the account. One round trip instead of one per
reference, and what it reads is handed on (search text, the live frame, notifications) instead of
read again.

The statement is built once, at import: building it per call costs more CPU than running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, String, Table, bindparam, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, Employee
from hub.desk.routing import inactive_responsible
from hub.errors import NotFound, Unprocessable
from hub.people.models import Company, Contact, ObjectUser, ServiceObject

__all__ = ["NewTicketRefs", "number_and_refs"]

_ACCOUNT = bindparam("account_id", type_=BigInteger)
_OBJECT = bindparam("object_id", type_=BigInteger)
_CONTACT = bindparam("contact_id", type_=BigInteger)


def _of_object(column: Any) -> Any:
    return select(column).where(ServiceObject.id == _OBJECT, ServiceObject.account_id == _ACCOUNT)


def _of_contact(column: Any) -> Any:
    return select(column).where(Contact.id == _CONTACT, Contact.account_id == _ACCOUNT)


def _id_list(column: Any, *where: Any) -> Any:
    """The ids as one comma-separated string (string_agg / group_concat): many rows in one column."""
    return select(func.aggregate_strings(cast(column, String), ",")).where(*where)


def _active(employee_id: Any) -> Any:
    return (
        select(Employee.id)
        .where(Employee.id == employee_id, Employee.account_id == _ACCOUNT, Employee.active.is_(True))
        .scalar_subquery()
    )


def _default_responsible(company_id: Any) -> Any:
    """DESK-12: the object's default responsible, else the contact's, else the company's manager
    (the first of them still active)."""
    return func.coalesce(
        _active(_of_object(ServiceObject.default_responsible_id).scalar_subquery()),
        _active(_of_contact(Contact.default_responsible_id).scalar_subquery()),
        _active(
            select(Company.manager_id)
            .where(Company.id == company_id, Company.account_id == _ACCOUNT)
            .scalar_subquery()
        ),
    )


def _statement() -> Any:
    company_id = func.coalesce(
        bindparam("company_id", type_=BigInteger),
        _of_object(ServiceObject.company_id).scalar_subquery(),
        _of_contact(Contact.company_id).scalar_subquery(),
    )
    responsible_id = func.coalesce(
        bindparam("responsible_id", type_=BigInteger), _default_responsible(company_id)
    )
    columns = {
        "object_id": _of_object(ServiceObject.id),
        "object_company_id": _of_object(ServiceObject.company_id),
        "object_number": _of_object(ServiceObject.number),
        "object_name": _of_object(ServiceObject.name),
        "object_address": _of_object(ServiceObject.address),
        "contact_name": _of_contact(Contact.name),
        "contact_company_id": _of_contact(Contact.company_id),
        "company_name": select(Company.name).where(Company.id == company_id, Company.account_id == _ACCOUNT),
        # The named responsible, or the default one when none is named.
        "responsible_id": select(Employee.id).where(
            Employee.id == responsible_id, Employee.account_id == _ACCOUNT
        ),
        "responsible_name": select(Employee.name).where(
            Employee.id == responsible_id, Employee.account_id == _ACCOUNT
        ),
        "responsible_active": select(Employee.active).where(
            Employee.id == responsible_id, Employee.account_id == _ACCOUNT
        ),
        "employee_ids": _id_list(
            Employee.id,
            Employee.account_id == _ACCOUNT,
            Employee.id.in_(bindparam("employee_ids", expanding=True, type_=BigInteger)),
        ),
        "object_user_ids": _id_list(
            ObjectUser.contact_id, ObjectUser.account_id == _ACCOUNT, ObjectUser.object_id == _OBJECT
        ),
    }
    table: Table = Account.__table__  # type: ignore[assignment]
    return (
        update(table)
        .where(table.c.id == _ACCOUNT)
        .values(next_ticket_number=table.c.next_ticket_number + 1)
        .returning(
            (table.c.next_ticket_number - 1).label("number"),
            *(query.scalar_subquery().label(name) for name, query in columns.items()),
        )
    )


_NUMBER_AND_REFS = _statement()


def _ids(joined: str | None) -> set[int]:
    return {int(i) for i in joined.split(",")} if joined else set()


@dataclass(frozen=True)
class NewTicketRefs:
    """The new ticket's number and what its references hold (all within the account)."""

    number: int
    company_id: int | None  # given, or the object's, or the contact's
    company_name: str | None
    contact_name: str | None
    object_texts: tuple[str | None, ...]  # number, name, address: what the ticket is found by
    responsible_id: int | None  # given, or the default one (DESK-12)
    responsible_name: str | None
    object_user_ids: tuple[int, ...]  # the object's app users, told live (MON-4)


def _refuse(what: str, code: str, **extra: Any) -> Unprocessable:
    # The same answer for "not yours" and "does not exist" (DESK-1).
    return Unprocessable(f"No such {what}", code=code, **extra)


def _check(row: Any, given: dict[str, Any], executors: Sequence[int], observers: Sequence[int]) -> None:
    """Refuse the first reference that is missing, in the order the fields are checked in."""
    if given["object_id"] is not None and row.object_id is None:
        raise _refuse("object", "object_not_found")
    if given["contact_id"] is not None and row.contact_name is None:
        raise _refuse("contact", "contact_not_found")
    if given["company_id"] is not None and row.company_name is None:
        raise _refuse("company", "company_not_found")
    if given["responsible_id"] is not None and row.responsible_name is None:
        raise _refuse("employee", "employee_not_found")
    if given["responsible_id"] is not None and not row.responsible_active:
        raise inactive_responsible(given["responsible_id"])
    found = _ids(row.employee_ids)
    for wanted in (executors, observers):
        missing = sorted(set(wanted) - found)
        if missing:
            raise _refuse("employee", "employee_not_found", missing=missing)


async def number_and_refs(
    session: AsyncSession,
    account_id: int,
    given: dict[str, Any],
    executors: Sequence[int],
    observers: Sequence[int],
) -> NewTicketRefs:
    """Take the account's next ticket number and read the references ``given`` names
    (``object_id``, ``contact_id``, ``company_id``, ``responsible_id``): one statement. Raises
    422 ``*_not_found`` for a reference outside the account (the caller's transaction then rolls
    back, number included)."""
    params = {**given, "account_id": account_id, "employee_ids": [*executors, *observers]}
    row = (await session.execute(_NUMBER_AND_REFS, params)).first()
    if row is None:
        raise NotFound("No such account", code="account_not_found")
    _check(row, given, executors, observers)
    object_texts = (row.object_number, row.object_name, row.object_address) if row.object_id else ()
    return NewTicketRefs(
        number=int(row.number),
        company_id=given["company_id"] or row.object_company_id or row.contact_company_id,
        company_name=row.company_name,
        contact_name=row.contact_name,
        object_texts=object_texts,
        responsible_id=int(row.responsible_id) if row.responsible_id is not None else None,
        responsible_name=row.responsible_name,
        object_user_ids=tuple(sorted(_ids(row.object_user_ids))),
    )
