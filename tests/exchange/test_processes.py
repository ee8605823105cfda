"""End to end with two (and three) real hub processes: ``hub serve`` each with its own database,
data directory and loopback port, the outbox worker running in-process (EX-1..10)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import select

from hub.db import Database
from hub.outbox.models import OutboxMessage
from tests.conftest import Tenant
from tests.exchange import desk
from tests.exchange.hubproc import HubProcess

T = TypeVar("T")
PG = os.environ.get("HUB_TEST_DATABASE_URL", "")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 60.0) -> T:
    """Poll until ``probe`` returns something truthy (delivery is asynchronous); never a timed assertion
    on speed, only a bound so a lost message fails instead of hanging."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def _database_url(name: str) -> str | None:
    if not PG:
        return None
    from tests.telephony.hubproc import fresh_database, private_pg_url

    url = private_pg_url(f"test_exchange_{name}")
    await fresh_database(url)
    return url


@contextlib.asynccontextmanager
async def hubs(tmp_path: Path, *names: str) -> AsyncIterator[list[HubProcess]]:
    started: list[HubProcess] = []
    try:
        for name in names:
            hub = HubProcess(name, tmp_path, await _database_url(name.lower()))
            await hub.seed(name)
            hub.start()
            started.append(hub)
        await asyncio.gather(*(hub.wait_ready() for hub in started))
        yield started
    finally:
        for hub in started:
            hub.stop()


async def _pair(http: httpx.AsyncClient, a: HubProcess, b: HubProcess) -> tuple[int, int]:
    alpha, beta = a.tenants[0], b.tenants[0]
    issued = await http.post(f"{a.base_url}/api/exchange/pairing-keys", json={}, headers=alpha.admin.headers)
    assert issued.status_code == 201, issued.text
    assert issued.json()["hub_url"] == a.base_url
    connected = await http.post(
        f"{b.base_url}/api/exchange/connections",
        json={"key": issued.json()["key"]},
        headers=beta.admin.headers,
    )
    assert connected.status_code == 201, connected.text
    listed = (await http.get(f"{a.base_url}/api/exchange/connections", headers=alpha.admin.headers)).json()[
        "items"
    ]
    mine = [c for c in listed if c["uuid"] == connected.json()["uuid"]]
    assert [c["partner_name"] for c in mine] == [beta.name] and mine[0]["state"] == "active"
    assert connected.json()["partner_name"] == alpha.name
    return int(mine[0]["id"]), int(connected.json()["id"])


