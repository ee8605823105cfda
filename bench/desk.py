"""Desk benchmark (issue 2): list and search queries on a large PostgreSQL desk, and ticket
creation over HTTP.

Fills a private PostgreSQL database (``bench_desk``) with 1,000,000 tickets over 10,000 objects
and 200,000 contacts (times ``--scale``) using INSERT ... SELECT generate_series, then prints
p50 / p99 for

* baseline: a bare ``SELECT 1`` round trip through the same session machinery;
* the last 20 tickets of an object (the client app's list query, ``hub.monitoring.service``);
* a ticket list page with two filters (status + responsible, ``list_tickets``);
* search by ticket number and by client phone suffix (``list_tickets(q=...)`` via phone_index),
  and a text search by address/title substring (pg_trgm);

and ticket creation over HTTP against one ``hub serve`` subprocess, next to a bare Litestar
endpoint (its own subprocess) hit by the same client in the same run. Peak RSS of the hub process.

    .venv/bin/python -m bench.desk               # full size
    .venv/bin/python -m bench.desk --scale 0.05  # quick check: 50,000 tickets
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text

from hub.db import Database
from hub.desk import service
from hub.desk.models import Ticket
from hub.devkit import HubProcess, free_port, fresh_database, make_settings, make_tenant, private_pg_url
from hub.monitoring.service import LIST_SIZE, _object_tickets

DB_NAME = "bench_desk"
# Every figure printed, for the one JSON line at the end.
FIGURES: dict[str, Any] = {"bench": "desk"}


def record(name: str, values: list[float]) -> None:
    FIGURES[f"{name}_p50_ms"] = round(pct(values, 0.5), 2)
    FIGURES[f"{name}_p99_ms"] = round(pct(values, 0.99), 2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):7.2f} ms   p99 {pct(values, 0.99):7.2f} ms   "
        f"mean {statistics.fmean(values):7.2f} ms   n={len(values)}"
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def load(
    url: str, account_id: int, staff: list[int], tickets: int, objects: int, contacts: int
) -> None:
    """Bulk fill with INSERT ... SELECT generate_series (server side, no row round trips)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        t0 = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO service_objects (id, account_id, number, name, address, created_at)
            SELECT i, $1, 'OB-' || i, 'Object ' || i, i || ' Lenina Street, flat ' || (i % 300), now()
            FROM generate_series(1, $2) AS i
            """,
            account_id,
            objects,
        )
        await conn.execute(
            """
            INSERT INTO contacts (id, account_id, name, phone, created_at)
            SELECT i, $1, 'Client ' || i, '+79' || lpad(i::text, 9, '0'), now()
            FROM generate_series(1, $2) AS i
            """,
            account_id,
            contacts,
        )
        await conn.execute(
            """
            INSERT INTO phone_index (account_id, reversed_digits, e164, owner_kind, owner_id, field)
            SELECT $1, reverse('79' || lpad(i::text, 9, '0')), '+79' || lpad(i::text, 9, '0'), 'contact', i, 'phone'
            FROM generate_series(1, $2) AS i
            """,
            account_id,
            contacts,
        )
        statuses = ["open", "in_progress", "pending", "resolved", "closed", "cancelled", "reopened"]
        sources = ["incoming_call", "client_app", "monitoring", "email", "visit", "web", "partner"]
        chunk = 200_000
        for start in range(1, tickets + 1, chunk):
            end = min(tickets, start + chunk - 1)
            await conn.execute(
                """
                INSERT INTO tickets (
                    id, account_id, number, title, description, type, priority, status, source,
                    contact_id, object_id, responsible_id, created_by_kind, needs_reply, important,
                    sla_reaction_breached, sla_resolution_breached, ext_flags, pending_seconds,
                    search_text, created_at, updated_at)
                SELECT i, $1, i, 'Ticket ' || i || ': sensor fault', 'Generated', 'service',
                       (ARRAY['low','normal','high','critical'])[1 + i % 4],
                       ($4::text[])[1 + i % 7], ($5::text[])[1 + (i / 7) % 7],
                       1 + (i::bigint * 7919) % $2, 1 + i % $3, ($6::bigint[])[1 + i % cardinality($6::bigint[])],
                       'employee', i % 13 = 0, i % 29 = 0, i % 17 = 0, false, '{}'::json, 0,
                       lower(i || ' ticket ' || i || ': sensor fault client ' || (1 + (i::bigint * 7919) % $2)
                             || ' ob-' || (1 + i % $3) || ' ' || (1 + i % $3) || ' lenina street'),
                       now() - make_interval(secs => ($7 - i)), now() - make_interval(secs => ($7 - i))
                FROM generate_series($8::int, $9::int) AS i
                """,
                account_id,
                contacts,
                objects,
                statuses,
                sources,
                staff,
                tickets,
                start,
                end,
            )
            print(f"  tickets {end:,}/{tickets:,}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        await conn.execute(
            "UPDATE accounts SET next_ticket_number = $2 WHERE id = $1", account_id, tickets + 1
        )
        for table in ("tickets", "service_objects", "contacts", "phone_index"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        await conn.execute("VACUUM ANALYZE tickets")
        await conn.execute("ANALYZE service_objects; ANALYZE contacts; ANALYZE phone_index")
        print(f"  loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        await conn.close()


async def timed(db: Database, samples: int, fn: Callable[[Any, int], Awaitable[Any]]) -> list[float]:
    """Each sample in its own session/transaction, like a request."""
    values: list[float] = []
    for i in range(samples + 20):
        async with db.sessionmaker() as session:
            t = time.perf_counter()
            await fn(session, i)
            elapsed = (time.perf_counter() - t) * 1000
        if i >= 20:  # warm-up
            values.append(elapsed)
    return values


async def queries(
    db: Database, account_id: int, staff: list[int], tickets: int, objects: int, contacts: int, samples: int
) -> None:
    rnd = random.Random(7)

    async def select_one(session: Any, _: int) -> None:
        await session.execute(text("SELECT 1"))

    async def last_20(session: Any, _: int) -> None:
        # The same statement list_app_tickets (MON-2) runs, without the app user's membership check.
        query = _object_tickets(account_id, rnd.randint(1, objects))
        rows = (
            await session.execute(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(LIST_SIZE))
        ).all()
        assert rows

    async def two_filters(session: Any, _: int) -> None:
        filters = service.TicketFilters(status=["open", "reopened"], responsible_id=rnd.choice(staff))
        await service.list_tickets(session, account_id, filters, limit=50)

    async def by_number(session: Any, _: int) -> None:
        n = rnd.randint(1, tickets)
        rows, _cursor = await service.list_tickets(session, account_id, service.TicketFilters(q=str(n)))
        # Five or more digits also search phone suffixes, so newer tickets of such clients may come first.
        assert any(row.number == n for row in rows)

    async def by_phone(session: Any, _: int) -> None:
        c = rnd.randint(1, contacts)
        phone = f"{c:09d}"[-7:]
        await service.list_tickets(
            session, account_id, service.TicketFilters(q=f"{phone[:3]}-{phone[3:5]}-{phone[5:]}")
        )

    async def by_text(session: Any, _: int) -> None:
        await service.list_tickets(
            session, account_id, service.TicketFilters(q=f"ob-{rnd.randint(1, objects)} ")
        )

    for label, fn in (
        ("baseline SELECT 1", select_one),
        ("last 20 of an object", last_20),
        ("list page, 2 filters", two_filters),
        ("search by number", by_number),
        ("search by phone suffix", by_phone),
        ("search by text (trgm)", by_text),
    ):
        values = await timed(db, samples, fn)
        record(label.replace(" ", "_").replace(",", "").replace("(", "").replace(")", ""), values)
        print(f"  {label:26} {fmt(values)}", flush=True)


BARE_APP = """
import sys
import uvicorn
from litestar import Litestar, post

