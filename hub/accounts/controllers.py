"""The signed-in account's settings, its employees and its integration keys."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import permissions, service
from hub.accounts.models import Account, ApiKey, Employee
from hub.accounts.schemas import (
    AccountRead,
    AccountUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    EmployeeCreate,
    EmployeeRead,
    EmployeeUpdate,
    GrantCreate,
    GrantRead,
)
from hub.auth.guards import administrators, employees
from hub.auth.principal import Principal
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page, by_id, fetch_page
from hub.schemas import to_read, updates_of
from hub.settings import Settings

__all__ = ["AccountController", "ApiKeyController", "EmployeeController", "PermissionController"]


class AccountController(Controller):
    path = "/api/account"
    tags = ["accounts"]

    @get("/", guards=[employees], summary="The signed-in account")
    async def get_account(self, db_session: AsyncSession, principal: Principal) -> AccountRead:
        account = await db_session.get_one(Account, principal.account_id)
        return to_read(AccountRead, account)

    @patch("/", guards=[administrators], summary="Change the account's settings")
    async def update_account(
        self, data: AccountUpdate, db_session: AsyncSession, principal: Principal
    ) -> AccountRead:
        account = await db_session.get_one(Account, principal.account_id)
        for field, value in updates_of(data).items():
            setattr(account, field, value.upper() if field == "default_region" else value)
        await db_session.flush()
        return to_read(AccountRead, account)


class EmployeeController(Controller):
    path = "/api/employees"
    tags = ["accounts"]

    @get("/", guards=[employees], summary="Employees of the account, oldest first")
    async def list_employees(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[EmployeeRead]:
        query = select(Employee).where(Employee.account_id == principal.account_id)
        rows, next_cursor = await fetch_page(
            db_session, query, by_id(Employee.id), cursor=cursor, limit=limit
        )
        return Page([to_read(EmployeeRead, row) for row in rows], next_cursor)

    @post("/", guards=[administrators], summary="Add an employee")
    async def create_employee(
        self, data: EmployeeCreate, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> EmployeeRead:
        employee = await service.create_employee(
            db_session, principal.account_id, data, log2_n=settings.security.password_log2_n
        )
        return to_read(EmployeeRead, employee)

    @get("/{employee_id:int}", guards=[employees], summary="One employee")
    async def get_employee(
        self, employee_id: int, db_session: AsyncSession, principal: Principal
    ) -> EmployeeRead:
        return to_read(
            EmployeeRead, await service.get_employee(db_session, principal.account_id, employee_id)
        )

    @patch("/{employee_id:int}", guards=[administrators], summary="Change an employee (role, extension, ...)")
    async def update_employee(
        self,
        employee_id: int,
        data: EmployeeUpdate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> EmployeeRead:
        employee = await service.update_employee(
            db_session, principal.account_id, employee_id, data, log2_n=settings.security.password_log2_n
        )
        return to_read(EmployeeRead, employee)


class ApiKeyController(Controller):
    path = "/api/api-keys"
    tags = ["accounts"]
    guards = [administrators]

    @get("/", summary="Integration API keys (without their secrets), oldest first")
    async def list_keys(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ApiKeyRead]:
        query = select(ApiKey).where(ApiKey.account_id == principal.account_id)
        rows, next_cursor = await fetch_page(db_session, query, by_id(ApiKey.id), cursor=cursor, limit=limit)
        return Page([to_read(ApiKeyRead, row) for row in rows], next_cursor)

    @post("/", summary="Create an API key; the key is shown only in this response")
    async def create_key(
        self, data: ApiKeyCreate, db_session: AsyncSession, principal: Principal
    ) -> ApiKeyCreated:
        key, row = await service.create_api_key(db_session, principal.account_id, data)
        return ApiKeyCreated(key=key, api_key=to_read(ApiKeyRead, row))

    @post("/{key_id:int}/revoke", status_code=200, summary="Revoke an API key")
    async def revoke_key(self, key_id: int, db_session: AsyncSession, principal: Principal) -> ApiKeyRead:
        return to_read(ApiKeyRead, await service.revoke_api_key(db_session, principal.account_id, key_id))


class PermissionController(Controller):
    """Permissions an administrator grants to roles or employees (DESK-12, PAY-7)."""

    path = "/api/permissions"
    tags = ["accounts"]
    guards = [administrators]

    @get("/grants", summary="Granted permissions (administrators hold every permission)")
    async def list_grants(self, db_session: AsyncSession, principal: Principal) -> list[GrantRead]:
        rows = await permissions.list_grants(db_session, principal.account_id)
        return [to_read(GrantRead, row) for row in rows]

    @post("/grants", summary="Grant a permission to a role or to one employee")
    async def grant(self, data: GrantCreate, db_session: AsyncSession, principal: Principal) -> GrantRead:
        row = await permissions.grant(
            db_session, principal.account_id, data.permission, role=data.role, employee_id=data.employee_id
        )
        return to_read(GrantRead, row)

    @delete("/grants/{grant_id:int}", summary="Withdraw a grant")
    async def revoke(self, grant_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await permissions.revoke(db_session, principal.account_id, grant_id)
