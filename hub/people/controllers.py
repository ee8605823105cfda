"""Companies, contacts, service objects, object users, client-app logins and caller matching.

Every employee may read; administrators and dispatchers change (DESK-2).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import dispatchers, employees
from hub.auth.principal import Principal
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.people import service
from hub.people.matching import PhoneMatchRead
from hub.people.schemas import (
    AppUserCreate,
    AppUserRead,
    AppUserUpdate,
    CompanyCreate,
    CompanyRead,
    CompanyUpdate,
    ContactCreate,
    ContactRead,
    ContactUpdate,
    ObjectCreate,
    ObjectRead,
    ObjectUpdate,
    ObjectUserCreate,
    ObjectUserRead,
    ObjectUserUpdate,
)
from hub.schemas import to_read
from hub.settings import Settings

__all__ = ["CompanyController", "ContactController", "ObjectController", "PhoneController"]

Query = Annotated[str | None, Parameter(max_length=200, description="Text search")]
FilterId = Annotated[int | None, Parameter(ge=1, le=2**62)]


class CompanyController(Controller):
    path = "/api/companies"
    tags = ["people"]

    @get("/", guards=[employees], summary="Client companies, oldest first (text search on name and e-mail)")
    async def list_companies(
        self,
        db_session: AsyncSession,
        principal: Principal,
        q: Query = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[CompanyRead]:
        rows, next_cursor = await service.list_companies(
            db_session, principal.account_id, q=q, cursor=cursor, limit=limit
        )
        return Page([to_read(CompanyRead, row) for row in rows], next_cursor)

    @post("/", guards=[dispatchers], summary="Add a client company")
    async def create_company(
        self, data: CompanyCreate, db_session: AsyncSession, principal: Principal
    ) -> CompanyRead:
        return to_read(CompanyRead, await service.create_company(db_session, principal.account_id, data))

    @get("/{company_id:int}", guards=[employees], summary="One client company")
    async def get_company(
        self, company_id: int, db_session: AsyncSession, principal: Principal
    ) -> CompanyRead:
        return to_read(CompanyRead, await service.get_company(db_session, principal.account_id, company_id))

    @patch("/{company_id:int}", guards=[dispatchers], summary="Change a client company")
    async def update_company(
        self, company_id: int, data: CompanyUpdate, db_session: AsyncSession, principal: Principal
    ) -> CompanyRead:
        row = await service.update_company(db_session, principal.account_id, company_id, data)
        return to_read(CompanyRead, row)

    @delete("/{company_id:int}", guards=[dispatchers], summary="Delete a client company")
    async def delete_company(self, company_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await service.delete_company(db_session, principal.account_id, company_id)


class ContactController(Controller):
    path = "/api/contacts"
    tags = ["people"]

    @get("/", guards=[employees], summary="Contacts, with or without a company, oldest first")
    async def list_contacts(
        self,
        db_session: AsyncSession,
        principal: Principal,
        q: Query = None,
        company_id: FilterId = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ContactRead]:
        rows, next_cursor = await service.list_contacts(
            db_session, principal.account_id, q=q, company_id=company_id, cursor=cursor, limit=limit
        )
        return Page([to_read(ContactRead, row) for row in rows], next_cursor)

    @post("/", guards=[dispatchers], summary="Add a contact")
    async def create_contact(
        self, data: ContactCreate, db_session: AsyncSession, principal: Principal
    ) -> ContactRead:
        return to_read(ContactRead, await service.create_contact(db_session, principal.account_id, data))

    @get("/{contact_id:int}", guards=[employees], summary="One contact")
    async def get_contact(
        self, contact_id: int, db_session: AsyncSession, principal: Principal
    ) -> ContactRead:
        return to_read(ContactRead, await service.get_contact(db_session, principal.account_id, contact_id))

    @patch("/{contact_id:int}", guards=[dispatchers], summary="Change a contact")
    async def update_contact(
        self, contact_id: int, data: ContactUpdate, db_session: AsyncSession, principal: Principal
    ) -> ContactRead:
        row = await service.update_contact(db_session, principal.account_id, contact_id, data)
        return to_read(ContactRead, row)

    @delete("/{contact_id:int}", guards=[dispatchers], summary="Delete a contact (and its app login)")
    async def delete_contact(self, contact_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await service.delete_contact(db_session, principal.account_id, contact_id)

    @get("/{contact_id:int}/app-user", guards=[dispatchers], summary="The contact's client-app login")
    async def get_app_user(
        self, contact_id: int, db_session: AsyncSession, principal: Principal
    ) -> AppUserRead:
        return to_read(AppUserRead, await service.get_app_user(db_session, principal.account_id, contact_id))

    @post("/{contact_id:int}/app-user", guards=[dispatchers], summary="Give the contact a client-app login")
    async def create_app_user(
        self,
        contact_id: int,
        data: AppUserCreate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> AppUserRead:
        row = await service.create_app_user(
            db_session, principal.account_id, contact_id, data, log2_n=settings.security.password_log2_n
        )
        return to_read(AppUserRead, row)

    @patch(
        "/{contact_id:int}/app-user", guards=[dispatchers], summary="Reset the password or block the login"
    )
    async def update_app_user(
        self,
        contact_id: int,
        data: AppUserUpdate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> AppUserRead:
        row = await service.update_app_user(
            db_session, principal.account_id, contact_id, data, log2_n=settings.security.password_log2_n
        )
        return to_read(AppUserRead, row)


class ObjectController(Controller):
    path = "/api/objects"
    tags = ["people"]

    @get("/", guards=[employees], summary="Service objects, oldest first (search by number, name, address)")
    async def list_objects(
        self,
        db_session: AsyncSession,
        principal: Principal,
        q: Query = None,
        company_id: FilterId = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ObjectRead]:
        rows, next_cursor = await service.list_objects(
            db_session, principal.account_id, q=q, company_id=company_id, cursor=cursor, limit=limit
        )
        return Page([to_read(ObjectRead, row) for row in rows], next_cursor)

    @post("/", guards=[dispatchers], summary="Add a service object (number unique in the account)")
    async def create_object(
        self, data: ObjectCreate, db_session: AsyncSession, principal: Principal
    ) -> ObjectRead:
        return to_read(ObjectRead, await service.create_object(db_session, principal.account_id, data))

    @get("/{object_id:int}", guards=[employees], summary="One service object")
    async def get_object(self, object_id: int, db_session: AsyncSession, principal: Principal) -> ObjectRead:
        return to_read(ObjectRead, await service.get_object(db_session, principal.account_id, object_id))

    @patch("/{object_id:int}", guards=[dispatchers], summary="Change a service object")
    async def update_object(
        self, object_id: int, data: ObjectUpdate, db_session: AsyncSession, principal: Principal
    ) -> ObjectRead:
        return to_read(
            ObjectRead, await service.update_object(db_session, principal.account_id, object_id, data)
        )

    @delete("/{object_id:int}", guards=[dispatchers], summary="Delete a service object")
    async def delete_object(self, object_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await service.delete_object(db_session, principal.account_id, object_id)

    @get(
        "/{object_id:int}/users",
        guards=[employees],
        summary="The object's users (admin or user), oldest first",
    )
    async def list_object_users(
        self,
        object_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ObjectUserRead]:
        rows, next_cursor = await service.list_object_users(
            db_session, principal.account_id, object_id, cursor=cursor, limit=limit
        )
        return Page([to_read(ObjectUserRead, row) for row in rows], next_cursor)

    @post("/{object_id:int}/users", guards=[dispatchers], summary="Attach a contact to the object")
    async def add_object_user(
        self, object_id: int, data: ObjectUserCreate, db_session: AsyncSession, principal: Principal
    ) -> ObjectUserRead:
        row = await service.add_object_user(db_session, principal.account_id, object_id, data)
        return to_read(ObjectUserRead, row)

    @patch(
        "/{object_id:int}/users/{object_user_id:int}", guards=[dispatchers], summary="Change a user's role"
    )
    async def update_object_user(
        self,
        object_id: int,
        object_user_id: int,
        data: ObjectUserUpdate,
        db_session: AsyncSession,
        principal: Principal,
    ) -> ObjectUserRead:
        row = await service.update_object_user(
            db_session, principal.account_id, object_id, object_user_id, data.role
        )
        return to_read(ObjectUserRead, row)

    @delete("/{object_id:int}/users/{object_user_id:int}", guards=[dispatchers], summary="Detach a user")
    async def remove_object_user(
        self, object_id: int, object_user_id: int, db_session: AsyncSession, principal: Principal
    ) -> None:
        await service.remove_object_user(db_session, principal.account_id, object_id, object_user_id)


class PhoneController(Controller):
    path = "/api/phones"
    tags = ["people"]

    @get("/match", guards=[employees], summary="Companies and contacts whose number matches (last N digits)")
    async def match(
        self,
        db_session: AsyncSession,
        principal: Principal,
        number: Annotated[str, Parameter(min_length=1, max_length=40, description="The number as dialled")],
    ) -> list[PhoneMatchRead]:
        return await service.match_phone(db_session, principal.account_id, number)
