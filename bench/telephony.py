"""Telephony benchmark (issues 4 and 11): PBX ringing event -> pop-up frame on an SSE client, PBX
intake sustained, and the caller match, each next to its floors, all in one run.

Loads a private PostgreSQL database with ``--contacts`` contacts (default 1,000,000, COPY), then:

* the generator's ceiling (a raw asyncio server) and the bare Litestar endpoint (its own uvicorn
  process), the same ringing bodies: requests/s with ``--concurrency`` senders, p50/p99 at ``--rate``;
* the channel baseline: a bare publish -> receive through the LISTEN/NOTIFY backend (the pop-up's
  last hop);
* the caller match: the hub's ``match_caller`` (one session) and its floor, the same suffix-range
  lookup joined to the names in plain asyncpg: p50/p99;
* the store floor (one ``INSERT ... ON CONFLICT DO NOTHING`` of the raw event keyed by the PBX's
  event key) and the lean-apply floor (the same + caller match + call row + call event + live
  event, one transaction), plain asyncpg on scratch tables;
* the hub, one ``hub serve`` process (intake worker in-process, PostgreSQL channels): pop-up
  latency from each ringing POST's scheduled send to its ``call.ringing`` frame at ``--rate``/s;
  sustained intake: events applied per second (calls counted in the database, backlog drained),
  each call created once;
* ratios, peak RSS, load average, the aims as met / NOT met, and one JSON line with every figure.

    .venv/bin/python -m bench.telephony                               # 1,000,000 contacts, 10 s phases
    .venv/bin/python -m bench.telephony --scale 0.1 --duration 3      # quick check: 100,000 contacts

Aims (issue 11): pop-up p99 < 25 ms at 100 events/s with 1 process and 1,000,000 contacts;
sustained intake >= 1,000 events/s; caller match p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from bench._floors import (
    HttpPool,
    ceiling_and_bare,
    closed_loop,
    encode_headers,
    fmt_ms,
    load_average,
    open_loop,
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
from hub.db import Database
from hub.devkit import HubProcess, asyncpg_dsn, fresh_database, make_settings, make_tenant, private_pg_url
from hub.live import _HubChannelsPlugin, _ResilientAsyncPgBackend
from hub.people.phones import suffix_bounds
from hub.telephony.service import get_or_create_settings, issue_token, match_caller

DB_NAME = "hub_bench_telephony"


def number_of(i: int) -> str:
    # Distinct Russian mobile numbers +7 9xx xxx-xx-xx.
    return f"+79{i % 1_000_000_000:09d}"


async def load_contacts(url: str, account_id: int, count: int) -> None:
    """COPY ``count`` contacts with a mobile number each, and their phone-index rows."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        start = await conn.fetchval("SELECT coalesce(max(id), 0) FROM contacts")
        now = datetime.now(UTC)
        batch = 100_000
        for offset in range(0, count, batch):
            n = min(batch, count - offset)
            ids = range(start + offset + 1, start + offset + n + 1)
            await conn.copy_records_to_table(
                "contacts",
                records=[(i, account_id, f"Client {i}", number_of(i), now) for i in ids],
                columns=["id", "account_id", "name", "mobile", "created_at"],
            )
            await conn.copy_records_to_table(
                "phone_index",
                records=[
                    (account_id, number_of(i)[1:][::-1], number_of(i), "contact", i, "mobile") for i in ids
                ],
                columns=["account_id", "reversed_digits", "e164", "owner_kind", "owner_id", "field"],
            )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT max(id) FROM contacts))"
        )
        copied = time.perf_counter()
        # Settle the freshly loaded tables (visibility map, statistics, dirty pages) so autovacuum
        # and checkpoints do not run during the measurements.
        await conn.execute("VACUUM (ANALYZE) contacts")
        await conn.execute("VACUUM (ANALYZE) phone_index")
        await conn.execute("CHECKPOINT")
        print(
            f"  contacts and phone index copied in {copied - started:.1f} s, vacuumed and checkpointed in "
            f"{time.perf_counter() - copied:.1f} s"
        )
    finally:
        await conn.close()


