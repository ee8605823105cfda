"""Sign-in, tokens, refresh rotation and API keys (DESK-1)."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, Tenant


async def test_employee_signs_in_and_refresh_token_works_once(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-1: an employee signs in with a password, gets a short-lived token, refreshes once."""
    response = await client.post(
        "/api/auth/login",
        json={"account": tenant.slug, "login": tenant.dispatcher.email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["role"] == "dispatcher"
    assert me.json()["account_id"] == tenant.id

    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    reused = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_refresh_token"


async def test_wrong_password_and_unknown_account_look_the_same(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-1: a failed sign-in does not reveal whether the account or login exists."""
    wrong = await client.post(
        "/api/auth/login", json={"account": tenant.slug, "login": tenant.admin.email, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"account": "no-such", "login": "x@y.z", "password": "nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_tampered_token_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    token = tenant.admin.token
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_api_key_is_shown_once_stored_hashed_and_revocable(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-1: integration keys are per account, shown once, usable until revoked."""
    created = await client.post(
        "/api/api-keys", json={"name": "PBX", "kind": "pbx"}, headers=tenant.admin.headers
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    listed = await client.get("/api/api-keys", headers=tenant.admin.headers)
    assert key not in listed.text
    me = await client.get("/api/auth/me", headers={"X-Api-Key": key})
    assert me.status_code == 200 and me.json()["kind"] == "api_key"
    key_id = created.json()["api_key"]["id"]
    await client.post(f"/api/api-keys/{key_id}/revoke", headers=tenant.admin.headers)
    assert (await client.get("/api/auth/me", headers={"X-Api-Key": key})).status_code == 401


async def test_roles_are_enforced(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """DESK-1: only administrators manage employees and keys."""
    response = await client.post(
        "/api/employees",
        headers=tenant.engineer.headers,
        json={"name": "X", "email": "x@example.com", "role": "engineer", "password": "long-enough-1"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "role_required"
    assert (await client.get("/api/api-keys", headers=tenant.dispatcher.headers)).status_code == 403


async def test_the_last_administrator_stays(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """DESK-2: an account keeps an active administrator: demoting or deactivating the last one is
    409 last_administrator; with a second administrator it is allowed."""
    h = tenant.admin.headers
    path = f"/api/employees/{tenant.admin.id}"
    for change in ({"role": "dispatcher"}, {"active": False}):
        response = await client.patch(path, json=change, headers=h)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "last_administrator"
    second = await client.post(
        "/api/employees",
        json={"name": "Second", "email": "second@admins.test", "role": "administrator", "password": PASSWORD},
        headers=h,
    )
    assert second.status_code == 201, second.text
    demoted = await client.patch(path, json={"role": "dispatcher"}, headers=h)
    assert demoted.status_code == 200 and demoted.json()["role"] == "dispatcher"


async def test_extensions_are_unique_in_an_account(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-2 / TEL-1: an internal extension belongs to one employee of the account (telephony
    rings by it): a taken one is 409 extension_taken; another account may use the same number."""
    h = tenant.admin.headers
    body = {
        "name": "New",
        "email": "new@ext.test",
        "role": "engineer",
        "password": PASSWORD,
        "extension": "101",
    }
    taken = await client.post("/api/employees", json=body, headers=h)
    assert taken.status_code == 409 and taken.json()["code"] == "extension_taken"
    moved = await client.patch(f"/api/employees/{tenant.engineer.id}", json={"extension": "101"}, headers=h)
    assert moved.status_code == 409 and moved.json()["code"] == "extension_taken"
    same = await client.patch(f"/api/employees/{tenant.dispatcher.id}", json={"extension": "101"}, headers=h)
    assert same.status_code == 200
    fresh = body | {"extension": "777"}
    assert (await client.post("/api/employees", json=fresh, headers=h)).status_code == 201
    elsewhere = await client.post("/api/employees", json=fresh, headers=other_tenant.admin.headers)
    assert elsewhere.status_code == 201, elsewhere.text


async def test_deactivated_or_changed_employee_token_stops_working(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-1: an access token does not outlive its employee: once the employee is deactivated
    (or their role changes) the token still within its lifetime is refused with 401."""
    h = tenant.admin.headers
    off = await client.patch(f"/api/employees/{tenant.engineer.id}", json={"active": False}, headers=h)
    assert off.status_code == 200, off.text
    me = await client.get("/api/auth/me", headers=tenant.engineer.headers)
    assert me.status_code == 401 and me.json()["code"] == "subject_inactive"
    moved = await client.patch(f"/api/employees/{tenant.dispatcher.id}", json={"role": "engineer"}, headers=h)
    assert moved.status_code == 200, moved.text
    me = await client.get("/api/auth/me", headers=tenant.dispatcher.headers)
    assert me.status_code == 401 and me.json()["code"] == "token_outdated"
    assert (await client.get("/api/auth/me", headers=h)).status_code == 200
