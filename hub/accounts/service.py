"""Accounts, employees and API keys. Services never commit: the caller's transaction does."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, ApiKey, Employee, PermissionGrant
from hub.accounts.permissions import DEFAULT_GRANTS
from hub.accounts.schemas import ApiKeyCreate, EmployeeCreate, EmployeeUpdate
from hub.auth.middleware import API_KEY_PREFIX
from hub.auth.passwords import hash_password
from hub.auth.tokens import new_secret, secret_hash
from hub.db import utcnow
from hub.desk.models import Ticket
from hub.desk.workflow import FINAL
from hub.errors import Conflict, NotFound
from hub.schemas import updates_of

__all__ = [
    "create_account",
    "create_api_key",
    "create_employee",
    "get_employee",
    "revoke_api_key",
    "update_employee",
    "updates_of",
]


async def create_account(
    session: AsyncSession,
    *,
    name: str,
    slug: str,
    default_region: str = "RU",
    currency: str = "RUB",
    phone: str | None = None,
) -> Account:
    if await session.scalar(select(Account.id).where(Account.slug == slug)) is not None:
        raise Conflict(f"Account {slug!r} already exists", code="account_exists")
    account = Account(
        name=name, slug=slug, default_region=default_region.upper(), currency=currency, phone=phone
    )
    session.add(account)
    await session.flush()
    session.add_all(
        PermissionGrant(account_id=account.id, permission=permission, role=role)
        for permission, role in DEFAULT_GRANTS
    )
    await session.flush()
    return account


async def create_employee(
    session: AsyncSession, account_id: int, data: EmployeeCreate, *, log2_n: int = 14
) -> Employee:
    email = data.email.lower()
    exists = await session.scalar(
        select(Employee.id).where(Employee.account_id == account_id, Employee.email == email)
    )
    if exists is not None:
        raise Conflict("An employee with this e-mail already exists", code="employee_email_taken")
    await _check_extension_free(session, account_id, data.extension, None)
    employee = Employee(
        account_id=account_id,
        name=data.name,
        email=email,
        role=data.role,
        phone=data.phone,
        extension=data.extension,
        password_hash=hash_password(data.password, log2_n),
    )
    session.add(employee)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("An employee with this e-mail already exists", code="employee_email_taken") from exc
    return employee


async def _check_extension_free(
    session: AsyncSession, account_id: int, extension: str | None, own_id: int | None
) -> None:
    """An internal extension rings one employee: telephony pop-ups and click-to-call (TEL-1, TEL-4,
    TEL-7) find the employee by it, so it is unique in the account."""
    if not extension:
        return
    taken = await session.scalar(
        select(Employee.id).where(Employee.account_id == account_id, Employee.extension == extension).limit(1)
    )
    if taken is not None and taken != own_id:
        raise Conflict(f"Extension {extension} is already used by another employee", code="extension_taken")


async def _check_keeps_an_administrator(
    session: AsyncSession, employee: Employee, changes: dict[str, object]
) -> None:
    """An account always keeps one active administrator: only they manage people, keys and partners."""
    stays = changes.get("role", employee.role) == "administrator" and changes.get("active", employee.active)
    if employee.role != "administrator" or not employee.active or stays:
        return
    # The account row's lock serialises two administrators demoting each other at once.
    await session.scalar(select(Account.id).where(Account.id == employee.account_id).with_for_update())
    others = await session.scalar(
        select(Employee.id)
        .where(
            Employee.account_id == employee.account_id,
            Employee.role == "administrator",
            Employee.active.is_(True),
            Employee.id != employee.id,
        )
        .limit(1)
    )
    if others is None:
        raise Conflict(
            "The account's last administrator cannot be demoted or deactivated", code="last_administrator"
        )


async def _check_holds_no_open_tickets(session: AsyncSession, employee: Employee) -> None:
    """DESK-12: an employee still responsible for open tickets is not deactivated; the refusal
    lists the tickets to reassign first."""
    rows = (
        await session.execute(
            select(Ticket.id, Ticket.number)
            .where(
                Ticket.account_id == employee.account_id,
                Ticket.responsible_id == employee.id,
                Ticket.status.not_in(sorted(FINAL)),
            )
            .order_by(Ticket.number)
        )
    ).all()
    if rows:
        raise Conflict(
            "Reassign this employee's open tickets before deactivating them",
            code="employee_holds_open_tickets",
            tickets=[{"id": int(r.id), "number": int(r.number)} for r in rows],
        )


async def get_employee(session: AsyncSession, account_id: int, employee_id: int) -> Employee:
    employee = await session.get(Employee, employee_id)
    if employee is None or employee.account_id != account_id:
        raise NotFound("No such employee", code="employee_not_found")
    return employee


async def update_employee(
    session: AsyncSession, account_id: int, employee_id: int, data: EmployeeUpdate, *, log2_n: int = 14
) -> Employee:
    employee = await get_employee(session, account_id, employee_id)
    changes = updates_of(data)
    password = changes.pop("password", None)
    if "extension" in changes:
        await _check_extension_free(session, account_id, changes["extension"], employee.id)
    await _check_keeps_an_administrator(session, employee, changes)
    if changes.get("active") is False and employee.active:
        await _check_holds_no_open_tickets(session, employee)
    if password is not None:
        employee.password_hash = hash_password(password, log2_n)
    for field, value in changes.items():
        setattr(employee, field, value)
    await session.flush()
    return employee


async def create_api_key(session: AsyncSession, account_id: int, data: ApiKeyCreate) -> tuple[str, ApiKey]:
    prefix = secrets.token_hex(8)
    secret = new_secret()
    key = ApiKey(
        account_id=account_id, kind=data.kind, name=data.name, prefix=prefix, secret_hash=secret_hash(secret)
    )
    session.add(key)
    await session.flush()
    return f"{API_KEY_PREFIX}{prefix}_{secret}", key


async def revoke_api_key(session: AsyncSession, account_id: int, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id:
        raise NotFound("No such API key", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await session.flush()
    return key
