"""TEL-4 / TEL-5 / TEL-6 end to end in a real browser: headless Chromium (Debian's package) driven
by Playwright signs in to the agent console, a simulated PBX posts a call, the pop-up shows the
right client, a ticket is created from it and is bound to the call."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from playwright.async_api import async_playwright, expect

from tests.conftest import PASSWORD, Tenant
from tests.telephony.conftest import Clients, Pbx, call_of
from tests.telephony.server import serve

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: no sandbox as root, and no background traffic to a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> Path:
    # Fail, do not skip: .ci/run installs it, and this test is how the console is proven.
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y chromium"
    return CHROMIUM


async def test_console_popup_and_ticket_from_call(
    app: Litestar,
    client: httpx.AsyncClient,
    tenant: Tenant,
    pbx: Pbx,
    clients: Clients,
    chromium: Path,
    tmp_path: Path,
) -> None:
    """TEL-4, TEL-5, TEL-6: sign in, see the pop-up with every matched client, pick the one really
    calling and create a ticket for them from it; the ticket is bound to the call and both show
    it; the call list reloads by itself; another ticket is bound by its visible #number."""
    other = await client.post(
        "/api/tickets",
        json={"title": "Earlier request", "source": "incoming_call"},
        headers=tenant.dispatcher.headers,
    )
    assert other.status_code == 201, other.text
    async with serve(app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/console")
            await page.fill("#login input[name=account]", tenant.slug)
            await page.fill("#login input[name=login]", tenant.dispatcher.email)
            await page.fill("#login input[name=password]", PASSWORD)
            await page.click("#login button[type=submit]")
            await expect(page.locator("#live")).to_have_attribute("data-state", "on", timeout=15000)
            await expect(page.locator("#who")).to_have_text(tenant.dispatcher.name)

            ringing = await pbx.hub(
                event="ringing", call_id="web-1", from_number="8 912 345-67-89", extensions=["101"]
            )
            assert ringing.status_code == 200
            call_id = (await call_of(client, tenant, "web-1"))["id"]
            popup = page.locator(f".popup[data-call-id='{call_id}']")
            await expect(popup).to_be_visible(timeout=15000)
            await expect(popup.locator(".matches")).to_contain_text("Ivan Petrov")
            await expect(popup.locator(".matches")).to_contain_text("Romashka LLC")
            await expect(popup.locator(".matches")).to_contain_text("Olga Sidorova")

            await pbx.hub(event="answered", call_id="web-1", extension="101")
            await expect(popup.locator(".state")).to_have_text("You answered", timeout=15000)

            # Two contacts share the number: the dispatcher says it is Olga.
            await popup.locator(".matches li", has_text="Olga Sidorova").locator("input[type=radio]").check()
            await popup.locator("button.new-ticket").click()
            await popup.locator("input[name=title]").fill("Gate does not open")
            await popup.locator("textarea[name=description]").fill("Client called about the gate")
            await popup.locator(".ticket-form button[type=submit]").click()
            await expect(popup.locator(".ticket-number")).to_be_visible(timeout=15000)
            ticket_id = int(await popup.get_attribute("data-ticket-id") or 0)
            assert ticket_id

            # The call list (reloaded by the live update) shows the bound ticket.
            row = page.locator(f"#calls tr[data-call-id='{call_id}']")
            await expect(row.locator(f".tag[data-ticket-id='{ticket_id}']")).to_be_visible(timeout=15000)
            await row.locator("input[name=ticket_number]").fill(f"#{other.json()['number']}")
            await row.locator("form.bind button").click()
            bound = row.locator(f".tag[data-ticket-id='{other.json()['id']}']")
            await expect(bound).to_be_visible(timeout=15000)
            await page.screenshot(path=str(tmp_path / "console.png"))
        finally:
            await browser.close()

    call = (await client.get(f"/api/telephony/calls/{call_id}", headers=tenant.dispatcher.headers)).json()
    assert [(t["id"], t["automatic"]) for t in call["tickets"]] == [
        (ticket_id, True),
        (other.json()["id"], False),
    ]
    assert call["client"]["id"] == clients.contact_id
    ticket = (await client.get(f"/api/tickets/{ticket_id}", headers=tenant.dispatcher.headers)).json()
    assert ticket["contact_id"] == clients.other_contact_id
    listed = (
        await client.get(f"/api/telephony/tickets/{ticket_id}/calls", headers=tenant.dispatcher.headers)
    ).json()["items"]
    assert [c["id"] for c in listed] == [call_id]
