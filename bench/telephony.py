"""Telephony benchmark (issue 4): PBX ringing event → pop-up frame on an SSE client.

Loads a private PostgreSQL database with 1,000,000 contacts (times ``--scale``), then measures

* baseline: a bare channel publish → receive through the same LISTEN/NOTIFY backend;
* the caller-match query alone (``match_caller``: last-N-digits lookup + names);
* pop-up latency with one hub process and with two (stream held on the other process): the time
  from sending a ringing event's POST to the ``call.ringing`` frame arriving on the SSE client, at
  ``--rate`` call events per second;

and prints p50 / p99, throughput and peak memory (RSS high-water marks of the hub processes and
of this process).

    .venv/bin/python -m bench.telephony              # full size: 1,000,000 contacts
    .venv/bin/python -m bench.telephony --scale 0.01 # quick check: 10,000 contacts

Needs the local PostgreSQL (127.0.0.1:5432, or the server of HUB_TEST_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hub.db import Database
from hub.devkit import HubProcess, fresh_database, make_settings, make_tenant, private_pg_url
from hub.live import _HubChannelsPlugin, _ResilientAsyncPgBackend
from hub.telephony.service import get_or_create_settings, issue_token, match_caller

DB_NAME = "hub_bench_telephony"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {pct(values, 0.5):7.2f} ms   p99 {pct(values, 0.99):7.2f} ms   "
        f"mean {statistics.fmean(values):7.2f} ms   n={len(values)}"
    )


def number_of(i: int) -> str:
    # Distinct Russian mobile numbers +7 9xx xxx-xx-xx.
    return f"+79{i % 1_000_000_000:09d}"


async def load_contacts(url: str, account_id: int, count: int) -> None:
    """COPY ``count`` contacts with a mobile number each, and their phone-index rows."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
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
        # Settle the freshly loaded tables (visibility map, statistics, dirty pages) so autovacuum
        # and checkpoints do not run during the measurements.
        await conn.execute("VACUUM (ANALYZE) contacts")
        await conn.execute("VACUUM (ANALYZE) phone_index")
        await conn.execute("CHECKPOINT")
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


async def bench_popups(
    post_to: list[str],
    stream_from: str,
    headers: dict[str, str],
    token: str,
    count: int,
    rate: float,
    contacts: int,
) -> tuple[list[float], float, int]:
    """Ringing events at ``rate``/s, round-robin over ``post_to`` (as a load balancer would spread
    them); pop-ups read from ``stream_from``."""
    arrivals: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    done = asyncio.Event()
    connected = asyncio.Event()
    prefix = f"b{random.randint(0, 10**9)}-"

    async def reader() -> None:
        async with (
            httpx.AsyncClient(timeout=None) as http,
            http.stream("GET", f"{stream_from}/api/telephony/stream", headers=headers) as response,
        ):
            event = None
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "call.ringing":
                    call_id = json.loads(line[6:])["call"]["external_id"]
                    if call_id.startswith(prefix):
                        arrivals[call_id] = time.perf_counter()
                        if len(arrivals) >= count:
                            done.set()
                            return

    task = asyncio.create_task(reader())
    await asyncio.wait_for(connected.wait(), 30)
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, pool=120), limits=limits) as http:

        async def post(i: int) -> None:
            nonlocal errors
            call_id = f"{prefix}{i}"
            body = {
                "event": "ringing",
                "call_id": call_id,
                "from_number": number_of(random.randint(1, contacts)),
                "extensions": ["101"],
            }
            sent_at[call_id] = time.perf_counter()
            target = post_to[i % len(post_to)]
            try:
                response = await http.post(f"{target}/api/telephony/pbx/events/{token}", json=body)
            except httpx.HTTPError:  # an overloaded hub: counted, the run goes on
                errors += 1
                return
            if response.status_code != 200:
                errors += 1

        started = time.perf_counter()
        posts = []
        for i in range(count):
            target = started + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(i)))
        await asyncio.gather(*posts)
        try:
            await asyncio.wait_for(done.wait(), 60)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
    task.cancel()
    latencies = [(arrivals[c] - sent_at[c]) * 1000 for c in arrivals if c in sent_at]
    return latencies, len(arrivals) / elapsed, errors + (count - len(arrivals))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1,000,000 contacts (default 1)")
    parser.add_argument("--rate", type=float, default=100.0, help="ringing events per second (default 100)")
    parser.add_argument(
        "--events", type=int, default=None, help="events per pop-up run (default 1000*scale, 200..1000)"
    )
    args = parser.parse_args()
    contacts = max(1000, int(1_000_000 * args.scale))
    events = args.events or max(200, min(1000, int(1000 * args.scale * 10)))
    url = private_pg_url(DB_NAME)
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))

    print(f"# telephony bench: {contacts:,} contacts, {events} ringing events at {args.rate:g}/s")
    await fresh_database(url)
    db = Database(url)
    tenant = await make_tenant(db, make_settings(url, workdir / "seed"), "Bench Security")
    async with db.sessionmaker() as session, session.begin():
        token = await issue_token(session, tenant.id)
    t0 = time.perf_counter()
    await load_contacts(url, tenant.id, contacts)
    print(f"loaded {contacts:,} contacts in {time.perf_counter() - t0:.1f} s")

    baseline = await bench_channel(url, 300)
    print(f"baseline  channel publish→receive (LISTEN/NOTIFY):        {fmt(baseline)}")
    matching = await bench_match(db, tenant.id, contacts, 1000)
    print(f"caller match query alone (match_caller):                 {fmt(matching)}")
    await db.dispose()

    results: dict[str, Any] = {}
    for n_proc in (1, 2):
        procs = [HubProcess(url, workdir / f"run{n_proc}-{i}") for i in range(n_proc)]
        try:
            await asyncio.gather(*(p.wait_ready() for p in procs))
            post_to, stream_from = [p.base_url for p in procs], procs[-1].base_url
            # Warm-up (connections, caches) before measuring.
            await bench_popups(
                post_to, stream_from, tenant.dispatcher.headers, token, 20, args.rate, contacts
            )
            cpu_before = [cpu_seconds(p.process.pid) for p in procs]
            latencies, throughput, lost = await bench_popups(
                post_to, stream_from, tenant.dispatcher.headers, token, events, args.rate, contacts
            )
            rss = [peak_rss_mb(p.process.pid) for p in procs]
            cpu = sum(cpu_seconds(p.process.pid) - b for p, b in zip(procs, cpu_before, strict=True))
        finally:
            for p in procs:
                p.stop()
        label = "1 process" if n_proc == 1 else "2 processes (POSTs spread, stream on B)"
        print(f"pop-up POST→frame, {label:38s} {fmt(latencies)}")
        print(
            f"    delivered {throughput:6.1f} pop-ups/s, lost/failed {lost}, hub CPU {cpu / events * 1000:.1f} ms/event, "
            f"hub peak RSS {', '.join(f'{r:.0f} MB' for r in rss)}"
        )
        results[str(n_proc)] = latencies
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("aims: pop-up p99 < 25 ms; caller match p99 < 2 ms")


if __name__ == "__main__":
    asyncio.run(main())
