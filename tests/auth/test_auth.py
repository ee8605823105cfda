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
