"""Payments benchmark (issue 11): Stripe-signed callbacks for distinct invoices into one hub
process on PostgreSQL (intake worker in-process), next to its floors, all in one run.

Since the intake pipeline, "acknowledged" and "applied" are two figures: the request verifies the
signature, stores the raw callback in one ``INSERT ... ON CONFLICT DO NOTHING`` and answers
"received"; the intake worker applies it in batches moments later. The run prints

* the generator's own ceiling (a raw asyncio HTTP server: no framework) and what it reaches
  against the bare endpoint, so the generator is shown not to be the limit;
* the bare endpoint: a Litestar POST that reads the same bodies and answers, in its own uvicorn
  process: requests/s with ``--concurrency`` senders; p50/p99 at ``--rate``/s (open loop);
* the store-and-acknowledge floor: verify the Stripe signature + one ``INSERT ... ON CONFLICT DO
  NOTHING`` (plain asyncpg, ``--concurrency`` tasks) into a scratch copy of ``intake_events``;
* the lean-apply floor: the same + update the invoice + one history row, one transaction (scratch
  copies of ``invoices`` and ``ticket_events``);
* the hub: acknowledged/s with ``--concurrency`` senders; applied/s = callbacks applied (counted in
  the database) / time from the first post until the intake backlog is drained; acknowledged
  p50/p99 at ``--rate``/s and how long each waited to be applied; redeliveries (the same bytes
  signed afresh, and the same event in other bytes); exactly once, checked in the database;
* the hub's ratio to each floor, peak RSS (hub, bare endpoint, bench) and the load average;

and ends with one JSON line holding every figure.

    .venv/bin/python -m bench.payments                           # 10 s phases, 500/s
    .venv/bin/python -m bench.payments --scale 0.2 --duration 3  # quick check

Aims (issue 11): acknowledged p99 < 20 ms at 500/s; >= 1,500 applied/s sustained, backlog drained;
acknowledged/s at least 60% of the store floor; exactly once.
Needs the local PostgreSQL (127.0.0.1:5432, user postgres, trust).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from sqlalchemy import insert

from bench._floors import (
    HttpPool,
    LoopRun,
    RateRun,
    closed_loop,
    cpu_seconds,
    fmt_ms,
    open_loop,
    pct,
    peak_rss_mb,
    profile_start,
    profile_stop,
    self_cpu_seconds,
    self_peak_rss_mb,
    start_bare,
    start_raw_server,
    stop_process,
    wait_port,
)
from bench._hubs import PG_SERVER, Hub, asyncpg_dsn, free_port, fresh_database
from hub.connectors.payments import stripe
from hub.db import Database
from hub.payments.models import Invoice, PaymentAccount

DB_NAME = "hub_bench_payments"
STRIPE_SECRET = "whsec_bench_endpoint_secret"
WEBHOOK_KEY = "bench-stripe"
SOURCE = "payments.stripe"
CREATED = int(time.time())  # the event's own time: fixed, so a redelivery has the same bytes
WARM = 300
REDELIVER = 100


# --- callbacks ---------------------------------------------------------------------------------


def event_body(ref: str, *, attempt: int = 0) -> bytes:
    """A Stripe ``checkout.session.completed`` event paying invoice ``ref`` in full (1,500 RUB).
    ``attempt`` > 0 tells the same event in other bytes (as a provider's re-serialisation would)."""
    session = {
        "id": f"pay-{ref}",
        "object": "checkout.session",
        "amount_total": 150000,
        "currency": "rub",
        "client_reference_id": ref,
        "payment_intent": f"pi_{ref}",
        "payment_status": "paid",
        "status": "complete",
        "metadata": {"invoice_ref": ref},
    }
    event: dict[str, Any] = {
        "id": f"evt_{ref}",
        "object": "event",
        "type": "checkout.session.completed",
        "created": CREATED,
        "livemode": False,
        "data": {"object": session},
    }
    if attempt:
        event["request"] = {"id": f"req_retry_{attempt}", "idempotency_key": None}
    return json.dumps(event).encode()


@dataclass(frozen=True, slots=True)
class Signed:
    body: bytes
    signature: str  # the Stripe-Signature header
    http_headers: bytes  # the request's extra header lines, encoded once


def sign_all(bodies: list[bytes]) -> list[Signed]:
    """Sign now (Stripe refuses signatures older than 300 s: sign each phase just before it)."""
    now = int(time.time())
    out = []
    for body in bodies:
        signature = stripe.sign(body, STRIPE_SECRET, now)
        out.append(
            Signed(
                body,
                signature,
                b"content-type: application/json\r\nStripe-Signature: " + signature.encode() + b"\r\n",
            )
        )
    return out


def verify_stripe(body: bytes, signature: str, secret: str, now: float) -> str:
    """A plain Stripe-style check (the floors' own, same work as the hub's): HMAC-SHA256 of
    ``t.body``, constant-time compare, 300 s tolerance; answers the replay key."""
    timestamp = None
    candidates = []
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise ValueError("bad signature header")
    expected = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    if not any([hmac.compare_digest(expected, c) for c in candidates]) or abs(now - timestamp) > 300:
        raise ValueError("bad signature")
    return hashlib.sha256(signature.encode()).hexdigest()


# --- seeding -----------------------------------------------------------------------------------


async def seed(hub: Hub, invoices: int, tickets: int) -> tuple[int, list[str]]:
    """An account (administrator, dispatcher), a Stripe payment account, ``tickets`` tickets made
    by the desk's own service, and ``invoices`` issued invoices spread over them."""
    from hub.desk.actors import Actor
    from hub.desk.schemas import TicketCreate
    from hub.desk.service import create_ticket

    tenant = await hub.seed("Bench Property", "bench")
    refs = [f"inv-b{i}" for i in range(invoices)]
    db = Database(hub.database_url)
    try:
        async with db.sessionmaker() as session, session.begin():
            account = PaymentAccount(
                account_id=tenant.id,
                provider="stripe",
                name="bench",
                active=True,
                is_default=True,
                credentials={"secret_key": "sk_test_bench", "webhook_secret": STRIPE_SECRET},
                webhook_key=WEBHOOK_KEY,
                allowed_networks=[],
                reconcile_after_seconds=86400,
            )
            session.add(account)
            await session.flush()
            actor = Actor("employee", tenant.dispatcher.id, "Dispatcher Bench Property")
            ticket_ids = [
                (await create_ticket(session, tenant.id, actor, TicketCreate(title=f"Bench ticket {i}"))).id
                for i in range(tickets)
            ]
            pa_id = account.id
        rows = [
            {
                "account_id": tenant.id,
                "ticket_id": ticket_ids[i % tickets],
                "status": "issued",
                "currency": "RUB",
                "total": Decimal("1500"),
                "paid_amount": Decimal(0),
                "refunded_amount": Decimal(0),
                "reserved_amount": Decimal(0),
                "payment_account_id": pa_id,
                "provider": "stripe",
                "payment_ref": ref,
                "provider_payment_id": f"pay-{ref}",
                "issue_count": 1,
            }
            for i, ref in enumerate(refs)
        ]
        for start in range(0, len(rows), 5000):
            async with db.sessionmaker() as session, session.begin():
                await session.execute(insert(Invoice), rows[start : start + 5000])
    finally:
        await db.dispose()
    return pa_id, refs


# --- the generator's ceiling and the bare endpoint ----------------------------------------------


async def http_phases(
    base: str, items: list[Signed], args: argparse.Namespace, *, pid: int, rate_phase: bool = True
) -> dict[str, Any]:
    """Closed loop with ``--concurrency`` senders, then (``rate_phase``) the open loop at
    ``--rate``; the same signed bodies again and again (nothing here applies them)."""
    http = HttpPool(base)

    async def call(i: int) -> bool:
        item = items[i % len(items)]
        return await http.post("/callback", item.body, item.http_headers) < 300

    try:
        await closed_loop(call, 10**9, 1.0, args.concurrency)  # warm: connections, caches
        cpu0, server0 = self_cpu_seconds(), cpu_seconds(pid)
        run = await closed_loop(call, 10**9, args.duration, args.concurrency)
        figures: dict[str, Any] = {
            "per_s": run.per_s,
            "failed": run.failed,
            "bench_cpu_pct": 100 * (self_cpu_seconds() - cpu0) / run.elapsed,
            "server_cpu_pct": 100 * (cpu_seconds(pid) - server0) / run.elapsed,
        }
        if rate_phase:
            http.close()
            timed = await open_loop(call, int(args.rate * args.duration), args.rate)
            figures |= {
                "latencies": timed.latencies,
                "rate_failed": timed.failed,
                "late_ms": timed.max_late_ms,
            }
        figures["rss_mb"] = peak_rss_mb(pid)
    finally:
        http.close()
    return figures


# --- the floors --------------------------------------------------------------------------------

STORE_SQL = """
INSERT INTO bench_floor_events (source, account_id, endpoint_id, dedupe_key, replay_key, order_key,
    headers, body, remote_addr, received_at, state, attempts, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '127.0.0.1', now(), $9, 0, now())
ON CONFLICT (source, dedupe_key) DO NOTHING
RETURNING id
"""
PAY_SQL = """
UPDATE bench_floor_invoices
SET status = 'paid', provider_status = 'succeeded', paid_amount = total, paid_at = now(),
    last_event_at = now(), reconcile_due_at = NULL, updated_at = now()
WHERE payment_account_id = $1 AND payment_ref = $2 AND status = 'issued'
RETURNING id, account_id, ticket_id, total
"""
HISTORY_SQL = """
INSERT INTO bench_floor_history (account_id, ticket_id, kind, actor_kind, actor_id, actor_name, data, created_at)
VALUES ($1, $2, 'invoice_paid', 'system', NULL, 'Stripe', $3, now())
"""


async def floor_tables(dsn: str) -> None:
    """Scratch copies (columns, defaults, indexes; no foreign keys) of the tables the hub writes."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            DROP TABLE IF EXISTS bench_floor_events, bench_floor_invoices, bench_floor_history;
            CREATE TABLE bench_floor_events (LIKE intake_events INCLUDING ALL);
            CREATE TABLE bench_floor_invoices (LIKE invoices INCLUDING ALL);
            CREATE TABLE bench_floor_history (LIKE ticket_events INCLUDING ALL);
            INSERT INTO bench_floor_invoices SELECT * FROM invoices;
            ANALYZE bench_floor_invoices;
            """
        )
    finally:
        await conn.close()


