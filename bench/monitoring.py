"""Monitoring / client-app benchmark (issues 6 and 11).

1. MON-1 under load (issue 11), always on PostgreSQL (``hub_bench_monitoring_centre``), one
   ``hub serve`` process: monitoring-centre tickets (``POST /api/monitoring/tickets``, each with an
   Idempotency-Key of its own, spread over 200 objects) posted by ``--concurrency`` connections of
   the raw keep-alive generator for ``--duration`` s: tickets created per second, then redeliveries
   (answered duplicate), and each created once, checked in the database; next to the generator's
   ceiling (a raw asyncio server), the bare Litestar endpoint (its own uvicorn process), the store
   floor (one ``INSERT ... ON CONFLICT DO NOTHING`` of the request, plain asyncpg) and the lean
   floor (the same + the object by number + the ticket with its race-free number + history row +
   live event, one transaction), with the ratios.
2. The app's "last 20 tickets of my object" (``GET /api/app/objects/{id}/tickets``'s service
   function, a fresh session per call like a request) over 1,000,000 tickets (times ``--scale``)
   spread over objects of 50 tickets each; next to the bare indexed query for the same 20 rows.
3. Notification fan-out: events through ``notify()`` into the outbox (each to an object's three
   admins with one device each) and delivered by one worker to a faked FCM endpoint (respx);
   next to the same number of outbox messages through a no-op handler (the outbox's own cost).

Prints p50 / p99, throughput, peak RSS, the load average, the aim as met / NOT met, and one JSON
line with every figure.

    .venv/bin/python -m bench.monitoring                               # 2. and 3. on SQLite, 1,000,000 tickets
    .venv/bin/python -m bench.monitoring --scale 0.01 --duration 3     # quick check
    .venv/bin/python -m bench.monitoring --pg                          # 2. and 3. on PostgreSQL too

Aim (issue 11): >= 500 monitoring-centre tickets/s sustained, each created once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import respx
import uvloop
from sqlalchemy import insert, select, text

from bench._floors import (
    HttpPool,
    ceiling_and_bare,
    closed_loop,
    encode_headers,
    fmt_ms,
    load_average,
    pct,
    print_aims,
    print_ceiling_and_bare,
    profiled,
    r,
    ratio,
    scratch_tables,
    self_peak_rss_mb,
    store_and_lean,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)
from bench._tickets import TICKET_TABLES, distinct_numbers, store_ticket
from hub.accounts.schemas import ApiKeyCreate
from hub.accounts.service import create_api_key
from hub.auth.principal import Principal
from hub.db import Database
from hub.devkit import (
    HubProcess,
    asyncpg_dsn,
    fresh_database,
    make_settings,
    make_tenant,
    private_pg_url,
    service_account,
)
from hub.jobs import JobContext
from hub.monitoring.service import list_app_tickets
from hub.notifications import notify
from hub.notifications.models import DeviceToken, NotificationChannel
from hub.outbox import MessageView, enqueue, outbox_handler, register_handler
from hub.outbox.worker import drain_outbox
from hub.people.models import Contact, ObjectUser, ServiceObject
from hub.wiring import wire

REDELIVER = 100
PER_OBJECT = 50
FCM = "https://fcm.bench"
TOKEN_URI = "https://oauth2.test/token"  # the service account's token_uri in tests.notifications.helpers


# Every figure printed, for the one JSON line at the end.
FIGURES: dict[str, Any] = {"bench": "monitoring"}


def record(name: str, values: list[float]) -> None:
    FIGURES[f"{name}_p50_ms"] = round(pct(values, 0.5), 2)
    FIGURES[f"{name}_p99_ms"] = round(pct(values, 0.99), 2)


@outbox_handler("bench.noop")
async def _noop(_ctx: Any, _message: MessageView) -> None:
    return None


async def _load(db: Database, account_id: int, engineer_id: int, total: int) -> tuple[int, list[int]]:
    """Objects of 50 tickets each, one app user (a contact) admin of all of them."""
    objects = max(1, total // PER_OBJECT)
    async with db.sessionmaker() as session, session.begin():
        contact = Contact(account_id=account_id, name="Bench client")
        session.add(contact)
        await session.flush()
        contact_id = contact.id
        await session.execute(
            insert(ServiceObject),
            [
                {"account_id": account_id, "number": f"B{n:07d}", "name": f"Object {n}"}
                for n in range(objects)
            ],
        )
        object_ids = list(
            await session.scalars(select(ServiceObject.id).where(ServiceObject.account_id == account_id))
        )
        await session.execute(
            insert(ObjectUser),
            [
                {"account_id": account_id, "object_id": o, "contact_id": contact_id, "role": "admin"}
                for o in object_ids
            ],
        )
    # Generated inside the database (a recursive CTE on SQLite, generate_series on PostgreSQL):
    # a million rows load in seconds instead of minutes of Python round trips.
    first_object = min(object_ids)
    pg = not db.is_sqlite
    series = "generate_series(0, CAST(:n AS INTEGER) - 1) AS s(i)" if pg else "seq"
    created = (
        "TIMESTAMPTZ '2025-01-01 00:00:00+00' + i * INTERVAL '1 second'"
        if pg
        else ("strftime('%Y-%m-%d %H:%M:%f000', '2025-01-01', '+' || i || ' seconds')")
    )
    select_rows = f"""
        SELECT CAST(:a AS BIGINT), i + 1, 'Ticket ' || (i + 1), 'Something is broken', 'service', 'normal',
               CASE i % 4 WHEN 0 THEN 'open' WHEN 1 THEN 'in_progress' WHEN 2 THEN 'resolved' ELSE 'closed' END,
               CASE i % 3 WHEN 0 THEN 'client_app' WHEN 1 THEN 'monitoring' ELSE 'incoming_call' END,
               CAST(:o AS BIGINT) + (i % CAST(:objects AS INTEGER)), CASE WHEN i % 2 = 1 THEN CAST(:e AS BIGINT) END, 'employee',
               {"false, false, false, false" if pg else "0, 0, 0, 0"}, '{{}}', 0, '', {created}, {created}
        FROM {series}"""
    columns = (
        "account_id, number, title, description, type, priority, status, source, object_id, responsible_id, "
        "created_by_kind, needs_reply, important, sla_reaction_breached, sla_resolution_breached, ext_flags, "
        "pending_seconds, search_text, created_at, updated_at"
    )
    cte = (
        "" if pg else "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1) "
    )
    statement = text(f"INSERT INTO tickets ({columns}) {cte}{select_rows}")
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            statement,
            {"a": account_id, "n": total, "o": first_object, "objects": len(object_ids), "e": engineer_id},
        )
    async with db.sessionmaker() as session, session.begin():
        await session.execute(text("ANALYZE"))
    return contact_id, object_ids


async def bench_list(db: Database, principal: Principal, object_ids: list[int], samples: int) -> None:
    bare = text(
        "SELECT id, number, status, responsible_id, repair_date, rating_score FROM tickets "
        "WHERE account_id = :a AND object_id = :o AND type != 'internal' ORDER BY created_at DESC, id DESC LIMIT 20"
    )
    picks = [random.choice(object_ids) for _ in range(samples)]
    for object_id in picks[:50]:  # warm-up
        async with db.sessionmaker() as session:
            await list_app_tickets(session, principal, object_id)
    baseline, hub_times = [], []
    for object_id in picks:
        t0 = time.perf_counter()
        async with db.sessionmaker() as session:
            rows = (await session.execute(bare, {"a": principal.account_id, "o": object_id})).all()
        baseline.append((time.perf_counter() - t0) * 1000)
        assert len(rows) == 20
        t0 = time.perf_counter()
        async with db.sessionmaker() as session:
            listing = await list_app_tickets(session, principal, object_id)
        hub_times.append((time.perf_counter() - t0) * 1000)
        assert len(listing.tickets) == 20
    print(f"  baseline: bare indexed query      {fmt_ms(baseline)}")
    print(f"  hub: list_app_tickets (+header,   {fmt_ms(hub_times)}")
    record("baseline_list", baseline)
    record("hub_list", hub_times)
    print("        membership, engineer names)")


async def bench_fanout(db: Database, jobs: JobContext, account_id: int, events: int) -> None:
    admins = []
    async with db.sessionmaker() as session, session.begin():
        session.add(
            NotificationChannel(
                account_id=account_id,
                channel="push",
                enabled=True,
                config={"service_account": service_account(), "base_url": FCM, "link_scheme": "hubapp"},
            )
        )
        for n in range(3):
            contact = Contact(account_id=account_id, name=f"Admin {n}")
            session.add(contact)
            await session.flush()
            session.add(
                DeviceToken(
                    account_id=account_id,
                    contact_id=contact.id,
                    token=f"bench-device-{n}",
                    platform="android",
                )
            )
            admins.append(("contact", contact.id))
    messages = events * len(admins)

    # Baseline: the same number of outbox messages, enqueued and delivered by a no-op handler.
    t0 = time.perf_counter()
    async with db.sessionmaker() as session, session.begin():
        for n in range(messages):
            await enqueue(
                session,
                account_id=account_id,
                topic="bench.noop",
                payload={"n": n},
                idempotency_key=f"noop-{n}",
            )
    enqueue_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await drain_outbox(jobs, max_rounds=10**6)
    noop_s = time.perf_counter() - t0
    print(
        f"  baseline: outbox enqueue {messages / enqueue_s:8.0f} msg/s; no-op delivery {messages / noop_s:8.0f} msg/s"
    )

    ticket = type("T", (), {"id": 1, "number": 1, "status": "resolved", "object_id": 1})()
    t0 = time.perf_counter()
    async with db.sessionmaker() as session, session.begin():
        for _ in range(events):
            await notify(
                session,
                account_id=account_id,
                event="rating_request",
                ticket=ticket,
                recipients=admins,
                data={"link": "hubapp://x"},
            )
    notify_s = time.perf_counter() - t0
    with respx.mock(assert_all_called=False) as far:
        far.post(TOKEN_URI).mock(
            return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        )
        send = far.post(f"{FCM}/v1/projects/hub-test/messages:send").mock(
            return_value=httpx.Response(200, json={"name": "projects/hub-test/messages/1"})
        )
        t0 = time.perf_counter()
        await drain_outbox(jobs, max_rounds=10**6)
        push_s = time.perf_counter() - t0
    assert send.call_count == messages, (send.call_count, messages)
    print(f"  hub: notify() {events / notify_s:8.0f} events/s ({messages / notify_s:.0f} msg/s queued)")
    print(f"  hub: FCM push delivery (faked far side) {messages / push_s:8.0f} notifications/s, one worker")
    FIGURES["notify_events_per_s"] = round(events / notify_s, 1)
    FIGURES["push_per_s"] = round(messages / push_s, 1)


# --- monitoring-centre tickets over HTTP (issue 11) ----------------------------------------------

STORE_SQL = """
INSERT INTO bench_floor_events (source, account_id, endpoint_id, dedupe_key, replay_key, order_key, headers,
    body, remote_addr, received_at, state, attempts, next_attempt_at)
