"""Sign-in and token refresh. No commits here: the request's transaction commits once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, AppUser, Employee, RefreshToken
from hub.auth.passwords import verify_password
from hub.auth.principal import Principal
from hub.auth.schemas import TokenPair
from hub.auth.tokens import issue_access_token, new_secret, secret_hash
from hub.db import utcnow
from hub.errors import Unauthorized
from hub.settings import Settings

__all__ = ["issue_tokens", "principal_for", "refresh", "sign_in", "sign_out"]

_BAD_CREDENTIALS = "Unknown account, login or password"


async def principal_for(
    session: AsyncSession, kind: str, account_id: int, subject_id: int
) -> Principal | None:
    """The current principal of an employee or app user, or ``None`` if gone or deactivated."""
    if kind == "employee":
        employee = await session.get(Employee, subject_id)
        if employee is None or not employee.active or employee.account_id != account_id:
            return None
        return Principal("employee", account_id, employee.id, employee.name, role=employee.role)
    app_user = await session.get(AppUser, subject_id)
    if app_user is None or not app_user.active or app_user.account_id != account_id:
        return None
    from hub.people.models import Contact

    contact = await session.get(Contact, app_user.contact_id)
    name = contact.name if contact else app_user.login
    return Principal("app_user", account_id, app_user.id, name, contact_id=app_user.contact_id)


async def sign_in(
    session: AsyncSession, settings: Settings, account_slug: str, login: str, password: str, kind: str
) -> TokenPair:
    account = await session.scalar(select(Account).where(Account.slug == account_slug))
    subject: Employee | AppUser | None = None
    if account is not None:
        if kind == "employee":
            subject = await session.scalar(
                select(Employee).where(Employee.account_id == account.id, Employee.email == login.lower())
            )
        else:
            subject = await session.scalar(
                select(AppUser).where(AppUser.account_id == account.id, AppUser.login == login.lower())
            )
    stored_hash = subject.password_hash if subject is not None else None
    # Verify even when the subject is unknown so timing does not reveal which logins exist.
    valid = verify_password(password, stored_hash or _DUMMY_HASH)
    if subject is None or not valid or not subject.active or account is None:
        raise Unauthorized(_BAD_CREDENTIALS, code="invalid_credentials")
    principal = await principal_for(session, kind, account.id, subject.id)
    if principal is None:
        raise Unauthorized(_BAD_CREDENTIALS, code="invalid_credentials")
    return await issue_tokens(session, settings, principal)


async def issue_tokens(session: AsyncSession, settings: Settings, principal: Principal) -> TokenPair:
    refresh_token = new_secret()
    session.add(
        RefreshToken(
            account_id=principal.account_id,
            subject_kind=principal.kind,
            subject_id=principal.subject_id,
            token_hash=secret_hash(refresh_token),
            expires_at=utcnow() + timedelta(seconds=settings.security.refresh_token_seconds),
        )
    )
    access = issue_access_token(
        principal, settings.security.secret_key, settings.security.access_token_seconds
    )
    return TokenPair(access, refresh_token, "Bearer", settings.security.access_token_seconds)


async def refresh(session: AsyncSession, settings: Settings, presented: str) -> TokenPair:
    now = utcnow()
    # Marking it used in the same statement that checks it makes a token work once, also
    # under concurrent refreshes.
    row = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == secret_hash(presented),
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.subject_kind, RefreshToken.account_id, RefreshToken.subject_id)
        )
    ).first()
    if row is None:
        raise Unauthorized("The refresh token is invalid, used or expired", code="invalid_refresh_token")
    principal = await principal_for(session, row.subject_kind, row.account_id, row.subject_id)
    if principal is None:
        raise Unauthorized("The refresh token is invalid, used or expired", code="invalid_refresh_token")
    return await issue_tokens(session, settings, principal)


_DUMMY_HASH = "scrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


async def sign_out(session: AsyncSession, presented: str) -> None:
    """Spend a refresh token so it renews nothing (the web app's sign-out)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == secret_hash(presented), RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
