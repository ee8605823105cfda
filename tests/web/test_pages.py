"""The web app without a browser: sign-in rules, CSRF, and accounts kept apart on every page
(ISSUE 13; DESK-1 for pages)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar import Litestar

from hub.demo import print_demo, seed_demo
from hub.devkit import PASSWORD, Tenant
from hub.settings import Settings
from tests.web.helpers import csrf_of, web_sign_in


async def test_root_leads_to_sign_in_and_then_to_tickets(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """ISSUE 13: `/` leads to the sign-in form, and once signed in to the ticket list."""
    first = await client.get("/")
    assert (first.status_code, first.headers["location"]) == (303, "/signin")
    await web_sign_in(client, tenant, tenant.dispatcher)
    again = await client.get("/")
    assert again.headers["location"] == "/tickets"
    listed = await client.get("/tickets")
    assert listed.status_code == 200 and tenant.dispatcher.name in listed.text


async def test_wrong_account_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """ISSUE 13 sign-in: nothing tells which of account, login or password was wrong."""
    token = csrf_of((await client.get("/signin")).text)
    answers = []
    for account, login, password in (
        ("nosuch", tenant.dispatcher.email, PASSWORD),
        (tenant.slug, "nobody@nowhere.test", PASSWORD),
        (tenant.slug, tenant.dispatcher.email, "wrong password"),
    ):
        answer = await client.post(
            "/signin", data={"_csrf": token, "account": account, "login": login, "password": password}
        )
        answers.append((answer.status_code, "Unknown account, login or password" in answer.text))
    assert answers == [(401, True)] * 3


async def test_a_form_without_the_csrf_token_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """ISSUE 13: a form posted from another site (no token) changes nothing."""
    await web_sign_in(client, tenant, tenant.dispatcher)
    made = await client.post("/api/tickets", json={"title": "Lift stuck"}, headers=tenant.dispatcher.headers)
    answer = await client.post(f"/tickets/{made.json()['id']}/comments", data={"body": "forged"})
    assert answer.status_code == 403
    comments = await client.get(
        f"/api/tickets/{made.json()['id']}/comments", headers=tenant.dispatcher.headers
    )
    assert comments.json()["items"] == []


async def test_signing_out_ends_the_session(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """ISSUE 13: after sign-out the pages send the browser to the sign-in form, and the old refresh
    cookie renews nothing."""
    token = await web_sign_in(client, tenant, tenant.dispatcher)
    refresh = client.cookies.get("hub_refresh")
    out = await client.post("/signout", data={"_csrf": token})
    assert out.headers["location"] == "/signin?out=1"
    after = await client.get("/tickets")
    assert after.status_code == 303 and after.headers["location"].startswith("/signin")
    client.cookies.set("hub_refresh", refresh or "")
    replayed = await client.get("/tickets")
    assert replayed.status_code == 303


async def test_language_follows_the_browser_and_the_users_choice(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """ISSUE 13: Russian for a Russian browser; the user's own choice wins over the browser's."""
    russian = await client.get("/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert "Вход в хаб" in russian.text
    token = csrf_of(russian.text)
    await client.post("/language", data={"_csrf": token, "lang": "en", "next": "/signin"})
    english = await client.get("/signin", headers={"Accept-Language": "ru-RU"})
    assert "Sign in to the hub" in english.text


async def test_another_accounts_pages_are_not_found(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-1 on pages: every page of B's ticket answers as a ticket that exists nowhere (404),
    reading or writing, and nothing of B changes."""
    theirs = await client.post(
        "/api/tickets", json={"title": "B's secret"}, headers=other_tenant.dispatcher.headers
    )
    ticket_id = theirs.json()["id"]
    token = await web_sign_in(client, tenant, tenant.admin)
    for path in (f"/tickets/{ticket_id}", f"/tickets/{ticket_id}/files/1"):
        for target in (path, path.replace(str(ticket_id), str(2**61))):
            answer = await client.get(target)
            assert answer.status_code == 404, target
            assert "B&#39;s secret" not in answer.text and "B's secret" not in answer.text
    for action, form in (
        ("status", {"status": "cancelled", "comment": "x"}),
        ("assign", {"responsible_id": str(tenant.admin.id)}),
        ("comments", {"body": "hello", "public": "1"}),
    ):
        answer = await client.post(f"/tickets/{ticket_id}/{action}", data={"_csrf": token, **form})
        assert answer.status_code == 404, action
    seen = await client.get(f"/api/tickets/{ticket_id}", headers=other_tenant.dispatcher.headers)
    assert seen.json()["status"] == "open" and seen.json()["responsible_id"] is None
    history = await client.get(f"/api/tickets/{ticket_id}/history", headers=other_tenant.dispatcher.headers)
    assert [h["kind"] for h in history.json()["items"]] == ["created"]