VALUES ('monitoring', $1, $2, $3, $4, $5, $6, $7, '127.0.0.1', now(), $8, 0, now())
ON CONFLICT DO NOTHING
RETURNING id
"""
OBJECT_SQL = "SELECT id FROM service_objects WHERE account_id = $1 AND number = $2"


def centre_body(i: int, objects: int) -> bytes:
    return json.dumps(
        {
            "object_number": f"MC-{i % objects}",
            "operator_name": "Operator 7",
            "description": f"Zone {i % 16} alarm, sensor offline (event {i})",
            "external_ref": f"card-{i}",
        }
    ).encode()


async def centre_seed(url: str, objects: int) -> tuple[int, int, str]:
    """A fresh database: an account, ``objects`` guarded objects MC-0 .. and a monitoring key."""
    await fresh_database(url)
    db = Database(url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tenant = await make_tenant(db, make_settings(url, Path(tmp)), "Bench Monitoring")
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                insert(ServiceObject),
                [{"account_id": tenant.id, "number": f"MC-{n}", "name": f"Site {n}"} for n in range(objects)],
            )
            key, api_key = await create_api_key(
                session, tenant.id, ApiKeyCreate(name="Monitoring centre", kind="monitoring")
            )
            key_id = api_key.id
    finally:
        await db.dispose()
    return tenant.id, key_id, key


async def centre_floors(
    dsn: str, account_id: int, key_id: int, objects: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Plain asyncpg, ``--concurrency`` tasks on a pool of 20, scratch tables: the store floor (one
    ``INSERT ... ON CONFLICT DO NOTHING`` of the request keyed by its Idempotency-Key) and the lean
    floor (the same + the object by its number + the ticket with its race-free number + history row
    + live event, one transaction)."""
    tables = {"bench_floor_events": "intake_events", **TICKET_TABLES}
    actor = ("monitoring", key_id, "Operator 7")
    async with scratch_tables(dsn, tables, copy_rows=("bench_floor_accounts",)):
        pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        assert pool is not None
        try:

            async def store(i: int, lean: bool) -> bool:
                body = centre_body(i, objects)
                request = json.loads(body)
                async with pool.acquire() as conn, conn.transaction():
                    stored = await conn.fetchval(
                        STORE_SQL, account_id, key_id, f"{account_id}:floor-{lean}-{i}",
                        hashlib.sha256(body).hexdigest(), f"{account_id}:{request['object_number']}",
                        json.dumps({"idempotency-key": f"floor-{i}"}), body.decode(),
                        "done" if lean else "pending",
                    )  # fmt: skip
                    if lean and stored is not None:
                        object_id = await conn.fetchval(OBJECT_SQL, account_id, request["object_number"])
                        ticket = {
                            "title": request["description"][:80],
                            "description": request["description"],
                            "source": "monitoring",
                            "object_id": object_id,
                            "operator_name": request["operator_name"],
                        }
                        await store_ticket(conn, account_id, actor, ticket, lean=True)
                return stored is not None

            figures = await store_and_lean(store, concurrency=args.concurrency, duration=args.duration)
        finally:
            await pool.close()
    return figures


