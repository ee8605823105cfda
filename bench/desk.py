"""Desk benchmark (issues 2 and 11): list and search queries on a large PostgreSQL desk, and ticket
creation over HTTP next to its floors.

Fills a private PostgreSQL database (``bench_desk``) with 1,000,000 tickets over 10,000 objects
and 200,000 contacts (times ``--scale``) using INSERT ... SELECT generate_series, then prints
p50 / p99 for

* baseline: a bare ``SELECT 1`` round trip through the same session machinery;
* the last 20 tickets of an object (the client app's list query, ``hub.monitoring.service``);
* a ticket list page with two filters (status + responsible, ``list_tickets``);
* search by ticket number and by client phone suffix (``list_tickets(q=...)`` via phone_index),
  and a text search by address/title substring (pg_trgm);

then ticket creation over HTTP (``POST /api/tickets``), all with the raw keep-alive generator of
``bench._floors`` and in the same run:

* the generator's ceiling (a raw asyncio server) and the bare Litestar endpoint (its own uvicorn
  process) with the same bodies: requests/s with ``--concurrency`` senders, p50/p99 at ``--rate``/s;
* the store floor (plain asyncpg: the ticket number taken race-free by one ``UPDATE accounts ...
  RETURNING`` as the hub's numbering does + the ticket INSERT, one transaction) and the lean floor
  (the same + the 'created' history row + the live event, one transaction), scratch tables;
* the hub, one ``hub serve`` process, then ``hub serve --workers 2`` (PostgreSQL channels):
  created/s, p50/p99 at ``--rate``/s, tickets counted in the database, numbers distinct;
* ratios, peak RSS, load average, the aims as met / NOT met, and one JSON line with every figure.

    .venv/bin/python -m bench.desk                                # full size, 10 s phases
    .venv/bin/python -m bench.desk --scale 0.05 --duration 3      # quick check

Aims (issue 11): >= 600 tickets/s created with 1 process, >= 1,000/s with ``--workers 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from sqlalchemy import text

from bench._floors import (
    ceiling_and_bare,
    encode_headers,
    fmt_ms,
    http_phases,
    load_average,
    pct,
    print_aims,
    print_ceiling_and_bare,
    r,
    ratio,
    scratch_tables,
    self_peak_rss_mb,
    store_and_lean,
)
from bench._tickets import TICKET_TABLES, distinct_numbers, store_ticket
from hub.db import Database
from hub.desk import service
from hub.desk.models import Ticket
from hub.devkit import HubProcess, asyncpg_dsn, fresh_database, make_settings, make_tenant, private_pg_url
from hub.monitoring.service import LIST_SIZE, _object_tickets

DB_NAME = "bench_desk"
# Every figure printed, for the one JSON line at the end.
FIGURES: dict[str, Any] = {"bench": "desk"}


def record(name: str, values: list[float]) -> None:
    FIGURES[f"{name}_p50_ms"] = round(pct(values, 0.5), 2)
    FIGURES[f"{name}_p99_ms"] = round(pct(values, 0.99), 2)


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
        print(f"  {label:26} {fmt_ms(values)}", flush=True)


# --- ticket creation over HTTP (issue 11) ------------------------------------------------------


def ticket_bodies(tenant: Any, objects: int, contacts: int, count: int) -> list[dict[str, Any]]:
    rnd = random.Random(3)
    return [
        {
            "title": f"Bench ticket {i}",
            "description": "Created over HTTP",
            "source": "incoming_call",
            "object_id": rnd.randint(1, objects),
            "contact_id": rnd.randint(1, contacts),
            "responsible_id": tenant.engineer.id,
        }
        for i in range(count)
    ]


async def creation_floors(
    dsn: str, tenant: Any, tickets: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    """Plain asyncpg, ``--concurrency`` tasks on a pool of 20 (the hub's 10 + 10 overflow), scratch
    copies of the tables: the store floor (the number taken race-free by one UPDATE ... RETURNING
    on the account row, as ``hub.desk.numbering`` does, + the ticket INSERT, one transaction) and
    the lean floor (the same + the 'created' history row + the live event, one transaction)."""
    actor = ("employee", tenant.dispatcher.id, tenant.dispatcher.name)
    async with scratch_tables(dsn, TICKET_TABLES, copy_rows=("bench_floor_accounts",)):
        pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        assert pool is not None
        try:

            async def store(i: int, lean: bool) -> bool:
                async with pool.acquire() as conn, conn.transaction():
                    await store_ticket(conn, tenant.id, actor, tickets[i % len(tickets)], lean=lean)
                return True

            figures = await store_and_lean(store, concurrency=args.concurrency, duration=args.duration)
            async with pool.acquire() as conn:
                figures["numbers_distinct"] = await distinct_numbers(conn, "bench_floor_tickets", tenant.id)
        finally:
            await pool.close()
    return figures


async def hub_creation(
    url: str, tenant: Any, items: list[tuple[bytes, bytes]], args: argparse.Namespace, *serve_args: str
) -> dict[str, Any]:
    """One ``hub serve`` (with ``serve_args``): created/s with ``--concurrency`` senders, then
    p50/p99 at ``--rate``/s; the tickets counted in the database."""
    dsn = asyncpg_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM tickets WHERE account_id = $1", tenant.id)
        with tempfile.TemporaryDirectory() as tmp:
            hub = HubProcess(url, Path(tmp), *serve_args, HUB_LOG_LEVEL="WARNING")
            try:
                await hub.wait_ready()
                figures = await http_phases(
                    hub.base_url,
                    "/api/tickets",
                    items,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    pid=hub.process.pid,
                    rate=args.rate,
                    profile=args.profile and not serve_args,
                )
            finally:
                hub.stop()
        figures["in_db"] = (
            await conn.fetchval("SELECT count(*) FROM tickets WHERE account_id = $1", tenant.id) - before
        )
        figures["numbers_distinct"] = await distinct_numbers(conn, "tickets", tenant.id)
    finally:
        await conn.close()
    return figures


async def http_creation(url: str, tenant: Any, objects: int, contacts: int, args: argparse.Namespace) -> None:
    tickets = ticket_bodies(tenant, objects, contacts, 2000)
    headers = encode_headers({"content-type": "application/json", **tenant.dispatcher.headers})
    items = [(json.dumps(t).encode(), headers) for t in tickets]
    c = args.concurrency
    ceiling, bare = await ceiling_and_bare(items, concurrency=c, duration=args.duration, rate=args.rate)
    print_ceiling_and_bare(ceiling, bare, c)
    floor = await creation_floors(asyncpg_dsn(url), tenant, tickets, args)
    print(
        f"floor store (number by UPDATE ... RETURNING + INSERT ticket, 1 transaction; asyncpg, {c} tasks, "
        f"pool 20): {floor['store_per_s']:7.0f}/s (n={floor['store_n']})"
    )
    print(
        f"floor lean (the same + 'created' history row + live event, 1 transaction):          "
        f"{floor['lean_per_s']:7.0f}/s (n={floor['lean_n']}); numbers distinct: {floor['numbers_distinct']}"
    )
    one = await hub_creation(url, tenant, items, args)
    two = await hub_creation(url, tenant, items, args, "--workers", "2")
    for label, hub in (("1 process", one), ("--workers 2", two)):
        print(
            f"hub POST /api/tickets, {label:11}: {hub['per_s']:7.0f} created/s ({c} senders, failed "
            f"{hub['failed']}; hub CPU {hub['server_cpu_pct']:.0f}%, bench CPU {hub['bench_cpu_pct']:.0f}%); "
            f"peak RSS {hub['rss_mb']:.0f} MB"
        )
        print(
            f"    at {args.rate:g}/s: {fmt_ms(hub['latencies'])}; failed {hub['rate_failed']}; generator at most "
            f"{hub['late_ms']:.1f} ms behind; {hub['in_db']} tickets in the database for {hub['ok_total']} "
            f"answered 201, numbers distinct: {hub['numbers_distinct']}"
        )
    for line in one["profile"]:
        print(f"    profile (1 process, sustained): {line}")
    print(
        f"ratios (1 process): to bare {ratio(one['per_s'], bare['per_s']):.3f}, to store floor "
        f"{ratio(one['per_s'], floor['store_per_s']):.2f}, to lean floor {ratio(one['per_s'], floor['lean_per_s']):.2f}; "
        f"--workers 2 to 1 process {ratio(two['per_s'], one['per_s']):.2f}"
    )
    lat = one["latencies"]
    FIGURES.update(
        {
            "duration_s": args.duration,
            "concurrency": c,
            "rate_per_s": args.rate,
            "generator_ceiling_per_s": r(ceiling["per_s"]),
            "bare_per_s": r(bare["per_s"]),
            "bare_p50_ms": r(pct(bare["latencies"], 0.5)),
            "bare_p99_ms": r(pct(bare["latencies"], 0.99)),
            "store_floor_per_s": r(floor["store_per_s"]),
            "lean_floor_per_s": r(floor["lean_per_s"]),
            "create_per_s": r(one["per_s"]),
            "create_failed": one["failed"] + one["rate_failed"],
            "create_p50_ms": r(pct(lat, 0.5)),
            "create_p99_ms": r(pct(lat, 0.99)),
            "create_per_s_workers2": r(two["per_s"]),
            "create_failed_workers2": two["failed"] + two["rate_failed"],
            "create_p50_ms_workers2": r(pct(two["latencies"], 0.5)),
            "create_p99_ms_workers2": r(pct(two["latencies"], 0.99)),
            "created_in_db": one["in_db"],
            "created_in_db_workers2": two["in_db"],
            "numbers_distinct": one["numbers_distinct"] and two["numbers_distinct"],
            "each_created_once": one["in_db"] == one["ok_total"] and two["in_db"] == two["ok_total"],
            "ratio_to_bare": r(ratio(one["per_s"], bare["per_s"]), 3),
            "ratio_to_store_floor": r(ratio(one["per_s"], floor["store_per_s"]), 3),
            "ratio_to_lean_floor": r(ratio(one["per_s"], floor["lean_per_s"]), 3),
            "ratio_workers2_to_1": r(ratio(two["per_s"], one["per_s"])),
            "rss": {
                "hub_mb": r(one["rss_mb"]),
                "hub_workers2_mb": r(two["rss_mb"]),
                "bare_mb": r(bare["rss_mb"]),
            },
        }
    )
    FIGURES["aims"] = print_aims(
        {
            "create_at_least_600": (">= 600 created/s with 1 process", one["per_s"] >= 600),
            "create_workers2_at_least_1000": (">= 1,000 created/s with --workers 2", two["per_s"] >= 1000),
        }
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of 1M tickets / 10k objects / 200k contacts"
    )
    parser.add_argument("--samples", type=int, default=300, help="timed calls per query")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per HTTP / floor phase (default 10)"
    )
    parser.add_argument(
        "--rate", type=float, default=300.0, help="tickets/s of the latency phase (default 300)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="senders and floor tasks (default 32)")
    parser.add_argument("--profile", action="store_true", help="py-spy the 1-process hub while it creates")
    args = parser.parse_args()
    load_start = load_average()
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
    print(
        f"creation over HTTP: phases of {args.duration:g} s, {args.concurrency} senders, latency at {args.rate:g}/s"
    )
    print(f"load average at start: {' '.join(map(str, load_start))} ({os.cpu_count()} CPUs)", flush=True)
    await http_creation(url, tenant, objects, contacts, args)
    FIGURES["load_avg_start"], FIGURES["load_avg_end"] = load_start, load_average()
    FIGURES["rss"]["bench_mb"] = r(self_peak_rss_mb())
    print(
        f"load average at end: {' '.join(map(str, FIGURES['load_avg_end']))}; bench peak RSS {FIGURES['rss']['bench_mb']:.0f} MB"
    )
    print(json.dumps(FIGURES), flush=True)


if __name__ == "__main__":
    uvloop.run(main())
