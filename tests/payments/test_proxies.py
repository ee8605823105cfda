"""PAY-6: YooKassa's sender check behind a reverse proxy (HUB_TRUSTED_PROXIES)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from tests.conftest import make_settings
from tests.payments.conftest import World
from tests.payments.providers import FakeYooKassa

PROXY = "10.20.0.5"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", trusted_proxies=("10.20.0.0/16",))


def _from(world: World, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=world.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_sender_is_taken_from_a_trusted_proxy_only(world: World, far: Any) -> None:
    """PAY-6: behind a trusted proxy the sender is the X-Forwarded-For client (right-most hop
    that is not a trusted proxy); a peer that is not a trusted proxy cannot claim an address."""
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials, allowed_networks=["185.71.76.0/27"])
    invoice = await world.issued(await world.ticket(), [{"name": "Visit", "unit_price": "100"}])
    pid = invoice["provider_payment_id"]
    yk.pay(pid)
    note = yk.notification("payment.succeeded", yk.payments[pid])

    async def send(peer: str, forwarded: str) -> httpx.Response:
        async with _from(world, peer) as client:
            signed = type(note)(note.body, {**note.headers, "X-Forwarded-For": forwarded})
            return await world.callback(account, signed, client=client)

    spoofed = await send("203.0.113.50", "185.71.76.5")  # not a proxy of ours: XFF ignored
    assert spoofed.status_code == 403 and spoofed.json()["code"] == "sender_not_allowed"
    outsider = await send(PROXY, "198.51.100.7, 203.0.113.9")  # our proxy, client outside
    assert outsider.status_code == 403
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "issued"
    # a client's own (forged) left-most entry is skipped: the proxy appended the real sender
    accepted = await send(PROXY, "203.0.113.9, 185.71.76.5, 10.20.0.9")
    assert accepted.status_code == 200, accepted.text
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"
    log = (await world.get("/api/intake/events?source=payments", headers=world.tenant.admin.headers))["items"]
    assert [e["remote_addr"] for e in reversed(log)] == ["203.0.113.50", "203.0.113.9", "185.71.76.5"]
    assert [e["state"] for e in reversed(log)] == ["rejected", "rejected", "done"]
