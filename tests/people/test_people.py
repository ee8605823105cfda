"""People and places: companies, contacts, service objects, object users, app logins, phone match (DESK-2)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from hub.db import Database
from hub.people.models import PhoneIndex
from hub.people.phones import find_by_suffix
from tests.conftest import Tenant


async def _post(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _match(client: httpx.AsyncClient, tenant: Tenant, number: str) -> set[tuple[str, int]]:
    response = await client.get(
        "/api/phones/match", params={"number": number}, headers=tenant.engineer.headers
    )
    assert response.status_code == 200, response.text
    return {(m["kind"], m["id"]) for m in response.json()}


async def test_company_with_phones_manager_and_contacts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """DESK-2: a client company keeps phones (normalised), e-mail, e-mail domain, category and manager;
    contacts exist with and without a company."""
    h = tenant.dispatcher.headers
    company = await _post(
        client,
        "/api/companies",
        h,
        {
            "name": "Romashka LLC",
            "phones": ["8 (495) 123-45-67", "+7 495 765 43 21"],
            "email": "Office@Romashka.example",
            "email_domain": "Romashka.example",
            "category": "VIP",
            "manager_id": tenant.engineer.id,
        },
    )
    assert company["phones"] == ["+74951234567", "+74957654321"]
    assert company["email_domain"] == "romashka.example"
    assert company["manager_id"] == tenant.engineer.id

    staff = await _post(
        client, "/api/contacts", h, {"name": "Ivan", "company_id": company["id"], "mobile": "8-916-000-11-22"}
    )
    private = await _post(client, "/api/contacts", h, {"name": "Lone Client", "phone": "(812) 555 01 02"})
    assert staff["mobile"] == "+79160001122" and staff["company_id"] == company["id"]
    assert private["company_id"] is None and private["phone"] == "+78125550102"

    listed = await client.get(
        "/api/contacts", params={"company_id": company["id"]}, headers=tenant.engineer.headers
    )
    assert [c["id"] for c in listed.json()["items"]] == [staff["id"]]

    changed = await client.patch(f"/api/companies/{company['id']}", json={"category": "Regular"}, headers=h)
    assert changed.status_code == 200 and changed.json()["category"] == "Regular"


async def test_engineers_read_but_do_not_change_people(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """DESK-2: engineers may look up clients; only administrators and dispatchers change them."""
    refused = await client.post("/api/companies", json={"name": "X"}, headers=tenant.engineer.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
    assert (await client.get("/api/companies", headers=tenant.engineer.headers)).status_code == 200


async def test_bad_references_and_bad_input_are_problems(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-2: a manager or company of another account is refused as unknown; malformed input is a 400."""
    h = tenant.admin.headers
    foreign = await client.post(
        "/api/companies", json={"name": "X", "manager_id": other_tenant.admin.id}, headers=h
    )
    assert foreign.status_code == 422 and foreign.json()["code"] == "manager_not_found"
    other_company = await _post(client, "/api/companies", other_tenant.admin.headers, {"name": "Theirs"})
    contact = await client.post(
        "/api/contacts", json={"name": "Y", "company_id": other_company["id"]}, headers=h
    )
    assert contact.status_code == 422 and contact.json()["code"] == "company_not_found"
    bad_phone = await client.post("/api/contacts", json={"name": "Y", "phone": "call me"}, headers=h)
    assert bad_phone.status_code == 400 and bad_phone.json()["code"] == "validation_error"


