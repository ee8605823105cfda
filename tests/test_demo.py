"""`hub serve --demo` (issue 2): two seeded accounts whose printed credentials work, seeded once."""

from __future__ import annotations

import re

import httpx
import pytest

from hub.demo import TICKET_STATUSES, print_demo, seed_demo
from hub.settings import Settings

_LOGIN_LINE = re.compile(r"^\s+(employee|app_user)\s+(.+?)\s+login: (\S+)\s+password: (\S+)")
_ACCOUNT_LINE = re.compile(r"^Account '(.+)'\s+\(sign-in account: (\S+)\)")


def _printed_credentials(text: str) -> list[tuple[str, str, str, str, str]]:
    """(account slug, kind, role, login, password) for every credential line printed."""
    found: list[tuple[str, str, str, str, str]] = []
    slug = ""
    for line in text.splitlines():
        if match := _ACCOUNT_LINE.match(line):
            slug = match.group(2)
        elif match := _LOGIN_LINE.match(line):
            found.append((slug, match.group(1), match.group(2).strip(), match.group(3), match.group(4)))
    return found


async def test_demo_seed_is_idempotent_and_its_credentials_work(
    client: httpx.AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """DESK-1 / DESK-2: the demo has two accounts with employees of each role (extensions), client
    companies and contacts with phones, objects with an admin and a user who both sign in to the app,
    an integration key shown once, and tickets in every status; a second run changes nothing."""
    first = await seed_demo(settings)
    print_demo(first, settings)
    printed = capsys.readouterr().out
    second = await seed_demo(settings)
    print_demo(second, settings)
    again = capsys.readouterr().out

    assert first.created and not second.created
    assert [a.name for a in first.accounts] == ["Alpha Security", "Beta Lifts"]
    assert f"{settings.server.public_url}/docs" in printed
    assert all(a.api_key and a.api_key in printed for a in first.accounts)
    assert "shown once" in printed and first.accounts[0].api_key not in again

    credentials = _printed_credentials(printed)
    assert credentials == _printed_credentials(again)
    roles = {(slug, role) for slug, kind, role, _, _ in credentials if kind == "employee"}
    for slug in ("alpha-security", "beta-lifts"):
        assert {(slug, r) for r in ("administrator", "dispatcher", "engineer")} <= roles

    tokens: dict[str, str] = {}
    for slug, kind, role, login, password in credentials:
        response = await client.post(
            "/api/auth/login", json={"account": slug, "login": login, "password": password, "kind": kind}
        )
        assert response.status_code == 200, (slug, login, response.text)
        tokens.setdefault(f"{slug}/{kind}/{role}", response.json()["access_token"])

    for slug in ("alpha-security", "beta-lifts"):
        headers = {"Authorization": f"Bearer {tokens[f'{slug}/employee/administrator']}"}
        employees = (await client.get("/api/employees", headers=headers)).json()["items"]
        assert {e["role"] for e in employees} == {"administrator", "dispatcher", "engineer"}
        assert all(e["extension"] for e in employees)
        assert len((await client.get("/api/companies", headers=headers)).json()["items"]) == 2
        contacts = (await client.get("/api/contacts", headers=headers)).json()["items"]
        assert len(contacts) >= 4 and all(c["phone"] or c["mobile"] for c in contacts)
        assert any(c["company_id"] is None for c in contacts)
        for obj in (await client.get("/api/objects", headers=headers)).json()["items"]:
            users = (await client.get(f"/api/objects/{obj['id']}/users", headers=headers)).json()["items"]
            assert sorted(u["role"] for u in users) == ["admin", "user"]
            for user in users:
                login = await client.get(f"/api/contacts/{user['contact_id']}/app-user", headers=headers)
                assert login.status_code == 200
        # The printed phone numbers lead to the right clients (the telephony match is seeded too).
        assert (
            await client.get("/api/phones/match", params={"number": "8 916 111 22 33"}, headers=headers)
        ).json() or (slug == "beta-lifts")

    for slug in ("alpha-security", "beta-lifts"):
        headers = {"Authorization": f"Bearer {tokens[f'{slug}/employee/dispatcher']}"}
        seen = set()
        for status in TICKET_STATUSES:
            response = await client.get("/api/tickets", params={"status": status}, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            items = body["items"]
            seen |= {t["status"] for t in items}
        assert seen == set(TICKET_STATUSES), slug


def _items(body: object) -> list[dict[str, object]]:
    """A list answer, bare or paged."""
    return list(body["items"] if isinstance(body, dict) else body)  # type: ignore[arg-type]


async def test_demo_shows_every_capability(
    client: httpx.AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: the demo has calls in the call log (TEL-6), a price list and invoices (PAY-1..5),
    the two accounts connected as partners (EX-1), and it prints the PBX event address with its
    token, which a PBX can post to at once (TEL-1, TEL-2)."""
    info = await seed_demo(settings)
    print_demo(info, settings)
    printed = capsys.readouterr().out
    base = settings.server.public_url
    partners: dict[str, str] = {}
    for account in info.accounts:
        login = {"account": account.slug, "login": account.logins[0].login, "password": "demo-password"}
        token = (await client.post("/api/auth/login", json={**login, "kind": "employee"})).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        calls = _items((await client.get("/api/telephony/calls", headers=headers)).json())
        assert sorted((c["direction"], c["missed"]) for c in calls) == [
            ("in", False),
            ("in", True),
            ("out", False),
        ]
        assert len(_items((await client.get("/api/price-list", headers=headers)).json())) == 3
        invoices = _items((await client.get("/api/invoices", headers=headers)).json())
        assert sorted(str(i["status"]) for i in invoices) == ["draft", "issued", "marked_paid"]
        [connection] = _items((await client.get("/api/exchange/connections", headers=headers)).json())
        assert connection["state"] == "active"
        partners[account.name] = str(connection["partner_name"])

        pbx_url = f"{base}/api/telephony/pbx/events/{account.pbx_token}"
        assert pbx_url in printed
        event = {
            "event": "ringing",
            "call_id": "demo-new",
            "from_number": "+79990001122",
            "extensions": ["101"],
        }
        posted = await client.post(pbx_url.removeprefix(base), json=event)
        assert (posted.status_code, posted.json()["outcome"]) == (200, "received"), posted.text
    assert partners == {"Alpha Security": "Beta Lifts", "Beta Lifts": "Alpha Security"}
    assert f"{base}/metrics" in printed and "/api/webhooks/payments/standard/" in printed
