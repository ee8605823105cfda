"""Names the pages show beside ids: one query per kind of row for a whole page, never one per row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee
from hub.desk.models import Ticket
from hub.people import service as people
from hub.people.models import Company, Contact, ServiceObject

__all__ = ["Names", "by_id", "employees_of", "names_for", "objects_for_filter"]


@dataclass
class Names:
    employees: dict[int, str] = field(default_factory=dict)
    companies: dict[int, Company] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    objects: dict[int, ServiceObject] = field(default_factory=dict)

    def employee(self, employee_id: int | None) -> str:
        return self.employees.get(employee_id, "") if employee_id is not None else ""


async def employees_of(session: AsyncSession, account_id: int) -> dict[int, str]:
    """Every employee of the account by id (active ones first in a select: the dict keeps order)."""
    rows = await session.execute(
        select(Employee.id, Employee.name)
        .where(Employee.account_id == account_id)
        .order_by(Employee.active.desc(), Employee.name)
    )
    return {row.id: row.name for row in rows}


async def by_id(
    session: AsyncSession, model: Any, account_id: int, ids: Iterable[int | None]
) -> dict[int, Any]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.scalars(select(model).where(model.account_id == account_id, model.id.in_(wanted)))
    return {row.id: row for row in rows}


async def names_for(session: AsyncSession, account_id: int, tickets: Iterable[Ticket]) -> Names:
    rows = list(tickets)
    return Names(
        employees=await employees_of(session, account_id),
        companies=await by_id(session, Company, account_id, (t.company_id for t in rows)),
        contacts=await by_id(session, Contact, account_id, (t.contact_id for t in rows)),
        objects=await by_id(session, ServiceObject, account_id, (t.object_id for t in rows)),
    )


async def objects_for_filter(
    session: AsyncSession, account_id: int, chosen: int | None
) -> list[ServiceObject]:
    """The objects a filter offers: the first ones of the account and the chosen one."""
    rows, _ = await people.list_objects(session, account_id, limit=200)
    if chosen is not None and all(o.id != chosen for o in rows):
        rows += list((await by_id(session, ServiceObject, account_id, [chosen])).values())
    return rows