async def centre_hub(url: str, key: str, objects: int, args: argparse.Namespace) -> dict[str, Any]:
    """One ``hub serve`` process: ``--concurrency`` monitoring connections posting requests, each
    with an Idempotency-Key of its own, as fast as answered for ``--duration`` s; then the first
    ``REDELIVER`` again (answered 200 duplicate, no second ticket). What the database says after."""
    headers = encode_headers({"content-type": "application/json", "X-Api-Key": key})
    created: list[int] = []
    duplicates = 0
    redelivery_answers: Counter[int] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(url, Path(tmp), HUB_LOG_LEVEL="WARNING")
        http = HttpPool(hub.base_url)

        async def post(i: int) -> int:
            key_line = b"Idempotency-Key: mc-%d\r\n" % i
            return await http.post("/api/monitoring/tickets", centre_body(i, objects), headers + key_line)

        async def create(i: int) -> bool:
            if await post(i) == 201:
                created.append(i)
                return True
            return False

        async def again(i: int) -> bool:
            nonlocal duplicates
            status = await post(created[i])
            redelivery_answers[status] += 1
            duplicates += status == 200
            return True

        try:
            await hub.wait_ready()
            cpu0 = tree_cpu_seconds(hub.process.pid)
            with profiled(hub.process.pid, args.duration + 5, args.profile) as profile:
                run = await closed_loop(create, 10**9, args.duration, args.concurrency)
            cpu = tree_cpu_seconds(hub.process.pid) - cpu0
            redelivered = min(REDELIVER, len(created))
            await closed_loop(again, redelivered, 30.0, 8)
            rss = tree_peak_rss_mb(hub.process.pid)
        finally:
            http.close()
            hub.stop()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tickets, distinct_refs = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT description) FROM tickets WHERE source = 'monitoring'"
        )
        numbers_distinct = await distinct_numbers(
            conn, "tickets", await conn.fetchval("SELECT min(account_id) FROM tickets")
        )
    finally:
        await conn.close()
    return {
        "per_s": run.ok / run.elapsed,
        "created": len(created),
        "failed": run.failed,
        "redelivered": redelivered,
        "duplicates": duplicates,
        "redelivery_answers": dict(redelivery_answers),
        "tickets_in_db": tickets,
        "each_once": tickets == distinct_refs == len(created)
        and duplicates == redelivered
        and numbers_distinct,
        "cpu_ms_per_ticket": 1000 * cpu / max(1, len(created)),
        "rss_mb": rss,
        "profile": profile,
    }