async def test_demo_opens_on_the_sign_in_page(
    client: httpx.AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """ISSUE 13: `hub serve --demo` prints the web app's sign-in page first, and a printed
    dispatcher signs in there and sees the seeded tickets."""
    print_demo(await seed_demo(settings), settings)
    printed = capsys.readouterr().out
    assert (
        f"Open the web app and sign in as an employee above: {settings.server.public_url}/signin" in printed
    )
    slug, login, password = re.search(
        r"Account '[^']+'\s+\(sign-in account: (\S+)\)\n(?:.*\n)*?\s+employee\s+dispatcher\s+login: (\S+)\s+password: (\S+)",
        printed,
    ).groups()  # type: ignore[union-attr]
    token = csrf_of((await client.get("/signin")).text)
    answer = await client.post(
        "/signin", data={"_csrf": token, "account": slug, "login": login, "password": password}
    )
    assert answer.status_code == 303
    listed = await client.get("/tickets")
    assert listed.status_code == 200 and listed.text.count('<tr data-ticket-id="') >= 7


def test_every_interface_text_has_a_russian_translation() -> None:
    """ISSUE 13: the interface is in English and Russian through the catalogue: every text a
    template or page asks for, and every status, priority, type, source and action name, has a
    Russian entry."""
    from hub.desk import workflow
    from hub.web import tickets
    from hub.web.i18n import catalogue_keys
    from hub.web.pages import TEMPLATES

    asked: set[str] = set()
    for path in [*TEMPLATES.rglob("*.html"), *Path("hub/web").glob("*.py")]:
        asked |= set(re.findall(r"""_\(\s*["']([^"'{}]+)["']\s*\)""", path.read_text(encoding="utf-8")))
    asked |= {f"status.{s}" for s in workflow.STATUSES} | {
        f"to.{s}" for s in workflow.STATUSES if s != "open"
    }
    asked |= {f"priority.{p}" for p in tickets.PRIORITIES} | {f"type.{t}" for t in tickets.TYPES}
    asked |= {f"source.{s}" for s in tickets.SOURCES}
    missing = sorted(asked - catalogue_keys("ru") - {"Hub"} - {k for k in asked if k.startswith("error.")})
    assert not missing, missing


async def test_an_expired_access_token_is_renewed_by_the_refresh_token(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """ISSUE 13: the session outlives the short access token: a page request with a stale access
    cookie renews the pair through the auth service (the old refresh token is spent) and goes on."""
    await web_sign_in(client, tenant, tenant.engineer)
    old_refresh = client.cookies.get("hub_refresh")
    client.cookies.set("hub_session", "expired.or.forged")
    page = await client.get("/tickets")
    assert page.status_code == 200 and tenant.engineer.name in page.text
    assert client.cookies.get("hub_refresh") not in (None, old_refresh)
    spent = await client.post("/api/auth/refresh", json={"refresh_token": old_refresh})
    assert spent.status_code == 401


async def test_an_oversized_upload_is_refused_unread(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-6 on pages: a comment form whose files exceed the per-file limit is refused (413, the
    page says why) before it is read, and nothing is added."""
    app.state.settings = msgspec.structs.replace(
        app.state.settings, files=msgspec.structs.replace(app.state.settings.files, max_file_bytes=1000)
    )
    made = await client.post("/api/tickets", json={"title": "Lift stuck"}, headers=tenant.dispatcher.headers)
    token = await web_sign_in(client, tenant, tenant.dispatcher)
    answer = await client.post(
        f"/tickets/{made.json()['id']}/comments",
        data={"_csrf": token, "body": "photo", "public": "1"},
        files={"file": ("big.bin", b"x" * 200_000, "application/octet-stream")},
    )
    assert answer.status_code == 413 and "text/html" in answer.headers["content-type"]
    comments = await client.get(
        f"/api/tickets/{made.json()['id']}/comments", headers=tenant.dispatcher.headers
    )
    assert comments.json()["items"] == []