async def _partner_ticket(
    http: httpx.AsyncClient, hub: HubProcess, tenant: Tenant, title: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = [
            t
            for t in await desk.tickets(http, tenant, hub.base_url)
            if t["source"] == "partner" and t["title"] == title
        ]
        return found[0] if found else None

    return await eventually(probe, f"partner ticket {title!r} on {hub.name}")


async def _bodies(http: httpx.AsyncClient, hub: HubProcess, tenant: Tenant, ticket_id: int) -> list[str]:
    return [c["body"] for c in await desk.comments(http, tenant, ticket_id, hub.base_url)]


async def _tracking(
    http: httpx.AsyncClient, hub: HubProcess, tenant: Tenant, ticket_id: int
) -> dict[str, Any]:
    return (await desk.partner_link(http, tenant, ticket_id, hub.base_url))[0]


async def test_two_hub_processes_full_exchange(tmp_path: Path) -> None:
    """EX-1..9 across two real hubs: pair by key; transfer with and without end-client data;
    comments both ways with the public/private rules; status tracking; send back and rate;
    disconnect, after which nothing passes."""
    async with hubs(tmp_path, "Alpha", "Beta") as (a, b), httpx.AsyncClient(timeout=30) as http:
        alpha, beta = a.tenants[0], b.tenants[0]
        a_conn, b_conn = await _pair(http, a, b)

        company = await http.post(
            f"{a.base_url}/api/companies",
            json={"name": "Client Co", "phones": ["+7 495 111 22 33"]},
            headers=alpha.admin.headers,
        )
        plain = await desk.new_ticket(
            http, alpha, a.base_url, title="Gate jammed", company_id=company.json()["id"]
        )
        with_client = await desk.new_ticket(
            http, alpha, a.base_url, title="Lift noise", company_id=company.json()["id"]
        )
        await desk.transfer(http, alpha, plain["id"], a_conn, base=a.base_url)
        chosen = await desk.upload(
            http, alpha, with_client["id"], "scheme.pdf", b"%PDF scheme", base=a.base_url
        )
        await desk.upload(http, alpha, with_client["id"], "contract.pdf", b"%PDF contract", base=a.base_url)
        await desk.transfer(
            http,
            alpha,
            with_client["id"],
            a_conn,
            include_client=True,
            file_ids=[chosen["id"]],
            base=a.base_url,
        )
        copy = await _partner_ticket(http, b, beta, "Gate jammed")
        copy2 = await _partner_ticket(http, b, beta, "Lift noise")
        assert (await _tracking(http, b, beta, copy["id"]))["client"] is None
        assert (await _tracking(http, b, beta, copy2["id"]))["client"]["company"] == "Client Co"
        assert "Client Co" not in str(await desk.ticket(http, beta, copy["id"], b.base_url))
        assert await desk.files(http, beta, copy["id"], b.base_url) == []
        files_b = await desk.files(http, beta, copy2["id"], b.base_url)
        assert [(f["filename"], f["public"]) for f in files_b] == [("scheme.pdf", True)]
        assert await desk.download(http, beta, copy2["id"], files_b[0]["id"], b.base_url) == b"%PDF scheme"

        # B's public file comes back to A as private; B's private file stays (EX-6).
        await desk.upload(http, beta, copy2["id"], "act.pdf", b"%PDF act", base=b.base_url)
        await desk.upload(http, beta, copy2["id"], "notes.txt", b"b only", public=False, base=b.base_url)

        async def mirrored() -> list[dict[str, Any]] | None:
            files = await desk.files(http, alpha, with_client["id"], a.base_url)
            return files if any(f["filename"] == "act.pdf" for f in files) else None

        at_a = {f["filename"]: f for f in await eventually(mirrored, "B's public file at A")}
        assert at_a["act.pdf"]["public"] is False and "notes.txt" not in at_a

        async def numbered() -> dict[str, Any] | None:
            tracking = await _tracking(http, a, alpha, plain["id"])
            return tracking if tracking["partner_number"] == copy["number"] else None

        await eventually(numbered, "partner number on the original")

        # Comments both ways (EX-5, EX-6).
        await desk.comment(
            http, alpha, plain["id"], "to partner", public=False, pass_to_partner=True, base=a.base_url
        )
        await desk.comment(http, alpha, plain["id"], "stays at A", public=False, base=a.base_url)
        await desk.comment(http, beta, copy["id"], "public at B", public=True, base=b.base_url)
        await desk.comment(http, beta, copy["id"], "private at B", public=False, base=b.base_url)

        async def arrived_b() -> bool:
            return "to partner" in await _bodies(http, b, beta, copy["id"])

        async def arrived_a() -> bool:
            return "public at B" in await _bodies(http, a, alpha, plain["id"])

        await eventually(arrived_b, "A's comment at B")
        await eventually(arrived_a, "B's public comment at A")
        in_b = await desk.comments(http, beta, copy["id"], b.base_url)
        in_a = await desk.comments(http, alpha, plain["id"], a.base_url)
        assert next(c for c in in_b if c["body"] == "to partner")["public"] is True
        assert next(c for c in in_a if c["body"] == "public at B")["public"] is False
        assert "stays at A" not in str(in_b) and "private at B" not in str(in_a)

        # Tracking, send back, rate (EX-7, EX-8).
        await desk.assign(http, beta, copy["id"], beta.engineer.id, base=b.base_url)
        await desk.set_status(http, beta, copy["id"], "resolved", base=b.base_url)

        async def partner_status(status: str) -> Callable[[], Awaitable[bool]]:
            async def probe() -> bool:
                return (await _tracking(http, a, alpha, plain["id"]))["partner_status"] == status

            return probe

        await eventually(await partner_status("resolved"), "resolved on the original")
        assert (await _tracking(http, a, alpha, plain["id"]))["partner_responsible"] == beta.engineer.name
        back = await http.post(
            f"{a.base_url}/api/exchange/tickets/{plain['id']}/partner/send-back",
            json={"comment": "still jammed"},
            headers=alpha.dispatcher.headers,
        )
        assert back.status_code == 200, back.text
        await eventually(await partner_status("reopened"), "reopened after send-back")
        await desk.set_status(http, beta, copy["id"], "resolved", base=b.base_url)
        await eventually(await partner_status("resolved"), "resolved again")
        rated = await http.post(
            f"{a.base_url}/api/exchange/tickets/{plain['id']}/partner/rate",
            json={"score": 5, "comment": "thanks"},
            headers=alpha.dispatcher.headers,
        )
        assert rated.status_code == 200, rated.text
        await eventually(await partner_status("closed"), "closed after rating")
        assert (await desk.ticket(http, beta, copy["id"], b.base_url))["status"] == "closed"

        # Disconnect (EX-3).
        ended = await http.post(
            f"{a.base_url}/api/exchange/connections/{a_conn}/disconnect", headers=alpha.admin.headers
        )
        assert ended.status_code == 200

        async def ended_at_b() -> bool:
            view = await http.get(
                f"{b.base_url}/api/exchange/connections/{b_conn}", headers=beta.admin.headers
            )
            return bool(view.json()["state"] == "ended" and view.json()["ended_by"] == "partner")

        await eventually(ended_at_b, "connection ended at B")

        async def exchange_queue() -> list[int]:
            listed = await http.get(
                f"{b.base_url}/api/outbox",
                params={"topic": "exchange.message", "limit": 200},
                headers=beta.admin.headers,
            )
            assert listed.status_code == 200, listed.text
            return [m["id"] for m in listed.json()["items"]]

        before = await exchange_queue()
        await desk.comment(http, beta, copy2["id"], "after the end", public=True, base=b.base_url)
        assert await exchange_queue() == before  # nothing is even queued for the partner


async def test_partner_restart_everything_arrives_once_in_order(tmp_path: Path) -> None:
    """EX-10: B's hub is stopped; A's comments queue up (the connection shows backlog and last
    error); B restarts and every comment arrives exactly once, in order."""
    async with hubs(tmp_path, "Alpha", "Beta") as (a, b), httpx.AsyncClient(timeout=30) as http:
        alpha, beta = a.tenants[0], b.tenants[0]
        a_conn, _ = await _pair(http, a, b)
        original = await desk.new_ticket(http, alpha, a.base_url, title="Camera offline")
        await desk.transfer(http, alpha, original["id"], a_conn, base=a.base_url)
        copy = await _partner_ticket(http, b, beta, "Camera offline")
        b.stop()
        for n in range(20):
            await desk.comment(
                http, alpha, original["id"], f"c{n:02}", public=False, pass_to_partner=True, base=a.base_url
            )

        async def broken_link() -> dict[str, Any] | None:
            view = (
                await http.get(f"{a.base_url}/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)
            ).json()
            return view if view["delivery"]["last_error"] and view["delivery"]["backlog"] > 0 else None

        status = await broken_link() or await eventually(broken_link, "backlog and error visible")
        assert "unreachable" in status["delivery"]["last_error"]
        b.start()
        await b.wait_ready()

        async def all_there() -> list[str] | None:
            bodies = [x for x in await _bodies(http, b, beta, copy["id"]) if x.startswith("c")]
            return bodies if len(bodies) >= 20 else None

        bodies = await eventually(all_there, "all comments after restart", timeout=120)
        assert bodies == [f"c{n:02}" for n in range(20)]

        async def drained() -> bool:
            view = (
                await http.get(f"{a.base_url}/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)
            ).json()
            return bool(view["delivery"]["backlog"] == 0 and view["delivery"]["last_success_at"])

        await eventually(drained, "backlog drained")


async def test_sender_killed_mid_delivery_resumes_after_restart(tmp_path: Path) -> None:
    """EX-10 and the durable outbox: A's hub is killed (SIGKILL) while it delivers a comment to a
    partner that does not answer. Its claims lapse within one short lease instead of minutes, so
    the restarted hub goes on at once, and every comment arrives exactly once, in order."""
    async with hubs(tmp_path, "Alpha", "Beta") as (a, b), httpx.AsyncClient(timeout=30) as http:
        alpha, beta = a.tenants[0], b.tenants[0]
        a_conn, _ = await _pair(http, a, b)
        original = await desk.new_ticket(http, alpha, a.base_url, title="Gate motor")
        await desk.transfer(http, alpha, original["id"], a_conn, base=a.base_url)
        copy = await _partner_ticket(http, b, beta, "Gate motor")
        assert b.process is not None and a.process is not None
        b.process.send_signal(signal.SIGSTOP)  # B accepts connections but answers nothing
        try:
            for n in range(5):
                await desk.comment(
                    http, alpha, original["id"], f"k{n}", public=False, pass_to_partner=True, base=a.base_url
                )

            async def claimed() -> list[datetime] | None:
                rows = await _outbox_claims(a)
                return rows or None

            await eventually(claimed, "A delivering to the frozen partner")
            a.process.send_signal(signal.SIGKILL)
            a.process.wait(timeout=10)
            a.process = None
            lease = 15.0  # the outbox's default lease
            assert all(
                until <= datetime.now(UTC) + timedelta(seconds=lease) for until in await _outbox_claims(a)
            )
        finally:
            b.process.send_signal(signal.SIGCONT)
        a.start()
        await a.wait_ready()

        async def all_there() -> list[str] | None:
            bodies = [x for x in await _bodies(http, b, beta, copy["id"]) if x.startswith("k")]
            return bodies if len(bodies) >= 5 else None

        bodies = await eventually(all_there, "every comment after the restart", timeout=4 * lease)
        assert bodies == [f"k{n}" for n in range(5)]


async def _outbox_claims(hub: HubProcess) -> list[datetime]:
    """``locked_until`` of the hub's exchange messages being delivered, read from its database."""
    db = Database(hub.database_url)
    try:
        async with db.sessionmaker() as session:
            rows = await session.scalars(
                select(OutboxMessage.locked_until).where(
                    OutboxMessage.status == "delivering", OutboxMessage.topic == "exchange.message"
                )
            )
            return [row for row in rows if row is not None]
    finally:
        await db.dispose()


async def test_chain_of_three_hubs_no_echo(tmp_path: Path) -> None:
    """EX-10 no echo, A -> B -> C on three hubs: C's public comment stops at B (private there); A's
    comment reaches B and goes no further; nothing comes back to its sender."""
    async with hubs(tmp_path, "Alpha", "Beta", "Gamma") as (a, b, c), httpx.AsyncClient(timeout=30) as http:
        alpha, beta, gamma = a.tenants[0], b.tenants[0], c.tenants[0]
        ab, _ = await _pair(http, a, b)
        bc, _ = await _pair(http, b, c)
        original = await desk.new_ticket(http, alpha, a.base_url, title="Chain")
        await desk.transfer(http, alpha, original["id"], ab, base=a.base_url)
        at_b = await _partner_ticket(http, b, beta, "Chain")
        await desk.transfer(http, beta, at_b["id"], bc, base=b.base_url)
        at_c = await _partner_ticket(http, c, gamma, "Chain")
        await desk.comment(http, gamma, at_c["id"], "from C", public=True, base=c.base_url)
        await desk.comment(
            http, alpha, original["id"], "from A", public=True, pass_to_partner=True, base=a.base_url
        )

        async def both_at_b() -> bool:
            bodies = await _bodies(http, b, beta, at_b["id"])
            return "from C" in bodies and "from A" in bodies

        await eventually(both_at_b, "A's and C's comments at B")
        await desk.comment(
            http, beta, at_b["id"], "marker", public=True, pass_to_partner=True, base=b.base_url
        )

        async def markers() -> bool:
            return "marker" in await _bodies(http, a, alpha, original["id"]) and "marker" in await _bodies(
                http, c, gamma, at_c["id"]
            )

        # B's marker is sent after the others: once it is at A and C, anything echoed would be too.
        await eventually(markers, "B's marker at A and C")
        in_a = await _bodies(http, a, alpha, original["id"])
        in_b = await _bodies(http, b, beta, at_b["id"])
        in_c = await _bodies(http, c, gamma, at_c["id"])
        assert in_a.count("from A") == 1 and "from C" not in in_a
        assert in_b.count("from A") == 1 and in_b.count("from C") == 1
        assert in_c.count("from C") == 1 and "from A" not in in_c