async def centre_tickets(args: argparse.Namespace) -> None:
    """MON-1 under load, PostgreSQL, one process: the generator's ceiling, the bare endpoint, the
    floors and the hub, side by side."""
    url = private_pg_url("hub_bench_monitoring_centre")
    objects = 200  # requests of one object are applied in order; the load spreads over many
    account_id, key_id, key = await centre_seed(url, objects)
    headers = encode_headers({"content-type": "application/json", "X-Api-Key": key})
    items = [(centre_body(i, objects), headers + b"Idempotency-Key: bare-%d\r\n" % i) for i in range(2000)]
    c = args.concurrency
    ceiling, bare = await ceiling_and_bare(items, concurrency=c, duration=args.duration, rate=None)
    print_ceiling_and_bare(ceiling, bare, c)
    floor = await centre_floors(asyncpg_dsn(url), account_id, key_id, objects, args)
    print(
        f"floor store-and-acknowledge (1 INSERT ON CONFLICT DO NOTHING; asyncpg, {c} tasks, pool 20): "
        f"{floor['store_per_s']:7.0f}/s (n={floor['store_n']})"
    )
    print(
        f"floor lean apply (the same + object by number + numbered ticket + history + live event, 1 transaction): "
        f"{floor['lean_per_s']:7.0f}/s (n={floor['lean_n']})"
    )
    hub = await centre_hub(url, key, objects, args)
    print(
        f"hub POST /api/monitoring/tickets: {hub['per_s']:7.0f} tickets/s created ({c} senders, {hub['created']} "
        f"created, {hub['failed']} failed; hub CPU {hub['cpu_ms_per_ticket']:.2f} ms/ticket); peak RSS {hub['rss_mb']:.0f} MB"
    )
    print(
        f"    each created once: {hub['each_once']} ({hub['tickets_in_db']} monitoring tickets in the database; "
        f"{hub['redelivered']} redelivered -> {hub['duplicates']} answered duplicate; answers {hub['redelivery_answers']})"
    )
    for line in hub["profile"]:
        print(f"    profile (sustained): {line}")
    print(
        f"ratios: to bare {ratio(hub['per_s'], bare['per_s']):.3f}, to store floor "
        f"{ratio(hub['per_s'], floor['store_per_s']):.2f}, to lean floor {ratio(hub['per_s'], floor['lean_per_s']):.2f}"
    )
    FIGURES.update(
        {
            "centre_duration_s": args.duration,
            "centre_concurrency": c,
            "generator_ceiling_per_s": r(ceiling["per_s"]),
            "bare_per_s": r(bare["per_s"]),
            "store_floor_per_s": r(floor["store_per_s"]),
            "lean_apply_floor_per_s": r(floor["lean_per_s"]),
            "centre_tickets_per_s": r(hub["per_s"]),
            "centre_created": hub["created"],
            "centre_failed": hub["failed"],
            "centre_tickets_in_db": hub["tickets_in_db"],
            "centre_each_once": hub["each_once"],
            "centre_duplicates": hub["duplicates"],
            "centre_cpu_ms_per_ticket": r(hub["cpu_ms_per_ticket"], 3),
            "ratio_to_bare": r(ratio(hub["per_s"], bare["per_s"]), 3),
            "ratio_to_store_floor": r(ratio(hub["per_s"], floor["store_per_s"]), 3),
            "ratio_to_lean_floor": r(ratio(hub["per_s"], floor["lean_per_s"]), 3),
            "rss": {"hub_mb": r(hub["rss_mb"]), "bare_mb": r(bare["rss_mb"])},
        }
    )
    FIGURES["aims"] = {
        "centre_at_least_500_each_once": hub["per_s"] >= 500 and hub["each_once"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1,000,000 tickets (default 1)")
    parser.add_argument("--samples", type=int, default=2000, help="list calls to time (default 2000)")
    parser.add_argument(
        "--events", type=int, default=2000, help="notification events for the fan-out (default 2000)"
    )
    parser.add_argument(
        "--pg", action="store_true", help="the list and fan-out on PostgreSQL instead of SQLite"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per HTTP / floor phase (default 10)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="senders / floor tasks (default 32)")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub while it creates tickets")
    args = parser.parse_args()
    load_start = load_average()
    print(f"load average at start: {' '.join(map(str, load_start))} ({os.cpu_count()} CPUs)")
    print(
        f"MON-1 monitoring-centre tickets over HTTP: PostgreSQL, 1 hub process, phases of {args.duration:g} s, "
        f"{args.concurrency} senders"
    )
    await centre_tickets(args)
    wire()  # the push delivery the fan-out drains
    register_handler(_noop)
    total = int(1_000_000 * args.scale)
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    if args.pg:
        url = private_pg_url("hub_bench_monitoring")
        await fresh_database(url)
    else:
        from hub.migrate import upgrade

        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
    settings = make_settings(url, tmp / "data")
    db = Database(url)
    tenant = await make_tenant(db, settings, "Bench Security")
    print(f"database: {'PostgreSQL' if args.pg else 'SQLite'}; loading {total:,} tickets ...")
    t0 = time.perf_counter()
    contact_id, object_ids = await _load(db, tenant.id, tenant.engineer.id, total)
    print(f"  loaded in {time.perf_counter() - t0:.1f} s ({len(object_ids):,} objects x {PER_OBJECT})")
    principal = Principal("app_user", tenant.id, 1, "Bench client", contact_id=contact_id)
    print("MON-2 list: last 20 tickets of an object")
    await bench_list(db, principal, object_ids, args.samples)
    print("DESK-10 fan-out: rating requests to 3 admins each, through the outbox to FCM")
    async with httpx.AsyncClient() as http:
        jobs = JobContext(db=db, settings=settings, http=http)
        await bench_fanout(db, jobs, tenant.id, args.events)
    await db.dispose()
    FIGURES["rss"]["bench_mb"] = r(self_peak_rss_mb())
    FIGURES["load_avg_start"], FIGURES["load_avg_end"] = load_start, load_average()
    print(
        f"peak RSS: hub {FIGURES['rss']['hub_mb']:.0f} MB, bare endpoint {FIGURES['rss']['bare_mb']:.0f} MB, bench {FIGURES['rss']['bench_mb']:.0f} MB"
    )
    print(f"load average at end: {' '.join(map(str, FIGURES['load_avg_end']))}")
    print_aims(
        {
            "centre_at_least_500_each_once": (
                ">= 500 monitoring-centre tickets/s sustained, each created once",
                FIGURES["aims"]["centre_at_least_500_each_once"],
            )
        }
    )
    print(json.dumps(FIGURES), flush=True)


if __name__ == "__main__":
    uvloop.run(main())
