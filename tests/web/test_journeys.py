"""ISSUE 13 journeys in a real browser (headless Chromium via Playwright), with screenshots:
sign-in, the ticket list (filters, search, flags, paging, live arrivals), the ticket page (status
actions and their refusals, assignment, comments with files, history) and a session that ends
while a comment is half written."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx
from litestar import Litestar
from playwright.async_api import Page, expect

from hub.devkit import PASSWORD, Actor, Tenant
from tests.web.conftest import Site


def png(width: int, height: int) -> bytes:
    """A small solid-colour PNG (a photo an engineer attaches)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((40, 110, 190)) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}


async def sign_in(page: Page, base: str, tenant: Tenant, actor: Actor) -> None:
    await page.goto(f"{base}/")
    await page.fill("#signin input[name=account]", tenant.slug)
    await page.fill("#signin input[name=login]", actor.email)
    await page.fill("#signin input[name=password]", PASSWORD)
    await page.click("#signin button[type=submit]")


async def new_ticket(client: httpx.AsyncClient, tenant: Tenant, **fields: object) -> dict[str, object]:
    made = await client.post("/api/tickets", json=fields, headers=tenant.dispatcher.headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_sign_in_and_out(app: Litestar, tenant: Tenant, site: Site, shots: Path) -> None:
    """ISSUE 13 journey 1: `/` opens on the sign-in form; a wrong account and a wrong password get
    the same message; signing in opens the ticket list with the employee's name; sign-out; the
    form in Russian for a Russian browser; the layout at 360 px."""
    base, browser = site.base, site.browser
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(f"{base}/")
    await expect(page).to_have_url(f"{base}/signin")
    await page.screenshot(path=str(shots / "signin.png"))
    messages = []
    for account, password in (("nosuch", PASSWORD), (tenant.slug, "wrong password")):
        await page.fill("#signin input[name=account]", account)
        await page.fill("#signin input[name=login]", tenant.dispatcher.email)
        await page.fill("#signin input[name=password]", password)
        await page.click("#signin button[type=submit]")
        messages.append(await page.locator("#signin-error").inner_text())
    assert messages == ["Unknown account, login or password"] * 2
    await page.screenshot(path=str(shots / "signin-refused.png"))
    await sign_in(page, base, tenant, tenant.dispatcher)
    await expect(page).to_have_url(f"{base}/tickets")
    await expect(page.locator("#who")).to_have_text(tenant.dispatcher.name)
    await page.click("#signout")
    await expect(page).to_have_url(f"{base}/signin?out=1")
    await page.goto(f"{base}/tickets")
    await expect(page.locator("#signin")).to_be_visible()

    russian = await browser.new_context(locale="ru-RU", viewport=PHONE)
    phone = await russian.new_page()
    await phone.goto(f"{base}/")
    await expect(phone.locator("h1")).to_have_text("Вход в хаб")
    await phone.screenshot(path=str(shots / "signin-ru-360.png"))
    await sign_in(phone, base, tenant, tenant.dispatcher)
    await expect(phone.locator("h1")).to_have_text("Заявки")
    await phone.screenshot(path=str(shots / "tickets-ru-360.png"), full_page=True)
    await russian.close()


async def test_ticket_list(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path
) -> None:
    """ISSUE 13 journey 2 (DESK-9): the list shows flags as badges; filters by status and flags,
    the new view, search by number and text; keyset pages; a ticket created through the API while
    the list is open appears in it without a reload."""
    for n in range(1, 53):
        await new_ticket(client, tenant, title=f"Routine check {n}", source="email")
    urgent = await new_ticket(
        client, tenant, title="Gate does not open", source="incoming_call", priority="critical"
    )
    flagged = await client.post(
        f"/api/tickets/{urgent['id']}/comments",
        json={"body": "Please hurry", "public": True, "important": True},
        headers=tenant.dispatcher.headers,
    )
    assert flagged.status_code == 201, flagged.text
    taken = await client.post(
        f"/api/tickets/{urgent['id']}/status",
        json={"status": "pending", "until": "2099-01-01T10:00:00+00:00", "comment": "Waiting for parts"},
        headers=tenant.dispatcher.headers,
    )
    assert taken.status_code == 200, taken.text
    base, browser = site.base, site.browser
    page = await browser.new_page(viewport=DESKTOP)
    await sign_in(page, base, tenant, tenant.dispatcher)
    rows = page.locator("#tickets tbody tr")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("Gate does not open")
    await page.screenshot(path=str(shots / "tickets.png"))
    await page.click("#next-page")
    await expect(rows).to_have_count(3)
    await expect(rows.last).to_contain_text("Routine check 1")

    await page.goto(f"{base}/tickets")
    await page.select_option("#filters select[name=status]", "pending")
    await page.click("#filters button[type=submit]")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".badge.status-pending")).to_be_visible()
    await page.fill("#filters input[name=q]", "gate")
    await page.click("#filters button[type=submit]")
    await expect(rows).to_have_count(1)
    await page.goto(f"{base}/tickets?q=%23{urgent['number']}")
    await expect(rows).to_have_count(1)
    await page.goto(f"{base}/tickets?q=nothing+like+this")
    await expect(page.locator("#empty")).to_be_visible()
    await page.screenshot(path=str(shots / "tickets-empty.png"))

    await page.goto(f"{base}/tickets?view=new")
    await expect(rows).to_have_count(50)
    await expect(page.locator("#live")).to_have_attribute("data-state", "on", timeout=15000)
    arrived = await new_ticket(client, tenant, title="Smoke alarm at the school", source="monitoring")
    fresh = page.locator(f"#tickets tr[data-ticket-id='{arrived['id']}']")
    await expect(fresh).to_be_visible(timeout=15000)
    await expect(rows.first).to_contain_text("Smoke alarm at the school")
    await page.screenshot(path=str(shots / "tickets-live.png"))


