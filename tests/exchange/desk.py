"""The desk calls the exchange tests make (through the desk's own HTTP API)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant


async def new_ticket(
    http: httpx.AsyncClient, tenant: Tenant, base: str = "", **fields: Any
) -> dict[str, Any]:
    body = {"title": "Lift stuck between floors", "description": "Building 5, lift 2", **fields}
    response = await http.post(f"{base}/api/tickets", json=body, headers=tenant.dispatcher.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def ticket(http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, base: str = "") -> dict[str, Any]:
    response = await http.get(f"{base}/api/tickets/{ticket_id}", headers=tenant.dispatcher.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def tickets(http: httpx.AsyncClient, tenant: Tenant, base: str = "") -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/tickets", headers=tenant.dispatcher.headers, params={"limit": 200})
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"])


async def comment(
    http: httpx.AsyncClient,
    tenant: Tenant,
    ticket_id: int,
    text: str,
    *,
    public: bool = True,
    pass_to_partner: bool = False,
    base: str = "",
) -> dict[str, Any]:
    response = await http.post(
        f"{base}/api/tickets/{ticket_id}/comments",
        json={"body": text, "public": public, "pass_to_partner": pass_to_partner},
        headers=tenant.dispatcher.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def comments(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, base: str = ""
) -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/tickets/{ticket_id}/comments", headers=tenant.dispatcher.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"])


async def set_status(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, status: str, base: str = "", **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        f"{base}/api/tickets/{ticket_id}/status",
        json={"status": status, **extra},
        headers=tenant.dispatcher.headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def assign(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, employee_id: int, base: str = ""
) -> dict[str, Any]:
    response = await http.patch(
        f"{base}/api/tickets/{ticket_id}",
        json={"responsible_id": employee_id},
        headers=tenant.dispatcher.headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def upload(
    http: httpx.AsyncClient,
    tenant: Tenant,
    ticket_id: int,
    name: str,
    content: bytes,
    *,
    public: bool = True,
    base: str = "",
) -> dict[str, Any]:
    response = await http.post(
        f"{base}/api/tickets/{ticket_id}/files",
        files={"file": (name, content, "application/octet-stream")},
        data={"public": "true" if public else "false"},
        headers=tenant.dispatcher.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()[0])


async def download(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, file_id: int, base: str = ""
) -> bytes:
    response = await http.get(
        f"{base}/api/tickets/{ticket_id}/files/{file_id}", headers=tenant.dispatcher.headers
    )
    assert response.status_code == 200, response.text
    return response.content


async def files(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, base: str = ""
) -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/tickets/{ticket_id}/files", headers=tenant.dispatcher.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"])


async def partner_link(
    http: httpx.AsyncClient, tenant: Tenant, ticket_id: int, base: str = ""
) -> list[dict[str, Any]]:
    response = await http.get(
        f"{base}/api/exchange/tickets/{ticket_id}/partner-link", headers=tenant.dispatcher.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json())


async def transfer(
    http: httpx.AsyncClient,
    tenant: Tenant,
    ticket_id: int,
    connection_id: int,
    *,
    include_client: bool = False,
    file_ids: list[int] | None = None,
    base: str = "",
) -> dict[str, Any]:
    response = await http.post(
        f"{base}/api/exchange/tickets/{ticket_id}/transfer",
        json={"connection_id": connection_id, "include_client": include_client, "file_ids": file_ids or []},
        headers=tenant.dispatcher.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())
