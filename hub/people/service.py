"""Companies, contacts, service objects, object users and client-app logins (DESK-2).

Every function takes the caller's account id and filters by it: a row of another account is
reported exactly like a missing one (DESK-1). Phone numbers are stored in E.164 form for the
account's default region and mirrored into the suffix index on every change, so caller matching
(TEL-3) stays an index lookup. Services never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, AppUser, Employee
from hub.auth.passwords import hash_password
from hub.desk.models import Ticket
from hub.desk.routing import check_can_be_responsible
from hub.desk.service import refresh_search_text
from hub.errors import Conflict, NotFound, Unprocessable
from hub.paging import Rows, by_id, fetch_page
from hub.people.matching import PhoneMatchRead, looks_like_phone, match_number
from hub.people.models import Company, Contact, ObjectUser, ServiceObject
from hub.people.phones import normalise, reindex_owner
from hub.people.schemas import (
    AppUserCreate,
    AppUserUpdate,
    CompanyCreate,
    CompanyUpdate,
    ContactCreate,
    ContactUpdate,
    ObjectCreate,
    ObjectUpdate,
    ObjectUserCreate,
)
from hub.schemas import updates_of

__all__ = [
    "add_object_user",
    "create_app_user",
    "create_company",
    "create_contact",
    "create_object",
    "delete_company",
    "delete_contact",
    "delete_object",
    "get_app_user",
    "get_company",
    "get_contact",
    "get_object",
    "get_object_by_number",
    "get_object_user",
    "list_companies",
    "list_contacts",
    "list_object_users",
    "list_objects",
    "match_phone",
    "remove_object_user",
    "update_app_user",
    "update_company",
    "update_contact",
    "update_object",
    "update_object_user",
]

T = TypeVar("T", Company, Contact, ServiceObject, ObjectUser)

# Far above what one number matches in practice; the list is still bounded.


async def _owned(
    session: AsyncSession, model: type[T], account_id: int, row_id: int, code: str, what: str
) -> T:
    row = await session.get(model, row_id)
    if row is None or row.account_id != account_id:
        raise NotFound(f"No such {what}", code=code)
    return row


async def _region(session: AsyncSession, account_id: int) -> str:
    region = await session.scalar(select(Account.default_region).where(Account.id == account_id))
    return region or "RU"


def _normalised(numbers: Iterable[str], region: str) -> list[str]:
    seen: list[str] = []
    for raw in numbers:
        e164 = normalise(raw, region)
        if e164 is not None and e164 not in seen:
            seen.append(e164)
    return seen


def _one(raw: str | None, region: str) -> str | None:
    return normalise(raw, region) if raw else None


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _phone_owners(session: AsyncSession, account_id: int, q: str, kind: str) -> list[int]:
    """The ids of ``kind`` whose number ends like ``q`` when ``q`` is a phone number (issue 12)."""
    if not looks_like_phone(q):
        return []
    return [m.id for m in await match_number(session, account_id, q, limit=200) if m.kind == kind]


async def _refuse_if_ticketed(
    session: AsyncSession, row: Company | Contact | ServiceObject, column: Any, code: str, what: str
) -> None:
    """A company, contact or object with tickets stays: deleting it would detach the tickets (the
    FKs are SET NULL) and take the contact's activity feed (DESK-8) with it.

    The row is locked first: a ticket being created for it holds the FK's key-share lock, so the
    check waits for that ticket (and sees it), and a later ticket waits for the delete (and fails)."""
    await session.refresh(row, with_for_update=True)
    row_id = row.id
    if await session.scalar(select(Ticket.id).where(column == row_id).limit(1)) is not None:
        raise Conflict(f"The {what} has tickets and cannot be deleted", code=code)


async def _check_manager(session: AsyncSession, account_id: int, manager_id: int | None) -> None:
    if manager_id is None:
        return
    employee = await session.get(Employee, manager_id)
    if employee is None or employee.account_id != account_id:
        raise Unprocessable("No such employee for the responsible manager", code="manager_not_found")


async def _check_company(session: AsyncSession, account_id: int, company_id: int | None) -> None:
    if company_id is None:
        return
    company = await session.get(Company, company_id)
    if company is None or company.account_id != account_id:
        raise Unprocessable("No such company", code="company_not_found")


# --- companies ---------------------------------------------------------------------------------


async def get_company(session: AsyncSession, account_id: int, company_id: int) -> Company:
    return await _owned(session, Company, account_id, company_id, "company_not_found", "company")


async def _index_company(session: AsyncSession, company: Company, region: str) -> None:
    await reindex_owner(
        session, company.account_id, "company", company.id, [("phone", p) for p in company.phones], region
    )


async def create_company(session: AsyncSession, account_id: int, data: CompanyCreate) -> Company:
    await _check_manager(session, account_id, data.manager_id)
    region = await _region(session, account_id)
    company = Company(
        account_id=account_id,
        name=data.name,
        phones=_normalised(data.phones, region),
        email=data.email.lower() if data.email else None,
        email_domain=data.email_domain.lower() if data.email_domain else None,
        category=data.category,
        manager_id=data.manager_id,
    )
    session.add(company)
    await session.flush()
    await _index_company(session, company, region)
    await session.flush()
    return company


async def update_company(
    session: AsyncSession, account_id: int, company_id: int, data: CompanyUpdate
) -> Company:
    company = await get_company(session, account_id, company_id)
    changes = updates_of(data)
    if "manager_id" in changes:
        await _check_manager(session, account_id, changes["manager_id"])
    region = await _region(session, account_id)
    if "phones" in changes:
        changes["phones"] = _normalised(changes["phones"], region)
    for field in ("email", "email_domain"):
        if changes.get(field):
            changes[field] = changes[field].lower()
    for field, value in changes.items():
        setattr(company, field, value)
    if "phones" in changes:
        await _index_company(session, company, region)
    await session.flush()
    if "name" in changes:
        await refresh_search_text(session, account_id, "company", company.id)
    return company


async def delete_company(session: AsyncSession, account_id: int, company_id: int) -> None:
    company = await get_company(session, account_id, company_id)
    await _refuse_if_ticketed(session, company, Ticket.company_id, "company_in_use", "company")
    await reindex_owner(session, account_id, "company", company.id, [], "RU")
    await session.delete(company)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The company is still referenced", code="company_in_use") from exc


async def list_companies(
    session: AsyncSession,
    account_id: int,
    *,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Rows:
    query = select(Company).where(Company.account_id == account_id)
    if q:
        pattern = _like(q)
        query = query.where(
            or_(
                Company.name.ilike(pattern, escape="\\"),
                Company.email.ilike(pattern, escape="\\"),
                Company.email_domain.ilike(pattern, escape="\\"),
                Company.id.in_(await _phone_owners(session, account_id, q, "company")),
            )
        )
    return await fetch_page(session, query, by_id(Company.id), cursor=cursor, limit=limit)


# --- contacts ----------------------------------------------------------------------------------


async def get_contact(session: AsyncSession, account_id: int, contact_id: int) -> Contact:
    return await _owned(session, Contact, account_id, contact_id, "contact_not_found", "contact")


async def _index_contact(session: AsyncSession, contact: Contact, region: str) -> None:
    await reindex_owner(
        session,
        contact.account_id,
        "contact",
        contact.id,
        [("phone", contact.phone), ("mobile", contact.mobile)],
        region,
    )


async def create_contact(session: AsyncSession, account_id: int, data: ContactCreate) -> Contact:
    await _check_company(session, account_id, data.company_id)
    region = await _region(session, account_id)
    await check_can_be_responsible(session, account_id, data.default_responsible_id)
    contact = Contact(
        account_id=account_id,
        company_id=data.company_id,
        default_responsible_id=data.default_responsible_id,
        name=data.name,
        phone=_one(data.phone, region),
        mobile=_one(data.mobile, region),
        email=data.email.lower() if data.email else None,
    )
    session.add(contact)
    await session.flush()
    await _index_contact(session, contact, region)
    await session.flush()
    return contact


async def update_contact(
    session: AsyncSession, account_id: int, contact_id: int, data: ContactUpdate
) -> Contact:
    contact = await get_contact(session, account_id, contact_id)
    changes = updates_of(data)
    if "company_id" in changes:
        await _check_company(session, account_id, changes["company_id"])
    if "default_responsible_id" in changes:
        await check_can_be_responsible(session, account_id, changes["default_responsible_id"])
    region = await _region(session, account_id)
    for field in ("phone", "mobile"):
        if field in changes:
            changes[field] = _one(changes[field], region)
    if changes.get("email"):
        changes["email"] = changes["email"].lower()
    for field, value in changes.items():
        setattr(contact, field, value)
    if "phone" in changes or "mobile" in changes:
        await _index_contact(session, contact, region)
    await session.flush()
    if "name" in changes:
        await refresh_search_text(session, account_id, "contact", contact.id)
    return contact


async def delete_contact(session: AsyncSession, account_id: int, contact_id: int) -> None:
    contact = await get_contact(session, account_id, contact_id)
    await _refuse_if_ticketed(session, contact, Ticket.contact_id, "contact_in_use", "contact")
    await reindex_owner(session, account_id, "contact", contact.id, [], "RU")
    # Explicit rather than relying on ON DELETE CASCADE alone, so the ORM's view stays consistent.
    await session.execute(delete(ObjectUser).where(ObjectUser.contact_id == contact.id))
    await session.execute(delete(AppUser).where(AppUser.contact_id == contact.id))
    await session.delete(contact)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The contact is still referenced", code="contact_in_use") from exc


async def list_contacts(
    session: AsyncSession,
    account_id: int,
    *,
    q: str | None = None,
    company_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Rows:
    query = select(Contact).where(Contact.account_id == account_id)
    if company_id is not None:
        query = query.where(Contact.company_id == company_id)
    if q:
        pattern = _like(q)
        query = query.where(
            or_(
                Contact.name.ilike(pattern, escape="\\"),
                Contact.email.ilike(pattern, escape="\\"),
                Contact.id.in_(await _phone_owners(session, account_id, q, "contact")),
            )
        )
    return await fetch_page(session, query, by_id(Contact.id), cursor=cursor, limit=limit)


# --- service objects ---------------------------------------------------------------------------


async def get_object(session: AsyncSession, account_id: int, object_id: int) -> ServiceObject:
    return await _owned(session, ServiceObject, account_id, object_id, "object_not_found", "object")


async def get_object_by_number(session: AsyncSession, account_id: int, number: str) -> ServiceObject:
    row = await session.scalar(
        select(ServiceObject).where(ServiceObject.account_id == account_id, ServiceObject.number == number)
    )
    if row is None:
        raise NotFound("No object with this number", code="object_not_found")
    return row


async def _check_number_free(session: AsyncSession, account_id: int, number: str, own_id: int | None) -> None:
    taken = await session.scalar(
        select(ServiceObject.id).where(ServiceObject.account_id == account_id, ServiceObject.number == number)
    )
    if taken is not None and taken != own_id:
        raise Conflict(f"Object number {number!r} is already used", code="object_number_taken")


async def _flush_object(session: AsyncSession, number: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the number first
        raise Conflict(f"Object number {number!r} is already used", code="object_number_taken") from exc


async def create_object(session: AsyncSession, account_id: int, data: ObjectCreate) -> ServiceObject:
    number = data.number.strip()
    await _check_company(session, account_id, data.company_id)
    await _check_number_free(session, account_id, number, None)
    await check_can_be_responsible(session, account_id, data.default_responsible_id)
    row = ServiceObject(
        account_id=account_id,
        number=number,
        name=data.name,
        address=data.address,
        company_id=data.company_id,
        default_responsible_id=data.default_responsible_id,
    )
    session.add(row)
    await _flush_object(session, number)
    return row


async def update_object(
    session: AsyncSession, account_id: int, object_id: int, data: ObjectUpdate
) -> ServiceObject:
    row = await get_object(session, account_id, object_id)
    changes = updates_of(data)
    if "company_id" in changes:
        await _check_company(session, account_id, changes["company_id"])
    if "default_responsible_id" in changes:
        await check_can_be_responsible(session, account_id, changes["default_responsible_id"])
    if "number" in changes:
        changes["number"] = changes["number"].strip()
        await _check_number_free(session, account_id, changes["number"], row.id)
    for field, value in changes.items():
        setattr(row, field, value)
    await _flush_object(session, row.number)
    if changes.keys() & {"number", "name", "address"}:
        await refresh_search_text(session, account_id, "object", row.id)
    return row


async def delete_object(session: AsyncSession, account_id: int, object_id: int) -> None:
    row = await get_object(session, account_id, object_id)
    await _refuse_if_ticketed(session, row, Ticket.object_id, "object_in_use", "object")
    await session.execute(delete(ObjectUser).where(ObjectUser.object_id == row.id))
    await session.delete(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The object is still referenced (tickets)", code="object_in_use") from exc


async def list_objects(
    session: AsyncSession,
    account_id: int,
    *,
    q: str | None = None,
    company_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Rows:
    query = select(ServiceObject).where(ServiceObject.account_id == account_id)
    if company_id is not None:
        query = query.where(ServiceObject.company_id == company_id)
    if q:
        pattern = _like(q)
        query = query.where(
            or_(
                ServiceObject.number.ilike(pattern, escape="\\"),
                ServiceObject.name.ilike(pattern, escape="\\"),
                ServiceObject.address.ilike(pattern, escape="\\"),
            )
        )
    return await fetch_page(session, query, by_id(ServiceObject.id), cursor=cursor, limit=limit)


# --- object users ------------------------------------------------------------------------------


async def list_object_users(
    session: AsyncSession, account_id: int, object_id: int, *, cursor: str | None = None, limit: int = 50
) -> Rows:
    row = await get_object(session, account_id, object_id)
    query = select(ObjectUser).where(ObjectUser.object_id == row.id)
    return await fetch_page(session, query, by_id(ObjectUser.id), cursor=cursor, limit=limit)


async def get_object_user(
    session: AsyncSession, account_id: int, object_id: int, object_user_id: int
) -> ObjectUser:
    user = await _owned(
        session, ObjectUser, account_id, object_user_id, "object_user_not_found", "object user"
    )
    if user.object_id != object_id:
        raise NotFound("No such object user", code="object_user_not_found")
    return user


async def add_object_user(
    session: AsyncSession, account_id: int, object_id: int, data: ObjectUserCreate
) -> ObjectUser:
    row = await get_object(session, account_id, object_id)
    contact = await session.get(Contact, data.contact_id)
    if contact is None or contact.account_id != account_id:
        raise Unprocessable("No such contact", code="contact_not_found")
    exists = await session.scalar(
        select(ObjectUser.id).where(ObjectUser.object_id == row.id, ObjectUser.contact_id == contact.id)
    )
    if exists is not None:
        raise Conflict("The contact is already a user of this object", code="object_user_exists")
    user = ObjectUser(account_id=account_id, object_id=row.id, contact_id=contact.id, role=data.role)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The contact is already a user of this object", code="object_user_exists") from exc
    return user


async def update_object_user(
    session: AsyncSession, account_id: int, object_id: int, object_user_id: int, role: str
) -> ObjectUser:
    user = await get_object_user(session, account_id, object_id, object_user_id)
    user.role = role
    await session.flush()
    return user


async def remove_object_user(
    session: AsyncSession, account_id: int, object_id: int, object_user_id: int
) -> None:
    user = await get_object_user(session, account_id, object_id, object_user_id)
    await session.delete(user)
    await session.flush()


# --- client-app logins -------------------------------------------------------------------------


async def get_app_user(session: AsyncSession, account_id: int, contact_id: int) -> AppUser:
    contact = await get_contact(session, account_id, contact_id)
    user = await session.scalar(select(AppUser).where(AppUser.contact_id == contact.id))
    if user is None:
        raise NotFound("The contact has no client-app login", code="app_user_not_found")
    return user


async def create_app_user(
    session: AsyncSession, account_id: int, contact_id: int, data: AppUserCreate, *, log2_n: int = 14
) -> AppUser:
    contact = await get_contact(session, account_id, contact_id)
    if await session.scalar(select(AppUser.id).where(AppUser.contact_id == contact.id)) is not None:
        raise Conflict("The contact already has a client-app login", code="app_user_exists")
    login = data.login.lower()
    taken = await session.scalar(
        select(AppUser.id).where(AppUser.account_id == account_id, AppUser.login == login)
    )
    if taken is not None:
        raise Conflict("This login is already used", code="app_login_taken")
    user = AppUser(
        account_id=account_id,
        contact_id=contact.id,
        login=login,
        password_hash=hash_password(data.password, log2_n),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("This login is already used", code="app_login_taken") from exc
    return user


async def update_app_user(
    session: AsyncSession, account_id: int, contact_id: int, data: AppUserUpdate, *, log2_n: int = 14
) -> AppUser:
    user = await get_app_user(session, account_id, contact_id)
    changes = updates_of(data)
    if "password" in changes:
        user.password_hash = hash_password(changes.pop("password"), log2_n)
    if "active" in changes:
        user.active = changes["active"]
    await session.flush()
    return user


# --- caller matching ---------------------------------------------------------------------------


async def match_phone(session: AsyncSession, account_id: int, number: str) -> list[PhoneMatchRead]:
    """Every company and contact whose number ends like ``number`` (the API's one phone search)."""
    return await match_number(session, account_id, number)