async def _client_and_object(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, object]:
    headers = tenant.dispatcher.headers
    company = (await client.post("/api/companies", json={"name": "Romashka LLC"}, headers=headers)).json()
    contact = (
        await client.post(
            "/api/contacts",
            json={"name": "Ivan Petrov", "company_id": company["id"], "phone": "+7 912 345-67-89"},
            headers=headers,
        )
    ).json()
    site = (
        await client.post(
            "/api/objects",
            json={
                "number": "A-17",
                "name": "Warehouse 17",
                "address": "12 Guarded St",
                "company_id": company["id"],
            },
            headers=headers,
        )
    ).json()
    return {"company_id": company["id"], "contact_id": contact["id"], "object_id": site["id"]}


async def test_ticket_page(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path, tmp_path: Path
) -> None:
    """ISSUE 13 journey 2, the ticket page (DESK-3..7): the header with client and object; a status
    action refused for what DESK-4 needs shows the desk's message and changes nothing; taking it into
    work asks for the responsible; putting it on hold asks for `until` and a comment; assignment;
    a public comment with an image (previewed, downloadable) and a private one; the history names
    who did what."""
    refs = await _client_and_object(client, tenant)
    ticket = await new_ticket(
        client, tenant, title="Gate does not open", description="Since this morning", **refs
    )
    picture = tmp_path / "gate.png"
    picture.write_bytes(png(160, 100))
    page = await site.browser.new_page(viewport=DESKTOP)
    await sign_in(page, site.base, tenant, tenant.dispatcher)
    await page.goto(f"{site.base}/tickets/{ticket['id']}")
    await expect(page.locator("h1")).to_contain_text("Gate does not open")
    facts = page.locator(".facts")
    for shown in ("Romashka LLC", "Ivan Petrov", "Warehouse 17", "12 Guarded St", "Nobody"):
        await expect(facts).to_contain_text(shown)

    # Resolving needs a responsible: without one the desk refuses, and the page says why.
    resolve = page.locator("details.action[data-to='resolved']")
    await resolve.locator("summary").click()
    await resolve.locator("button[type=submit]").click()
    await expect(page.locator("#refusal")).to_have_text("Status 'resolved' needs a responsible employee")
    await expect(page.locator("#status")).to_have_text("Open")
    await page.screenshot(path=str(shots / "ticket-refused.png"), full_page=True)

    take = page.locator("details.action[data-to='in_progress']")
    await take.locator("summary").click()
    await take.locator("select[name=responsible_id]").select_option(str(tenant.engineer.id))
    await take.locator("button[type=submit]").click()
    await expect(page.locator("#status")).to_have_text("In progress")
    await expect(page.locator("#responsible")).to_have_text(tenant.engineer.name)

    hold = page.locator("details.action[data-to='pending']")
    await hold.locator("summary").click()
    await hold.locator("input[name=until]").fill("2099-03-01T10:00")
    await hold.locator("button[type=submit]").click()
    await expect(page.locator("#refusal")).to_have_text("Status 'pending' needs a comment")
    hold = page.locator("details.action[data-to='pending']")
    await hold.locator("summary").click()
    await hold.locator("input[name=until]").fill("2099-03-01T10:00")
    await hold.locator("textarea[name=comment]").fill("Waiting for the spare motor")
    await hold.locator("button[type=submit]").click()
    await expect(page.locator("#status")).to_have_text("Pending")

    assign = page.locator("#assignment form")
    await assign.locator("select[name=executor_ids]").select_option(
        [str(tenant.admin.id), str(tenant.engineer.id)]
    )
    await assign.locator("button[type=submit]").click()
    await expect(page.locator(".facts")).to_contain_text(tenant.admin.name)

    form = page.locator("#comment-form")
    await form.locator("textarea[name=body]").fill("Photo of the gate motor")
    await form.locator("input[type=file]").set_input_files(str(picture))
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".comment.public")).to_contain_text("Photo of the gate motor")
    await expect(page.locator(".comment img.preview")).to_be_visible()
    form = page.locator("#comment-form")
    await form.locator("textarea[name=body]").fill("Client is difficult, call before visiting")
    await form.locator("input[name=public]").uncheck()
    await form.locator("input[name=important]").check()
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".comment.private", has_text="call before visiting")).to_be_visible()
    await expect(page.locator("#badges .flag-important")).to_be_visible()
    async with page.expect_download() as download_info:
        await page.locator(".comment a.download").first.click()
    download = await download_info.value
    assert download.suggested_filename == "gate.png"
    assert Path(await download.path()).read_bytes() == picture.read_bytes()

    history = page.locator("#history")
    await expect(history).to_contain_text("Status changed")
    await expect(history).to_contain_text(tenant.dispatcher.name)
    await expect(history).to_contain_text("Waiting for the spare motor")
    await page.screenshot(path=str(shots / "ticket.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(shots / "ticket-360.png"), full_page=True)
    # The user's own language setting, from the switch in the header.
    await page.select_option("#lang-select", "ru")
    await expect(page.locator("#status")).to_have_text("Отложена")
    await expect(page.locator("#history")).to_contain_text("Статус изменён")
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(shots / "ticket-ru.png"), full_page=True)

    comments = (
        await client.get(f"/api/tickets/{ticket['id']}/comments", headers=tenant.dispatcher.headers)
    ).json()["items"]
    # the comment given with the status change is in the thread too (a private note)
    assert [(c["body"], c["public"], len(c["file_ids"])) for c in comments] == [
        ("Waiting for the spare motor", False, 0),
        ("Photo of the gate motor", True, 1),
        ("Client is difficult, call before visiting", False, 0),
    ]
    stored = (await client.get(f"/api/tickets/{ticket['id']}", headers=tenant.dispatcher.headers)).json()
    assert stored["status"] == "pending" and stored["responsible_id"] == tenant.engineer.id
    assert stored["executor_ids"] == sorted([tenant.admin.id, tenant.engineer.id])


async def test_session_ends_while_a_comment_is_half_written(
    client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path
) -> None:
    """ISSUE 13: the session ends (here: its cookies are gone) while a comment is being written;
    sending it leads to the sign-in form, which says the comment is kept; after signing in the
    ticket page has the draft back, and sending it works."""
    # the engineer's own ticket: an engineer sees the tickets they take part in (DESK-12)
    ticket = await new_ticket(client, tenant, title="Intercom is silent", responsible_id=tenant.engineer.id)
    context = await site.browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await sign_in(page, site.base, tenant, tenant.engineer)
    await page.goto(f"{site.base}/tickets/{ticket['id']}")
    await page.locator("#comment-form textarea[name=body]").fill("Replaced the handset; testing the line")
    await context.clear_cookies()
    await page.locator("#comment-form button[type=submit]").click()
    await expect(page.locator(".notice")).to_contain_text("your unsent comment is kept")
    await page.screenshot(path=str(shots / "session-ended.png"))
    await page.fill("#signin input[name=account]", tenant.slug)
    await page.fill("#signin input[name=login]", tenant.engineer.email)
    await page.fill("#signin input[name=password]", PASSWORD)
    await page.click("#signin button[type=submit]")
    await expect(page).to_have_url(f"{site.base}/tickets/{ticket['id']}")
    body = page.locator("#comment-form textarea[name=body]")
    await expect(body).to_have_value("Replaced the handset; testing the line")
    await expect(page.locator("#draft-restored")).to_be_visible()
    await page.locator("#comment-form button[type=submit]").click()
    await expect(page.locator(".comment")).to_contain_text("Replaced the handset")
    await page.reload()
    await expect(page.locator("#comment-form textarea[name=body]")).to_have_value("")
    await context.close()


async def test_ticket_page_shows_others_changes_live(
    client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path
) -> None:
    """ISSUE 13: while a ticket page is open and a comment is half written, a comment someone else
    adds appears in place (the draft stays as it is); a status change by someone else shows and
    says the page's actions may be out of date."""
    ticket = await new_ticket(client, tenant, title="Barrier arm bent", responsible_id=tenant.engineer.id)
    page = await site.browser.new_page(viewport=DESKTOP)
    await sign_in(page, site.base, tenant, tenant.engineer)
    await page.goto(f"{site.base}/tickets/{ticket['id']}")
    await expect(page.locator("#live")).to_have_attribute("data-state", "on", timeout=15000)
    await page.locator("#comment-form textarea[name=body]").fill("On my way, ETA 20")
    added = await client.post(
        f"/api/tickets/{ticket['id']}/comments",
        json={"body": "Client says the arm is blocking the exit", "public": True},
        headers=tenant.dispatcher.headers,
    )
    assert added.status_code == 201, added.text
    await expect(page.locator("#comment-list")).to_contain_text("blocking the exit", timeout=15000)
    await expect(page.locator("#comment-form textarea[name=body]")).to_have_value("On my way, ETA 20")
    cancelled = await client.post(
        f"/api/tickets/{ticket['id']}/status",
        json={"status": "cancelled", "comment": "Duplicate"},
        headers=tenant.dispatcher.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    await expect(page.locator("#status")).to_have_text("Cancelled", timeout=15000)
    await expect(page.locator("#changed")).to_be_visible()
    await page.screenshot(path=str(shots / "ticket-live.png"), full_page=True)


async def test_client_cards(client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path) -> None:
    """ISSUE 13 journey 3 (DESK-2, DESK-8): from a ticket to its contact's card (company, phones,
    activity feed, tickets), to the company's card (contacts, objects, tickets) and the object's
    card (address, tickets)."""
    refs = await _client_and_object(client, tenant)
    ticket = await new_ticket(client, tenant, title="Camera 3 offline", **refs)
    await new_ticket(client, tenant, title="Unrelated request")
    page = await site.browser.new_page(viewport=DESKTOP)
    await sign_in(page, site.base, tenant, tenant.dispatcher)
    await page.goto(f"{site.base}/tickets/{ticket['id']}")
    await page.locator(".facts a", has_text="Ivan Petrov").click()
    await expect(page.locator("#card-title")).to_have_text("Ivan Petrov")
    await expect(page.locator(".facts")).to_contain_text("Romashka LLC")
    await expect(page.locator("#activity")).to_contain_text("Camera 3 offline")
    await expect(page.locator("#card-tickets tbody tr")).to_have_count(1)
    await page.screenshot(path=str(shots / "contact.png"), full_page=True)
    await page.locator(".facts a", has_text="Romashka LLC").click()
    await expect(page.locator("#card-title")).to_have_text("Romashka LLC")
    await expect(page.locator(".side")).to_contain_text("Ivan Petrov")
    await expect(page.locator(".side")).to_contain_text("Warehouse 17")
    await expect(page.locator("#card-tickets tbody tr")).to_have_count(1)
    await page.screenshot(path=str(shots / "company.png"), full_page=True)
    await page.locator(".side a", has_text="Warehouse 17").click()
    await expect(page.locator(".facts")).to_contain_text("12 Guarded St")
    await expect(page.locator("#card-tickets")).to_contain_text("Camera 3 offline")
    await page.locator("#card-tickets a.button").click()
    await expect(page.locator("#tickets tbody tr")).to_have_count(1)


async def test_new_ticket_form(client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path) -> None:
    """ISSUE 13 journey 2 (DESK-3): a dispatcher creates a ticket from the form with an object, a
    priority and a responsible, and lands on its page; on a phone the list's filters fold away."""
    refs = await _client_and_object(client, tenant)
    page = await site.browser.new_page(viewport=DESKTOP)
    await sign_in(page, site.base, tenant, tenant.dispatcher)
    await page.click("text=New ticket >> nth=0")
    form = page.locator("#new-ticket")
    await form.locator("input[name=title]").fill("Fire panel beeping")
    await form.locator("textarea[name=description]").fill("Panel in the lobby beeps every minute")
    await form.locator("select[name=priority]").select_option("high")
    await form.locator("select[name=object_id]").select_option(str(refs["object_id"]))
    await form.locator("select[name=responsible_id]").select_option(str(tenant.engineer.id))
    await page.screenshot(path=str(shots / "new-ticket.png"), full_page=True)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("h1")).to_contain_text("Fire panel beeping")
    await expect(page.locator("#responsible")).to_have_text(tenant.engineer.name)
    await expect(page.locator(".facts")).to_contain_text("12 Guarded St")
    listed = (
        await client.get("/api/tickets", params={"q": "fire panel"}, headers=tenant.dispatcher.headers)
    ).json()
    assert [(t["priority"], t["object_id"], t["responsible_id"]) for t in listed["items"]] == [
        ("high", refs["object_id"], tenant.engineer.id)
    ]
    await page.set_viewport_size(PHONE)
    await page.goto(f"{site.base}/tickets")
    await expect(page.locator("#filters")).to_be_hidden()
    await expect(page.locator("#tickets tbody tr")).to_have_count(1)
    await page.screenshot(path=str(shots / "tickets-360.png"), full_page=True)


async def test_console_uses_the_apps_sign_in(
    client: httpx.AsyncClient, tenant: Tenant, site: Site, shots: Path
) -> None:
    """ISSUE 13 journey 5 (TEL-4): signed in to the web app, the call console opens from the
    navigation without a second sign-in and goes live; it leads back to the tickets."""
    page = await site.browser.new_page(viewport=DESKTOP)
    await sign_in(page, site.base, tenant, tenant.dispatcher)
    await page.click("nav >> text=Console")
    await expect(page.locator("#who")).to_have_text(tenant.dispatcher.name, timeout=15000)
    await expect(page.locator("#live")).to_have_attribute("data-state", "on", timeout=15000)
    await expect(page.locator("#login")).to_be_hidden()
    await page.screenshot(path=str(shots / "console.png"))
    await page.click("header >> text=Tickets")
    await expect(page.locator("h1")).to_have_text("Tickets")
    # Another site cannot read the token: without the header the answer is a refusal.
    plain = await page.request.get(f"{site.base}/session/api-token")
    assert plain.status == 400