async def bench_channel(url: str, samples: int) -> list[float]:
    """Bare publish → receive through the asyncpg LISTEN/NOTIFY channels backend."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    plugin = _HubChannelsPlugin(backend=_ResilientAsyncPgBackend(dsn), arbitrary_channels_allowed=True)
    latencies: list[float] = []
    async with plugin:
        subscriber = await plugin.subscribe("bench.baseline")
        for i in range(samples):
            sent = time.perf_counter()
            plugin.publish(json.dumps({"i": i, "pad": "x" * 600}).encode(), "bench.baseline")
            await asyncio.wait_for(subscriber._queue.get(), 10)
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(0.005)
        await plugin.unsubscribe(subscriber)
    return latencies


MATCH_SQL = """
SELECT p.owner_kind, p.owner_id, p.field, p.e164, c.name
FROM phone_index p LEFT JOIN contacts c ON p.owner_kind = 'contact' AND c.id = p.owner_id
WHERE p.account_id = $1 AND p.reversed_digits >= $2 AND p.reversed_digits < $3
LIMIT 20
"""


def bounds(number: str, match_digits: int) -> tuple[str, str]:
    found = suffix_bounds(number, match_digits)
    assert found is not None
    return found


async def bench_match_floor(dsn: str, account_id: int, args: argparse.Namespace, samples: int) -> list[float]:
    """The caller match's floor: the same suffix-range lookup joined to the names, plain asyncpg on
    one connection (the number normalised the same way, outside the timing)."""
    conn = await asyncpg.connect(dsn)
    latencies: list[float] = []
    try:
        for n in range(200 + samples):
            low, high = bounds(number_of(random.randint(1, args.contacts)), args.match_digits)
            start = time.perf_counter()
            found = await conn.fetch(MATCH_SQL, account_id, low, high)
            if n >= 200:  # the first 200 warm the statement cache and the index pages
                latencies.append((time.perf_counter() - start) * 1000)
            assert found
    finally:
        await conn.close()
    return latencies


async def bench_match(db: Database, account_id: int, count: int, samples: int) -> list[float]:
    latencies: list[float] = []
    async with db.sessionmaker() as session:
        settings = await get_or_create_settings(session, account_id)
        await session.commit()
        session.expunge(settings)  # a plain detached row: rollbacks below must not expire it
        for _ in range(200):  # warm-up: statement caches, index pages
            await match_caller(session, settings, number_of(random.randint(1, count)))
        for _ in range(samples):
            i = random.randint(1, count)
            raw = "8 " + number_of(i)[2:]  # written with the trunk prefix
            start = time.perf_counter()
            found = await match_caller(session, settings, raw)
            latencies.append((time.perf_counter() - start) * 1000)
            assert found, raw
            await session.rollback()
    return latencies


STORE_SQL = """
INSERT INTO bench_floor_events (source, account_id, endpoint_id, dedupe_key, order_key, headers, body,
    remote_addr, received_at, state, attempts, next_attempt_at)
VALUES ('telephony', $1, $2, $3, $4, '{"content-type": "application/json", "x-hub-pbx-dialect": "hub"}', $5,
    '127.0.0.1', now(), 'pending', 0, now())
ON CONFLICT DO NOTHING
RETURNING id
"""
CALL_SQL = """
INSERT INTO bench_floor_calls (account_id, external_id, direction, status, from_number, client_number,
    ringing_extensions, matches, contact_id, answered, started_at, closed_by_sweeper, created_at, updated_at)
VALUES ($1, $2, 'in', 'ringing', $3, $3, '["101"]', $4, $5, false, now(), false, now(), now())
RETURNING id
"""
CALL_EVENT_SQL = """
INSERT INTO bench_floor_call_events (account_id, call_id, external_call_id, event, dialect, payload, outcome,
    received_at)
VALUES ($1, $2, $3, 'ringing', 'hub', $4, 'applied', now())
"""
LIVE_SQL = """
INSERT INTO bench_floor_live (channel, event_type, data, created_at) VALUES ($1, 'call.ringing', $2, now())
"""


def ring_body(call_id: str, contact: int) -> bytes:
    return json.dumps(
        {"event": "ringing", "call_id": call_id, "from_number": number_of(contact), "extensions": ["101"]}
    ).encode()


async def floors(
    dsn: str, account_id: int, settings_id: int, contacts: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Plain asyncpg, ``--concurrency`` tasks on a pool of 20, scratch copies of the tables: the
    store floor (one ``INSERT ... ON CONFLICT DO NOTHING`` of the raw event with its PBX key) and
    the lean-apply floor (the same + the caller match + the call row + its event row + the live
    event, one transaction)."""
    tables = {
        "bench_floor_events": "intake_events",
        "bench_floor_calls": "calls",
        "bench_floor_call_events": "call_events",
        "bench_floor_live": "live_staged",
    }
    rnd = random.Random(11)
    async with scratch_tables(dsn, tables):
        pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        assert pool is not None
        try:

            async def store(i: int, lean: bool) -> bool:
                call_id, contact = f"floor-{lean}-{i}", rnd.randint(1, contacts)
                body = ring_body(call_id, contact).decode()
                key = f"{account_id}:{call_id}:ringing"
                async with pool.acquire() as conn, conn.transaction():
                    stored = await conn.fetchval(STORE_SQL, account_id, settings_id, key, call_id, body)
                    if not lean or stored is None:
                        return stored is not None
                    low, high = bounds(number_of(contact), args.match_digits)
                    found = await conn.fetch(MATCH_SQL, account_id, low, high)
                    matches = json.dumps([dict(m) for m in found])
                    row_id = await conn.fetchval(
                        CALL_SQL, account_id, call_id, number_of(contact), matches, found[0]["owner_id"]
                    )
                    await conn.execute(CALL_EVENT_SQL, account_id, row_id, call_id, body)
                    await conn.execute(LIVE_SQL, f"a{account_id}.emp.1", matches)
                return True

            figures = await store_and_lean(store, concurrency=args.concurrency, duration=args.duration)
        finally:
            await pool.close()
    return figures