async def test_object_number_is_unique_per_account(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-2: the object number is unique within an account (409 object_number_taken), not across accounts."""
    h = tenant.dispatcher.headers
    company = await _post(client, "/api/companies", h, {"name": "Tower Ltd"})
    first = await _post(
        client,
        "/api/objects",
        h,
        {"number": "1001", "name": "Tower", "address": "Lenina 1", "company_id": company["id"]},
    )
    assert first["company_id"] == company["id"] and first["address"] == "Lenina 1"
    again = await client.post("/api/objects", json={"number": "1001", "name": "Other"}, headers=h)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "object_number_taken"
    second = await _post(client, "/api/objects", h, {"number": "1002", "name": "Annex"})
    renumber = await client.patch(f"/api/objects/{second['id']}", json={"number": "1001"}, headers=h)
    assert renumber.status_code == 409 and renumber.json()["code"] == "object_number_taken"
    # Another account may use the same number.
    await _post(client, "/api/objects", other_tenant.dispatcher.headers, {"number": "1001", "name": "Theirs"})
    found = await client.get("/api/objects", params={"q": "lenina"}, headers=h)
    assert [o["id"] for o in found.json()["items"]] == [first["id"]]


async def test_object_users_with_roles_and_app_logins(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """DESK-2: object users are contacts with role admin or user; staff give a contact an app login."""
    h = tenant.dispatcher.headers
    obj = await _post(client, "/api/objects", h, {"number": "7", "name": "Shop"})
    boss = await _post(client, "/api/contacts", h, {"name": "Boss", "mobile": "+7 916 111 22 33"})
    guard = await _post(client, "/api/contacts", h, {"name": "Guard"})
    admin_user = await _post(
        client, f"/api/objects/{obj['id']}/users", h, {"contact_id": boss["id"], "role": "admin"}
    )
    plain = await _post(
        client, f"/api/objects/{obj['id']}/users", h, {"contact_id": guard["id"], "role": "user"}
    )
    dup = await client.post(f"/api/objects/{obj['id']}/users", json={"contact_id": boss["id"]}, headers=h)
    assert dup.status_code == 409 and dup.json()["code"] == "object_user_exists"
    bad_role = await client.post(
        f"/api/objects/{obj['id']}/users", json={"contact_id": guard["id"], "role": "owner"}, headers=h
    )
    assert bad_role.status_code == 400
    users = (await client.get(f"/api/objects/{obj['id']}/users", headers=h)).json()["items"]
    assert {(u["contact_id"], u["role"]) for u in users} == {(boss["id"], "admin"), (guard["id"], "user")}
    promoted = await client.patch(
        f"/api/objects/{obj['id']}/users/{plain['id']}", json={"role": "admin"}, headers=h
    )
    assert promoted.json()["role"] == "admin"

    login = await _post(
        client, f"/api/contacts/{boss['id']}/app-user", h, {"login": "Boss@Shop", "password": "s3cret-pass"}
    )
    assert login["login"] == "boss@shop" and login["contact_id"] == boss["id"]
    assert "password" not in login and "password_hash" not in login
    taken = await client.post(
        f"/api/contacts/{guard['id']}/app-user",
        json={"login": "boss@shop", "password": "another-pass"},
        headers=h,
    )
    assert taken.status_code == 409 and taken.json()["code"] == "app_login_taken"
    signed_in = await client.post(
        "/api/auth/login",
        json={"account": tenant.slug, "login": "boss@shop", "password": "s3cret-pass", "kind": "app_user"},
    )
    assert signed_in.status_code == 200, signed_in.text
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    )
    assert me.json()["kind"] == "app_user" and me.json()["contact_id"] == boss["id"]
    # The app user is not staff: the people API is closed to them.
    closed = await client.get(
        "/api/companies", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    )
    assert closed.status_code == 403

    removed = await client.delete(f"/api/objects/{obj['id']}/users/{admin_user['id']}", headers=h)
    assert removed.status_code == 204
    assert len((await client.get(f"/api/objects/{obj['id']}/users", headers=h)).json()["items"]) == 1


async def test_phone_match_on_last_digits_in_every_written_form(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-2 / TEL-3: numbers written with spaces, dashes, brackets, + or the RU trunk prefix 8 match on
    the account's last N digits, and every matching company and contact is returned."""
    h = tenant.dispatcher.headers
    company = await _post(client, "/api/companies", h, {"name": "Romashka", "phones": ["+7 (495) 123-45-67"]})
    colleague = await _post(
        client,
        "/api/contacts",
        h,
        {"name": "Reception", "company_id": company["id"], "phone": "8 495 1234567"},
    )
    mobile_owner = await _post(client, "/api/contacts", h, {"name": "Petr", "mobile": "8(916)555-44-33"})
    await _post(client, "/api/contacts", h, {"name": "Unrelated", "phone": "+7 495 123-45-68"})

    expected = {("company", company["id"]), ("contact", colleague["id"])}
    for written in (
        "+74951234567",
        "8 (495) 123-45-67",
        "84951234567",
        "495-123-45-67",
        "7 495 123 45 67",
        "(495)1234567",
    ):
        assert await _match(client, tenant, written) == expected, written
    assert await _match(client, tenant, "+7 916 555 44 33") == {("contact", mobile_owner["id"])}
    assert await _match(client, tenant, "+7 999 000 00 00") == set()

    detail = (await client.get("/api/phones/match", params={"number": "84951234567"}, headers=h)).json()
    by_kind = {m["kind"]: m for m in detail}
    assert by_kind["contact"]["company_id"] == company["id"]
    assert by_kind["company"]["name"] == "Romashka"

    # Changing and deleting keep the index in step.
    await client.patch(f"/api/contacts/{colleague['id']}", json={"phone": "+7 495 000 00 01"}, headers=h)
    assert await _match(client, tenant, "84951234567") == {("company", company["id"])}
    await client.patch(f"/api/companies/{company['id']}", json={"phones": []}, headers=h)
    assert await _match(client, tenant, "84951234567") == set()
    assert await _match(client, tenant, "84950000001") == {("contact", colleague["id"])}
    assert (await client.delete(f"/api/contacts/{colleague['id']}", headers=h)).status_code == 204
    assert await _match(client, tenant, "84950000001") == set()


async def test_match_digits_setting_and_tenancy(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-2 / DESK-1: the account's phone_match_digits decides the suffix length; another account's
    clients with the same number are never matched."""
    await _post(
        client,
        "/api/contacts",
        other_tenant.dispatcher.headers,
        {"name": "Theirs", "phone": "+7 495 123 45 67"},
    )
    mine = await _post(
        client, "/api/contacts", tenant.dispatcher.headers, {"name": "Mine", "phone": "+7 495 123 45 67"}
    )
    assert await _match(client, tenant, "84951234567") == {("contact", mine["id"])}
    # A number from another city with the same last 7 digits matches only when N = 7.
    assert await _match(client, tenant, "+7 812 123 45 67") == set()
    changed = await client.patch("/api/account", json={"phone_match_digits": 7}, headers=tenant.admin.headers)
    assert changed.status_code == 200
    assert await _match(client, tenant, "+7 812 123 45 67") == {("contact", mine["id"])}

    async with db.sessionmaker() as session:
        matches = await find_by_suffix(session, tenant.id, "8 (812) 123-45-67", 7)
        assert [(m.owner_kind, m.owner_id) for m in matches] == [("contact", mine["id"])]
        rows = await session.scalar(select(func.count()).select_from(PhoneIndex))
        assert rows == 2


async def test_foreign_people_are_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-1 / DESK-2: another account's company, contact and object are 404, and lists stay separate."""
    theirs = other_tenant.dispatcher.headers
    company = await _post(client, "/api/companies", theirs, {"name": "Hidden"})
    contact = await _post(client, "/api/contacts", theirs, {"name": "Hidden"})
    obj = await _post(client, "/api/objects", theirs, {"number": "1", "name": "Hidden"})
    h = tenant.admin.headers
    for path in (
        f"/api/companies/{company['id']}",
        f"/api/contacts/{contact['id']}",
        f"/api/objects/{obj['id']}",
    ):
        response = await client.get(path, headers=h)
        assert response.status_code == 404, path
        assert (await client.delete(path, headers=h)).status_code == 404
    for path in ("/api/companies", "/api/contacts", "/api/objects"):
        assert (await client.get(path, headers=h)).json() == {"items": [], "next_cursor": None}


async def test_phone_suffix_lookup_is_an_index_range_scan(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    """DESK-2 / TEL-3: the last-digits match runs as a range on the (account_id, reversed_digits)
    index: the database's own plan for the exact statement find_by_suffix sends uses it."""
    from sqlalchemy import event, text

    await _post(
        client, "/api/contacts", tenant.dispatcher.headers, {"name": "Plan", "phone": "+7 495 111-22-33"}
    )
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "phone_index" in statement:
            sent.append((statement, parameters))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with db.sessionmaker() as session:
            assert await find_by_suffix(session, tenant.id, "+74951112233", 10)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    async with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
        else:
            # A near-empty table would be read whole; forbid that to see whether the index serves.
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(
                str(row[0]) for row in await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
    assert "ix_phone_index_lookup" in plan, plan
    assert "reversed_digits" in plan, plan  # the suffix range is an index condition, not a filter
