"""Accounts, employees and API keys. Services never commit: the caller's transaction does."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, ApiKey, Employee
from hub.accounts.schemas import ApiKeyCreate, EmployeeCreate, EmployeeUpdate
from hub.auth.middleware import API_KEY_PREFIX
from hub.auth.passwords import hash_password
from hub.auth.tokens import new_secret, secret_hash
from hub.db import utcnow
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