async def drop_floor_tables(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_floor_events, bench_floor_invoices, bench_floor_history"
        )
    finally:
        await conn.close()


def stored_headers(item: Signed) -> str:
    return json.dumps(
        {
            "host": "127.0.0.1",
            "content-length": str(len(item.body)),
            "content-type": "application/json",
            "stripe-signature": item.signature,
        }
    )


async def floors(
    dsn: str, account_id: int, pa_id: int, refs: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Both floors, each with ``--concurrency`` tasks over a pool of ``--floor-pool`` connections."""
    pool = await asyncpg.create_pool(dsn, min_size=args.floor_pool, max_size=args.floor_pool)
    assert pool is not None
    try:
        # Store floor: the same bodies over and over, each use its own dedupe key.
        store_items = sign_all([event_body(ref) for ref in refs[:5000]])

        async def store(i: int) -> bool:
            item = store_items[i % len(store_items)]
            replay_key = verify_stripe(item.body, item.signature, STRIPE_SECRET, time.time())
            dedupe = f"{i}:{hashlib.sha256(item.body).hexdigest()}"
            async with pool.acquire() as conn:
                await conn.fetchval(
                    STORE_SQL,
                    SOURCE,
                    account_id,
                    pa_id,
                    dedupe,
                    replay_key,
                    f"{pa_id}:{i}",
                    stored_headers(item),
                    item.body.decode(),
                    "pending",
                )
            return True

        await closed_loop(store, 10**9, 1.0, args.concurrency)
        store_run = await closed_loop(store, 10**9, args.duration, args.concurrency)

        # Lean apply: each callback a distinct invoice, as for the hub.
        lean_items = sign_all([event_body(ref) for ref in refs])
        paid = 0

        async def lean(i: int) -> bool:
            nonlocal paid
            item = lean_items[i]
            replay_key = verify_stripe(item.body, item.signature, STRIPE_SECRET, time.time())
            obj = json.loads(item.body)["data"]["object"]
            ref = obj["client_reference_id"]
            async with pool.acquire() as conn, conn.transaction():
                stored = await conn.fetchval(
                    STORE_SQL,
                    SOURCE,
                    account_id,
                    pa_id,
                    f"{pa_id}:{hashlib.sha256(item.body).hexdigest()}",
                    replay_key,
                    f"{pa_id}:{ref}",
                    stored_headers(item),
                    item.body.decode(),
                    "done",
                )
                if stored is None:
                    return True
                invoice = await conn.fetchrow(PAY_SQL, pa_id, ref)
                if invoice is not None:
                    paid += 1
                    data = {
                        "invoice_id": invoice["id"],
                        "amount": str(invoice["total"]),
                        "currency": "RUB",
                    }
                    await conn.execute(
                        HISTORY_SQL, invoice["account_id"], invoice["ticket_id"], json.dumps(data)
                    )
            return True

        lean_run = await closed_loop(lean, len(lean_items), args.duration, args.concurrency)
    finally:
        await pool.close()
    return {
        "store_per_s": store_run.per_s,
        "store_n": store_run.count,
        "lean_per_s": lean_run.per_s,
        "lean_n": lean_run.count,
        "lean_paid": paid,
        "lean_ran_out": lean_run.count >= len(lean_items),
    }


# --- the hub -----------------------------------------------------------------------------------


class Db:
    """The bench's own look into the hub's database (one asyncpg connection)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def backlog(self) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM intake_events WHERE state IN ('pending', 'applying'))"
            )
        )

    async def pending(self) -> int:
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM intake_events WHERE state IN ('pending', 'applying')"
            )
        )

    async def applied(self) -> int:
        return int(
            await self.conn.fetchval("SELECT count(*) FROM payment_callbacks WHERE outcome = 'applied'")
        )

    async def last_event_id(self) -> int:
        return int(await self.conn.fetchval("SELECT coalesce(max(id), 0) FROM intake_events"))

    async def drain(self, timeout: float) -> float | None:
        """Wait until no intake event is pending or being applied: the perf_counter it was seen
        empty, or None after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if not await self.backlog():
                return time.perf_counter()
            await asyncio.sleep(0.02)
        return None


async def hub_phases(
    hub: Hub, refs: list[str], args: argparse.Namespace, db: Db, deadline: float, root: Path
) -> dict[str, Any]:
    """Warm-up, sustained, fixed rate, redeliveries; each drain bounded by what is left of
    ``--budget`` (``deadline``, a perf_counter) so the run ends in time whatever the hub does."""

    def left(reserve: float) -> float:
        return max(1.0, min(args.drain_timeout, deadline - time.perf_counter() - reserve))

    path = f"/api/webhooks/payments/stripe/{WEBHOOK_KEY}"
    http = HttpPool(hub.base_url)
    assert hub.process is not None
    pid = hub.process.pid
    rate_count = int(args.rate * args.duration)
    warm_refs, rate_refs = refs[:WARM], refs[len(refs) - rate_count :]
    sustained_refs = refs[WARM : len(refs) - rate_count]
    acked: list[str] = []
    figures: dict[str, Any] = {}

    def caller(items: list[Signed], names: list[str]) -> Any:
        """Post ``items[i]``; a success adds ``names[i]`` to what the hub acknowledged."""

        async def call(i: int) -> bool:
            item = items[i]
            ok = await http.post(path, item.body, item.http_headers) < 300
            if ok:
                acked.append(names[i])
            return ok

        return call

    try:
        # Warm up (connections, caches, the worker's first batches), then an empty backlog.
        items = sign_all([event_body(ref) for ref in warm_refs])
        await closed_loop(caller(items, warm_refs), len(items), 10.0, 16)
        await db.drain(left(args.duration * 3 + 60))

        # Sustained: acknowledged/s while senders push; applied/s until the backlog is drained.
        items = sign_all([event_body(ref) for ref in sustained_refs])
        http.close()
        applied0 = await db.applied()
        cpu0, bench0 = cpu_seconds(pid), self_cpu_seconds()
        profile_out = root / "hub-profile.txt"
        spy = profile_start(pid, args.duration * 6, profile_out) if args.profile else None
        sustained: LoopRun = await closed_loop(
            caller(items, sustained_refs), len(items), args.duration, args.concurrency
        )
        acked_at = sustained.started + sustained.elapsed
        drained_at = await db.drain(left(args.duration * 2 + 40))
        end = drained_at or time.perf_counter()
        if spy is not None:
            figures["profile"] = profile_stop(spy, profile_out)
        applied = await db.applied() - applied0
        figures |= {
            "acked_per_s": sustained.per_s,
            "acked_n": sustained.ok,
            "acked_failed": sustained.failed,
            "acked_ran_out": sustained.count >= len(items),
            "applied_n": applied,
            "applied_per_s": applied / (end - sustained.started),
            "drained": drained_at is not None,
            "drain_after_last_ack_s": end - acked_at,
            "first_post_to_drained_s": end - sustained.started,
            "hub_cpu_pct_sustained": 100 * (cpu_seconds(pid) - cpu0) / (end - sustained.started),
            # CPU the hub spent per callback (acknowledged and applied): what the rate would be
            # with a core of its own, whatever else the machine runs.
            "hub_cpu_ms_per_callback": 1000 * (cpu_seconds(pid) - cpu0) / max(1, applied),
            "bench_cpu_pct_sustained": 100 * (self_cpu_seconds() - bench0) / (end - sustained.started),
        }

        # Fixed rate: acknowledged latency, and how long each waited to be applied.
        items = sign_all([event_body(ref) for ref in rate_refs])
        http.close()
        first_id = await db.last_event_id()
        timed: RateRun = await open_loop(caller(items, rate_refs), len(items), args.rate)
        rate_drained = await db.drain(left(25))
        lags = [
            float(v)
            for v in await db.conn.fetchval(
                """SELECT array_agg(extract(epoch FROM applied_at - received_at) * 1000)
                   FROM intake_events WHERE id > $1 AND applied_at IS NOT NULL""",
                first_id,
            )
            or []
        ]
        figures |= {
            "ack_latencies": timed.latencies,
            "ack_failed": timed.failed,
            "ack_late_ms": timed.max_late_ms,
            "rate_drained": rate_drained is not None,
            "apply_lag_ms": lags,
        }

        # Redeliveries: the same bytes signed afresh (a duplicate at the door), and the same event
        # in other bytes (stored, then a duplicate when applied). Neither may pay anything again.
        # (Skipped when the budget is nearly spent: the hub is then far behind anyway.)
        again = acked[:REDELIVER] if deadline - time.perf_counter() > 30 else []
        items = sign_all([event_body(ref) for ref in again] + [event_body(ref, attempt=1) for ref in again])
        http.close()
        redelivered = await closed_loop(caller(items, again + again), len(items), 15.0, 8)
        await db.drain(left(10))
        figures |= {
            "redelivered": redelivered.count,
            "redelivered_failed": redelivered.failed,
            "pending_at_end": await db.pending(),
        }
        figures["rss_mb"] = hub.peak_rss_mb()
    finally:
        http.close()
    figures["acked_refs"] = acked
    return figures


async def exactly_once(db: Db, acked: list[str], redelivered: int) -> dict[str, Any]:
    """What the database says: every acknowledged callback applied once, nothing paid twice."""
    conn = db.conn
    paid_refs = {
        r["payment_ref"] for r in await conn.fetch("SELECT payment_ref FROM invoices WHERE status = 'paid'")
    }
    row = await conn.fetchrow(
        """SELECT
             count(*) FILTER (WHERE outcome = 'applied') AS applied,
             count(DISTINCT invoice_id) FILTER (WHERE outcome = 'applied') AS applied_invoices,
             count(*) FILTER (WHERE outcome = 'duplicate') AS duplicates,
             count(*) FILTER (WHERE outcome NOT IN ('applied', 'duplicate')) AS other
           FROM payment_callbacks"""
    )
    overpaid = await conn.fetchval("SELECT count(*) FROM invoices WHERE paid_amount > total")
    states = dict(
        await conn.fetch(
            "SELECT coalesce(state || ':' || outcome, state), count(*) FROM intake_events GROUP BY 1"
        )
    )
    history = await conn.fetchval("SELECT count(*) FROM ticket_events WHERE kind = 'invoice_paid'")
    distinct = set(acked)
    figures = {
        "sent_distinct": len(distinct),
        "paid": len(paid_refs),
        "applied": row["applied"],
        "applied_invoices": row["applied_invoices"],
        "duplicates_at_apply": row["duplicates"],
        "other_outcomes": row["other"],
        "overpaid": overpaid,
        "paid_history_rows": history,
        "intake_states": states,
        # Holds even when the backlog was not drained: nothing applied twice, nothing unasked.
        "no_double_apply": paid_refs <= distinct
        and row["applied"] == row["applied_invoices"] == len(paid_refs) == history
        and overpaid == 0,
    }
    figures["exactly_once"] = (
        paid_refs == distinct
        and row["applied"] == len(distinct) == row["applied_invoices"]
        and overpaid == 0
        and history == len(distinct)
        and row["other"] == 0
        and row["duplicates"] == redelivered // 2
        and states.get("done:applied", 0) == len(distinct)
        and not any(k.startswith(("pending", "applying", "failed")) for k in states)
    )
    return figures


# --- the run -----------------------------------------------------------------------------------


def r(value: float) -> float:
    return round(value, 2)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the default 40,000 invoices / 1,000 tickets"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="callbacks per second in the latency phase")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="senders (and floor tasks) in the sustained phases"
    )
    parser.add_argument(
        "--floor-pool",
        type=int,
        default=20,
        help="asyncpg connections of the floors (the hub: 10 + 10 overflow)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="seconds to wait for the backlog to drain"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=330.0,
        help="seconds the whole run may take (drains are cut short to keep it; default 330)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the hub during the sustained phase and its drain"
    )
    parser.add_argument("--keep", action="store_true", help="keep the hub's data directory and log")
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)

    deadline = time.perf_counter() + args.budget
    load_start = os.getloadavg()
    # Enough invoices that the sustained phase (up to 5,000/s) and the rate phase never run out.
    invoices = max(
        int(40_000 * args.scale), WARM + int(args.rate * args.duration) + int(5000 * args.duration)
    )
    tickets = max(50, min(1000, int(1000 * args.scale)))
    url = f"{PG_SERVER}/{DB_NAME}"
    dsn = asyncpg_dsn(url)
    root = Path(tempfile.mkdtemp(prefix="hub-bench-pay-"))
    print(
        f"# payments bench: Stripe callbacks, {invoices:,} issued invoices on {tickets:,} tickets, "
        f"PostgreSQL, 1 hub process (intake worker in-process); phases of {args.duration:g} s, "
        f"{args.concurrency} senders, latency at {args.rate:g}/s"
    )
    print(
        f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} ({os.cpu_count()} CPUs)"
    )
    await fresh_database(url)
    t0 = time.perf_counter()
    hub = Hub("hub", root, database_url=url)
    pa_id, refs = await seed(hub, invoices, tickets)
    assert hub.tenant is not None
    print(f"seeded in {time.perf_counter() - t0:.1f} s")

    # 1. The generator against a raw server (its ceiling), then against the bare endpoint.
    bodies = sign_all([event_body(ref) for ref in refs[:5000]])
    port = free_port()
    raw = start_raw_server(port)
    try:
        await wait_port(port)
        ceiling = await http_phases(f"http://127.0.0.1:{port}", bodies, args, pid=raw.pid, rate_phase=False)
    finally:
        stop_process(raw)
    port = free_port()
    bare_process = start_bare(port)
    try:
        await wait_port(port)
        bare = await http_phases(f"http://127.0.0.1:{port}", bodies, args, pid=bare_process.pid)
    finally:
        stop_process(bare_process)
    print(
        f"generator ceiling (raw asyncio server, {args.concurrency} senders): {ceiling['per_s']:7.0f} req/s  "
        f"(bench CPU {ceiling['bench_cpu_pct']:.0f}%, server CPU {ceiling['server_cpu_pct']:.0f}%)"
    )
    print(
        f"bare Litestar endpoint (uvicorn, 1 process):   {bare['per_s']:7.0f} req/s sustained  "
        f"(bench CPU {bare['bench_cpu_pct']:.0f}%, server CPU {bare['server_cpu_pct']:.0f}%; generator at "
        f"{100 * ratio(bare['per_s'], ceiling['per_s']):.0f}% of its ceiling); failed {bare['failed'] + bare['rate_failed']}"
    )
    print(f"    at {args.rate:g}/s: {fmt_ms(bare['latencies'])}; peak RSS {bare['rss_mb']:.0f} MB")

    # 2. The floors, plain asyncpg, in the same database (scratch tables).
    await floor_tables(dsn)
    try:
        floor = await floors(dsn, hub.tenant.id, pa_id, refs, args)
    finally:
        await drop_floor_tables(dsn)
    print(
        f"floor store-and-acknowledge (verify + 1 INSERT ON CONFLICT DO NOTHING; asyncpg, {args.concurrency} tasks, "
        f"pool {args.floor_pool}): {floor['store_per_s']:7.0f}/s  (n={floor['store_n']})"
    )
    print(
        f"floor lean apply (the same + UPDATE invoice + 1 history row, 1 transaction):      "
        f"{floor['lean_per_s']:7.0f}/s  (n={floor['lean_n']}, {floor['lean_paid']} paid"
        f"{', ran out of invoices' if floor['lean_ran_out'] else ''})"
    )

    # 3. The hub.
    hub.start()
    conn = await asyncpg.connect(dsn)
    db = Db(conn)
    try:
        await hub.wait_ready()
        measured = await hub_phases(hub, refs, args, db, deadline, root)
        hub_rss = hub.peak_rss_mb()
        hub.stop()
        checks = await exactly_once(db, measured["acked_refs"], measured["redelivered"])
    finally:
        hub.stop()
        await conn.close()
    acks, lags = measured["ack_latencies"], measured["apply_lag_ms"]
    print(
        f"hub acknowledged: {measured['acked_per_s']:7.0f}/s sustained ({args.concurrency} senders, "
        f"{measured['acked_n']} acknowledged, {measured['acked_failed']} failed"
        f"{', ran out of invoices' if measured['acked_ran_out'] else ''}; hub CPU {measured['hub_cpu_pct_sustained']:.0f}%, "
        f"bench CPU {measured['bench_cpu_pct_sustained']:.0f}% until drained)"
    )
    print(
        f"hub applied:      {measured['applied_per_s']:7.0f}/s sustained ({measured['applied_n']} applied from the "
        f"first post until the backlog drained: {measured['first_post_to_drained_s']:.1f} s, of which "
        f"{measured['drain_after_last_ack_s']:.1f} s after the last acknowledgement"
        f"{'' if measured['drained'] else '; NOT DRAINED within --drain-timeout'})"
    )
    print(
        f"hub CPU per callback (acknowledged and applied): {measured['hub_cpu_ms_per_callback']:.3f} ms "
        f"(one core's worth: {1000 / max(1e-9, measured['hub_cpu_ms_per_callback']):.0f} callbacks/s)"
    )
    print(
        f"hub at {args.rate:g}/s: acknowledged {fmt_ms(acks)}; failed {measured['ack_failed']}; "
        f"generator at most {measured['ack_late_ms']:.1f} ms behind schedule"
    )
    print(f"    received -> applied (intake_events): {fmt_ms(lags)}")
    print(
        f"ratios: acknowledged/s to bare {ratio(measured['acked_per_s'], bare['per_s']):.2f}, to store floor "
        f"{ratio(measured['acked_per_s'], floor['store_per_s']):.2f}; applied/s to lean-apply floor "
        f"{ratio(measured['applied_per_s'], floor['lean_per_s']):.2f}, to store floor "
        f"{ratio(measured['applied_per_s'], floor['store_per_s']):.2f}"
    )
    for line in measured.get("profile", []):
        print(f"    profile: {line}")
    pending = measured["pending_at_end"]
    unverified = f" (not verified: {pending} still pending when the budget ran out)" if pending else ""
    print(
        f"exactly once: {'yes' if checks['exactly_once'] else 'NO'}{unverified}"
        f"; nothing applied twice: {'yes' if checks['no_double_apply'] else 'NO'}: {checks['sent_distinct']} distinct callbacks "
        f"acknowledged; {checks['paid']} invoices paid, {checks['applied']} callbacks applied on "
        f"{checks['applied_invoices']} invoices, {checks['paid_history_rows']} 'invoice_paid' history rows, "
        f"{checks['overpaid']} overpaid; {measured['redelivered']} redeliveries ({measured['redelivered_failed']} "
        f"failed) -> {checks['duplicates_at_apply']} duplicates at apply, rest at the door; intake_events "
        f"{checks['intake_states']}"
    )
    bench_rss = self_peak_rss_mb()
    print(f"peak RSS: hub {hub_rss:.0f} MB, bare endpoint {bare['rss_mb']:.0f} MB, bench {bench_rss:.0f} MB")
    load_end = os.getloadavg()
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    ack_p99 = pct(acks, 0.99)
    aims = {
        "ack_p99_under_20ms": ack_p99 < 20,
        "applied_at_least_1500": measured["applied_per_s"] >= 1500,
        "acked_at_least_60pct_of_store_floor": measured["acked_per_s"] >= 0.6 * floor["store_per_s"],
        "exactly_once": checks["exactly_once"],
    }
    print(
        "aims: acknowledged p99 < 20 ms at 500/s: "
        + ("met" if aims["ack_p99_under_20ms"] else "NOT met")
        + "; >= 1,500 applied/s: "
        + ("met" if aims["applied_at_least_1500"] else "NOT met")
        + "; acknowledged/s >= 60% of the store floor: "
        + ("met" if aims["acked_at_least_60pct_of_store_floor"] else "NOT met")
        + "; exactly once: "
        + ("met" if aims["exactly_once"] else "NOT met")
    )
    if args.keep:
        print(f"hub data and log kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)

    print(
        json.dumps(
            {
                "bench": "payments",
                "provider": "stripe",
                "database": "postgresql",
                "processes": 1,
                "invoices": invoices,
                "tickets": tickets,
                "duration_s": args.duration,
                "rate_per_s": args.rate,
                "concurrency": args.concurrency,
                "floor_pool": args.floor_pool,
                "load_avg_start": [r(x) for x in load_start],
                "load_avg_end": [r(x) for x in load_end],
                "generator_ceiling_per_s": r(ceiling["per_s"]),
                "generator_vs_bare_pct": r(100 * ratio(bare["per_s"], ceiling["per_s"])),
                "generator_cpu_pct_bare": r(bare["bench_cpu_pct"]),
                "bare_per_s": r(bare["per_s"]),
                "bare_p50_ms": r(pct(bare["latencies"], 0.5)),
                "bare_p99_ms": r(pct(bare["latencies"], 0.99)),
                "store_floor_per_s": r(floor["store_per_s"]),
                "lean_apply_floor_per_s": r(floor["lean_per_s"]),
                "acked_per_s": r(measured["acked_per_s"]),
                "acked_failed": measured["acked_failed"],
                "applied_per_s": r(measured["applied_per_s"]),
                "applied_n": measured["applied_n"],
                "drained": measured["drained"],
                "drain_after_last_ack_s": r(measured["drain_after_last_ack_s"]),
                "ack_p50_ms": r(pct(acks, 0.5)),
                "ack_p99_ms": r(ack_p99),
                "ack_failed": measured["ack_failed"],
                "apply_lag_p50_ms": r(pct(lags, 0.5)),
                "apply_lag_p99_ms": r(pct(lags, 0.99)),
                "hub_cpu_pct_sustained": r(measured["hub_cpu_pct_sustained"]),
                "hub_cpu_ms_per_callback": round(measured["hub_cpu_ms_per_callback"], 4),
                "first_post_to_drained_s": r(measured["first_post_to_drained_s"]),
                "rate_drained": measured["rate_drained"],
                "ratio_acked_to_bare": r(ratio(measured["acked_per_s"], bare["per_s"])),
                "ratio_acked_to_store_floor": r(ratio(measured["acked_per_s"], floor["store_per_s"])),
                "ratio_applied_to_lean_apply_floor": r(ratio(measured["applied_per_s"], floor["lean_per_s"])),
                "ratio_applied_to_store_floor": r(ratio(measured["applied_per_s"], floor["store_per_s"])),
                "exactly_once": checks["exactly_once"],
                "no_double_apply": checks["no_double_apply"],
                "pending_at_end": measured["pending_at_end"],
                "sent_distinct": checks["sent_distinct"],
                "paid": checks["paid"],
                "applied": checks["applied"],
                "duplicates_at_apply": checks["duplicates_at_apply"],
                "redelivered": measured["redelivered"],
                "intake_states": checks["intake_states"],
                "rss": {"hub_mb": r(hub_rss), "bare_mb": r(bare["rss_mb"]), "bench_mb": r(bench_rss)},
                "aims": aims,
            }
        )
    )


if __name__ == "__main__":
    uvloop.run(main())
