"""Permissions an administrator grants to roles or to single employees (DESK-12, PAY-7).

Administrators hold every permission (they are the ones who grant them); anyone else holds one
through a grant to their role or to them by name. A new account grants ``refunds`` to the
dispatcher role, which is who decided refunds before the permission existed.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee, Permission, PermissionGrant, Role
from hub.auth.principal import Principal
from hub.errors import Conflict, Forbidden, NotFound, Unprocessable

__all__ = [
    "DEFAULT_GRANTS",
    "grant",
    "has_permission",
    "holders",
    "list_grants",
    "require_permission",
    "revoke",
]

DEFAULT_GRANTS: tuple[tuple[Permission, Role], ...] = ((Permission.REFUNDS, Role.DISPATCHER),)


async def has_permission(session: AsyncSession, principal: Principal, permission: str) -> bool:
    if principal.kind != "employee":
        return False
    if principal.role == Role.ADMINISTRATOR:
        return True
    found = await session.scalar(
        select(PermissionGrant.id)
        .where(
            PermissionGrant.account_id == principal.account_id,
            PermissionGrant.permission == permission,
            or_(PermissionGrant.role == principal.role, PermissionGrant.employee_id == principal.subject_id),
        )
        .limit(1)
    )
    return found is not None


async def require_permission(session: AsyncSession, principal: Principal, permission: str) -> None:
    """403 ``permission_required``: the same answer whatever object the request names."""
    if not await has_permission(session, principal, permission):
        raise Forbidden(
            f"Requires the {permission!r} permission", code="permission_required", permission=permission
        )


async def holders(session: AsyncSession, account_id: int, permission: str) -> list[int]:
    """Active employees holding ``permission`` (who is told of a refund request, PAY-7)."""
    granted = select(PermissionGrant).where(
        PermissionGrant.account_id == account_id, PermissionGrant.permission == permission
    )
    ids = await session.scalars(
        select(Employee.id)
        .where(
            Employee.account_id == account_id,
            Employee.active.is_(True),
            or_(
                Employee.role == Role.ADMINISTRATOR,
                Employee.role.in_(granted.with_only_columns(PermissionGrant.role)),
                Employee.id.in_(granted.with_only_columns(PermissionGrant.employee_id)),
            ),
        )
        .order_by(Employee.id)
    )
    return [int(i) for i in ids]


async def list_grants(session: AsyncSession, account_id: int) -> list[PermissionGrant]:
    return list(
        await session.scalars(
            select(PermissionGrant)
            .where(PermissionGrant.account_id == account_id)
            .order_by(PermissionGrant.id)
        )
    )


async def grant(
    session: AsyncSession, account_id: int, permission: str, *, role: str | None, employee_id: int | None
) -> PermissionGrant:
    """Grant to a role or to one employee of the account (exactly one of the two)."""
    if (role is None) == (employee_id is None):
        raise Unprocessable("Grant to a role or to an employee", code="grantee_required")
    if employee_id is not None:
        employee = await session.get(Employee, employee_id)
        if employee is None or employee.account_id != account_id:
            raise Unprocessable("No such employee", code="employee_not_found")
    same = await session.scalar(
        select(PermissionGrant.id).where(
            PermissionGrant.account_id == account_id,
            PermissionGrant.permission == permission,
            PermissionGrant.role.is_(None) if role is None else PermissionGrant.role == role,
            PermissionGrant.employee_id.is_(None)
            if employee_id is None
            else PermissionGrant.employee_id == employee_id,
        )
    )
    if same is not None:
        raise Conflict("This grant exists already", code="grant_exists", grant_id=int(same))
    row = PermissionGrant(account_id=account_id, permission=permission, role=role, employee_id=employee_id)
    session.add(row)
    await session.flush()
    return row


async def revoke(session: AsyncSession, account_id: int, grant_id: int) -> None:
    row = await session.get(PermissionGrant, grant_id)
    if row is None or row.account_id != account_id:
        raise NotFound("No such grant", code="grant_not_found")
    await session.delete(row)
    await session.flush()
