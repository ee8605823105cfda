"""Monitoring / client-app benchmark (issue 6).

1. The app's "last 20 tickets of my object" (``GET /api/app/objects/{id}/tickets``'s service
   function, a fresh session per call like a request) over 1,000,000 tickets (times ``--scale``)
   spread over objects of 50 tickets each; next to the bare indexed query for the same 20 rows.
2. Notification fan-out: events through ``notify()`` into the outbox (each to an object's three
   admins with one device each) and delivered by one worker to a faked FCM endpoint (respx);
   next to the same number of outbox messages through a no-op handler (the outbox's own cost).

Prints p50 / p99, throughput and peak RSS.

    .venv/bin/python -m bench.monitoring                  # SQLite, 1,000,000 tickets
    .venv/bin/python -m bench.monitoring --scale 0.01     # quick check
    .venv/bin/python -m bench.monitoring --pg             # a private PostgreSQL database
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import respx
from sqlalchemy import insert, select, text

from hub.auth.principal import Principal
from hub.db import Database
from hub.devkit import make_settings, make_tenant, service_account
from hub.jobs import JobContext
from hub.monitoring.service import list_app_tickets
from hub.notifications import notify
from hub.notifications.models import DeviceToken, NotificationChannel
from hub.outbox import MessageView, enqueue, outbox_handler, register_handler
from hub.outbox.worker import drain_outbox
from hub.people.models import Contact, ObjectUser, ServiceObject
from hub.wiring import wire

PER_OBJECT = 50
FCM = "https://fcm.bench"
TOKEN_URI = "https://oauth2.test/token"  # the service account's token_uri in tests.notifications.helpers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# Every figure printed, for the one JSON line at the end.
FIGURES: dict[str, Any] = {"bench": "monitoring"}


def record(name: str, values: list[float]) -> None:
    FIGURES[f"{name}_p50_ms"] = round(pct(values, 0.5), 2)
    FIGURES[f"{name}_p99_ms"] = round(pct(values, 0.99), 2)


def fmt(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5):6.2f} ms   p99 {pct(values, 0.99):6.2f} ms   mean {statistics.fmean(values):6.2f} ms   n={len(values)}"


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
    print(f"  baseline: bare indexed query      {fmt(baseline)}")
    print(f"  hub: list_app_tickets (+header,   {fmt(hub_times)}")
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
        "--pg", action="store_true", help="use a private PostgreSQL database instead of SQLite"
    )
    args = parser.parse_args()
    wire()  # the push delivery the fan-out drains
    register_handler(_noop)
    total = int(1_000_000 * args.scale)
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    if args.pg:
        from tests.telephony.hubproc import fresh_database, private_pg_url

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
    FIGURES["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"peak RSS {FIGURES['peak_rss_mb']:.0f} MB")
    print(json.dumps(FIGURES), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