@post("/bare")
async def bare(data: dict) -> dict:
    return {"id": 1, **data}

uvicorn.run(Litestar([bare]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("bare app exited")
            try:
                await http.post(url, json={})
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def hammer(
    url: str, headers: dict[str, str], body: Callable[[int], dict[str, Any]], count: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def worker() -> None:
            for i in counter:
                t = time.perf_counter()
                response = await http.post(url, json=body(i), headers=headers)
                latencies.append((time.perf_counter() - t) * 1000)
                assert response.status_code in (200, 201), response.text

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return count / elapsed, latencies


async def http_creation(
    url: str, tenant: Any, objects: int, contacts: int, count: int, concurrency: int
) -> None:
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(url, Path(tmp), HUB_CHANNELS_BACKEND="memory", HUB_LOG_LEVEL="WARNING")
        try:
            await asyncio.gather(hub.wait_ready(), wait_up(f"http://127.0.0.1:{port}/bare", bare))
            rnd = random.Random(3)

            def ticket(i: int) -> dict[str, Any]:
                return {
                    "title": f"Bench ticket {i}",
                    "description": "Created over HTTP",
                    "source": "incoming_call",
                    "object_id": rnd.randint(1, objects),
                    "contact_id": rnd.randint(1, contacts),
                    "responsible_id": tenant.engineer.id,
                }

            # Warm-up both.
            await hammer(f"http://127.0.0.1:{port}/bare", {}, ticket, 200, concurrency)
            await hammer(f"{hub.base_url}/api/tickets", tenant.dispatcher.headers, ticket, 200, concurrency)
            rate, lat = await hammer(f"http://127.0.0.1:{port}/bare", {}, ticket, count, concurrency)
            print(f"  bare Litestar POST        {rate:8.0f} req/s      {fmt(lat)}", flush=True)
            FIGURES["bare_per_s"] = round(rate, 1)
            record("bare_post", lat)
            rate, lat = await hammer(
                f"{hub.base_url}/api/tickets", tenant.dispatcher.headers, ticket, count, concurrency
            )
            print(f"  hub POST /api/tickets     {rate:8.0f} tickets/s  {fmt(lat)}", flush=True)
            FIGURES["create_per_s"] = round(rate, 1)
            record("create", lat)
            FIGURES["hub_rss_mb"] = round(peak_rss_mb(hub.process.pid), 1)
            print(f"  hub process peak RSS      {FIGURES['hub_rss_mb']:8.1f} MB", flush=True)
        finally:
            hub.stop()
            bare.terminate()
            bare.wait(timeout=10)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of 1M tickets / 10k objects / 200k contacts"
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3000, help="tickets created over HTTP")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    tickets = max(1000, int(1_000_000 * args.scale))
    objects = max(100, int(10_000 * args.scale))
    contacts = max(1000, int(200_000 * args.scale))
    url = os.environ.get("BENCH_DATABASE_URL") or private_pg_url(DB_NAME)
    print(f"desk bench: {tickets:,} tickets, {objects:,} objects, {contacts:,} contacts on {url}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(url, Path(tmp))
        db = Database(url)
        try:
            await fresh_database(url)
            tenant = await make_tenant(db, settings, "Bench Security")
            staff = [tenant.admin.id, tenant.dispatcher.id, tenant.engineer.id]
            await load(url, tenant.id, staff, tickets, objects, contacts)
            print("queries (hub service functions, one session each):", flush=True)
            await queries(db, tenant.id, staff, tickets, objects, contacts, args.samples)
        finally:
            await db.dispose()
        print(f"creation over HTTP ({args.requests} requests, {args.concurrency} concurrent):", flush=True)
        await http_creation(url, tenant, objects, contacts, args.requests, args.concurrency)
    print(json.dumps(FIGURES), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