class Popups:
    """One SSE client on ``/api/telephony/stream``: when each ``call.ringing`` frame arrived."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.headers = base, headers
        self.arrivals: dict[str, float] = {}
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(timeout=None, trust_env=False) as http,
            http.stream("GET", f"{self.base}/api/telephony/stream", headers=self.headers) as response,
        ):
            event = None
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "call.ringing":
                    self.arrivals[json.loads(line[6:])["call"]["external_id"]] = time.perf_counter()

    async def __aenter__(self) -> Popups:
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 30)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()

    async def wait_for(self, call_ids: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and not all(c in self.arrivals for c in call_ids):
            await asyncio.sleep(0.02)


async def popup_phase(
    hub: HubProcess, popups: Popups, token: str, count: int, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    """Ringing events at ``--rate``/s (open loop, the raw generator): latency from each event's
    scheduled send to its ``call.ringing`` frame on the SSE client."""
    http = HttpPool(hub.base_url)
    path = f"/api/telephony/pbx/events/{token}"
    headers = encode_headers({"content-type": "application/json"})
    rnd = random.Random(5)
    call_ids = [f"{label}-{i}" for i in range(count)]
    bodies = [ring_body(c, rnd.randint(1, args.contacts)) for c in call_ids]
    scheduled: dict[str, float] = {}

    async def call(i: int) -> bool:
        scheduled[call_ids[i]] = time.perf_counter()
        return await http.post(path, bodies[i], headers) == 200

    try:
        run = await open_loop(call, count, args.rate)
    finally:
        http.close()
    await popups.wait_for(call_ids, 30)
    # The scheduled start of request i is run.started + i / rate (open_loop's own schedule).
    latencies = [
        (popups.arrivals[c] - (run.started + i / args.rate)) * 1000
        for i, c in enumerate(call_ids)
        if c in popups.arrivals
    ]
    return {
        "latencies": latencies,
        "ack_latencies": run.latencies,
        "failed": run.failed,
        "lost": count - len(latencies),
        "late_ms": run.max_late_ms,
    }


async def intake_phase(hub: HubProcess, dsn: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--concurrency`` PBX connections posting distinct ringing events as fast as answered for
    ``--duration`` s; intake/s = calls applied (counted in the database) / time from the first post
    until no intake event is pending; each call created once."""
    http = HttpPool(hub.base_url)
    path = f"/api/telephony/pbx/events/{token}"
    headers = encode_headers({"content-type": "application/json"})
    rnd = random.Random(9)
    conn = await asyncpg.connect(dsn)
    try:
        calls_before = await conn.fetchval("SELECT count(*) FROM calls")

        async def call(i: int) -> bool:
            return (
                await http.post(path, ring_body(f"sustain-{i}", rnd.randint(1, args.contacts)), headers)
                == 200
            )

        cpu0 = tree_cpu_seconds(hub.process.pid)
        with profiled(hub.process.pid, args.duration + args.drain_timeout, args.profile) as profile:
            run = await closed_loop(call, 10**9, args.duration, args.concurrency)
            http.close()
            acked_at = time.perf_counter()
            drained = None
            while time.perf_counter() < acked_at + args.drain_timeout:
                if not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM intake_events WHERE state IN ('pending', 'applying'))"
                ):
                    drained = time.perf_counter()
                    break
                await asyncio.sleep(0.02)
        end = drained or time.perf_counter()
        cpu = tree_cpu_seconds(hub.process.pid) - cpu0
        applied = await conn.fetchval("SELECT count(*) FROM calls") - calls_before
        distinct = await conn.fetchval(
            "SELECT count(DISTINCT external_id) = count(*) FROM calls WHERE external_id LIKE 'sustain-%'"
        )
    finally:
        await conn.close()
    return {
        "acked_per_s": run.ok / run.elapsed,
        "acked": run.ok,
        "failed": run.failed,
        "applied": applied,
        "intake_per_s": applied / (end - run.started),
        "drained": drained is not None,
        "drain_after_last_ack_s": end - acked_at,
        "each_once": bool(distinct) and applied == run.ok,
        "hub_cpu_ms_per_event": 1000 * cpu / max(1, applied),
        "profile": profile,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=None, help="contacts (default 1,000,000 x --scale)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default contacts")
    parser.add_argument("--rate", type=float, default=100.0, help="ringing events/s of the pop-up phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="senders / floor tasks (default 32)")
    parser.add_argument("--samples", type=int, default=1000, help="timed caller matches (default 1000)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="longest wait for the backlog")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub during the sustained intake")
    args = parser.parse_args()
    args.contacts = args.contacts or max(1000, int(1_000_000 * args.scale))
    load_start = load_average()
    url = private_pg_url(DB_NAME)
    dsn = asyncpg_dsn(url)
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-tel-"))
    events = max(50, int(args.rate * args.duration))
    print(
        f"# telephony bench: {args.contacts:,} contacts, PostgreSQL, 1 hub process; ringing at {args.rate:g}/s "
        f"({events} events), phases of {args.duration:g} s, {args.concurrency} senders"
    )
    print(f"load average at start: {' '.join(map(str, load_start))} ({os.cpu_count()} CPUs)")
    await fresh_database(url)
    db = Database(url)
    tenant = await make_tenant(db, make_settings(url, workdir / "seed"), "Bench Security")
    async with db.sessionmaker() as session, session.begin():
        token = await issue_token(session, tenant.id)
        settings = await get_or_create_settings(session, tenant.id)
        settings_id, args.match_digits = settings.id, settings.match_digits
    t0 = time.perf_counter()
    await load_contacts(url, tenant.id, args.contacts)
    print(f"loaded {args.contacts:,} contacts in {time.perf_counter() - t0:.1f} s")

    rnd = random.Random(1)
    items = [
        (ring_body(f"bare-{i}", rnd.randint(1, args.contacts)), b"content-type: application/json\r\n")
        for i in range(2000)
    ]
    ceiling, bare = await ceiling_and_bare(
        items, concurrency=args.concurrency, duration=args.duration, rate=args.rate
    )
    print_ceiling_and_bare(ceiling, bare, args.concurrency)
    channel = await bench_channel(url, 300)
    print(f"channel publish -> receive (LISTEN/NOTIFY, the pop-up's last hop): {fmt_ms(channel)}")
    matching = await bench_match(db, tenant.id, args.contacts, args.samples)
    await db.dispose()
    match_floor = await bench_match_floor(dsn, tenant.id, args, args.samples)
    print(f"caller match, the hub's (match_caller, one session):  {fmt_ms(matching)}")
    print(f"caller match floor (the same lookup in plain asyncpg): {fmt_ms(match_floor)}")
    floor = await floors(dsn, tenant.id, settings_id, args.contacts, args)
    print(
        f"floor store-and-acknowledge (1 INSERT ON CONFLICT DO NOTHING; asyncpg, {args.concurrency} tasks, pool 20): "
        f"{floor['store_per_s']:7.0f}/s (n={floor['store_n']})"
    )
    print(
        f"floor lean apply (the same + caller match + call row + call event + live event, 1 transaction): "
        f"{floor['lean_per_s']:7.0f}/s (n={floor['lean_n']})"
    )

    hub = HubProcess(url, workdir / "hub", HUB_LOG_LEVEL="WARNING")
    try:
        await hub.wait_ready()
        async with Popups(hub.base_url, tenant.dispatcher.headers) as popups:
            await popup_phase(hub, popups, token, 50, args, "warm")
            popup = await popup_phase(hub, popups, token, events, args, "timed")
        intake = await intake_phase(hub, dsn, token, args)
        hub_rss = tree_peak_rss_mb(hub.process.pid)
    finally:
        hub.stop()
    lat = popup["latencies"]
    print(
        f"hub pop-up (ringing POST scheduled -> call.ringing frame) at {args.rate:g}/s: {fmt_ms(lat)}; lost "
        f"{popup['lost']}, failed {popup['failed']}, generator at most {popup['late_ms']:.1f} ms behind"
    )
    print(f"    acknowledged (the PBX's answer): {fmt_ms(popup['ack_latencies'])}")
    print(
        f"hub intake: {intake['intake_per_s']:7.0f} events/s applied sustained ({intake['applied']} calls from the first "
        f"post until drained, {intake['drain_after_last_ack_s']:.1f} s after the last acknowledgement"
        f"{'' if intake['drained'] else ', NOT DRAINED'}); acknowledged {intake['acked_per_s']:.0f}/s, failed "
        f"{intake['failed']}; each call once: {intake['each_once']}; hub CPU {intake['hub_cpu_ms_per_event']:.2f} ms/event"
    )
    for line in intake["profile"]:
        print(f"    profile (sustained intake and its drain): {line}")
    print(
        f"ratios: intake/s to bare {ratio(intake['intake_per_s'], bare['per_s']):.3f}, to store floor "
        f"{ratio(intake['intake_per_s'], floor['store_per_s']):.2f}, to lean floor "
        f"{ratio(intake['intake_per_s'], floor['lean_per_s']):.2f}; acknowledged/s to store floor "
        f"{ratio(intake['acked_per_s'], floor['store_per_s']):.2f}; match p99 to its floor "
        f"{ratio(pct(matching, 0.99), pct(match_floor, 0.99)):.2f}"
    )
    bench_rss = self_peak_rss_mb()
    load_end = load_average()
    print(f"peak RSS: hub {hub_rss:.0f} MB, bare endpoint {bare['rss_mb']:.0f} MB, bench {bench_rss:.0f} MB")
    print(f"load average at end: {' '.join(map(str, load_end))}")
    aims = print_aims(
        {
            "popup_p99_under_25ms": (
                f"pop-up p99 < 25 ms at 100/s, {args.contacts:,} contacts",
                pct(lat, 0.99) < 25 and not popup["lost"],
            ),
            "intake_at_least_1000": (
                ">= 1,000 events/s sustained",
                intake["intake_per_s"] >= 1000 and intake["each_once"],
            ),
            "match_p99_under_2ms": ("caller match p99 < 2 ms", pct(matching, 0.99) < 2),
        }
    )
    shutil.rmtree(workdir, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "telephony",
                "database": "postgresql",
                "processes": 1,
                "contacts": args.contacts,
                "rate_per_s": args.rate,
                "duration_s": args.duration,
                "concurrency": args.concurrency,
                "load_avg_start": load_start,
                "load_avg_end": load_end,
                "generator_ceiling_per_s": r(ceiling["per_s"]),
                "bare_per_s": r(bare["per_s"]),
                "bare_p50_ms": r(pct(bare["latencies"], 0.5)),
                "bare_p99_ms": r(pct(bare["latencies"], 0.99)),
                "channel_p50_ms": r(pct(channel, 0.5)),
                "channel_p99_ms": r(pct(channel, 0.99)),
                "store_floor_per_s": r(floor["store_per_s"]),
                "lean_apply_floor_per_s": r(floor["lean_per_s"]),
                "match_p50_ms": r(pct(matching, 0.5)),
                "match_p99_ms": r(pct(matching, 0.99)),
                "match_floor_p50_ms": r(pct(match_floor, 0.5)),
                "match_floor_p99_ms": r(pct(match_floor, 0.99)),
                "popup_p50_ms": r(pct(lat, 0.5)),
                "popup_p99_ms": r(pct(lat, 0.99)),
                "popup_lost": popup["lost"],
                "popup_failed": popup["failed"],
                "popup_ack_p99_ms": r(pct(popup["ack_latencies"], 0.99)),
                "intake_per_s": r(intake["intake_per_s"]),
                "intake_acked_per_s": r(intake["acked_per_s"]),
                "intake_applied": intake["applied"],
                "intake_failed": intake["failed"],
                "intake_drained": intake["drained"],
                "intake_each_once": intake["each_once"],
                "hub_cpu_ms_per_event": r(intake["hub_cpu_ms_per_event"], 3),
                "ratio_intake_to_bare": r(ratio(intake["intake_per_s"], bare["per_s"]), 3),
                "ratio_intake_to_store_floor": r(ratio(intake["intake_per_s"], floor["store_per_s"]), 3),
                "ratio_intake_to_lean_floor": r(ratio(intake["intake_per_s"], floor["lean_per_s"]), 3),
                "ratio_match_p99_to_floor": r(ratio(pct(matching, 0.99), pct(match_floor, 0.99))),
                "rss": {"hub_mb": r(hub_rss), "bare_mb": r(bare["rss_mb"]), "bench_mb": r(bench_rss)},
                "aims": aims,
            }
        )
    )


if __name__ == "__main__":
    uvloop.run(main())
