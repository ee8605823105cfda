"""Signing in to the web app from a test, as a browser does: the form, its CSRF token, the cookies."""

from __future__ import annotations

import re

import httpx

from hub.devkit import PASSWORD, Actor, Tenant

__all__ = ["csrf_of", "web_sign_in"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def web_sign_in(client: httpx.AsyncClient, tenant: Tenant, actor: Actor) -> str:
    """Sign ``actor`` in on ``client`` (its cookie jar keeps the session); the CSRF token."""
    form = await client.get("/signin")
    token = csrf_of(form.text)
    answer = await client.post(
        "/signin",
        data={
            "_csrf": token,
            "account": tenant.slug,
            "login": actor.email,
            "password": PASSWORD,
            "next": "/tickets",
        },
    )
    assert answer.status_code == 303, answer.text
    return token
