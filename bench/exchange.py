"""Partner-exchange benchmark (issue 3): public comment committed in B -> private copy committed in A.

Starts two ``hub serve`` processes (A: "Alpha Security", B: "Beta Lifts"), each with its own
SQLite database (or its own PostgreSQL database with ``--pg``), pairs them, transfers a ticket from A
to B, then posts public comments on B's ticket and measures, per comment, the time between its
commit in B and the commit of its private copy in A (the ``created_at`` of both rows, read from the
two databases; both processes share this machine's clock). It prints:

* baseline: a bare HTTP round trip to the other hub process (``GET /health``);
* latency p50 / p99 at ``--rate`` comments per second (default 50);
* the sustained maximum: comments posted as fast as 8 clients can, divided by the time until the
  last copy is committed in A;
* a partner restart during a paced run: A is stopped and started again; every comment must arrive
  exactly once, in order;
* peak RSS of both hubs and of this process.

    .venv/bin/python -m bench.exchange               # 500 comments per phase
    .venv/bin/python -m bench.exchange --scale 0.1   # quick check: 50 per phase
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from tests.exchange.hubproc import HubProcess

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def created_at(hub: HubProcess, prefix: str) -> dict[str, datetime]:
    """body -> created_at of the comments whose body starts with ``prefix``, read from the database."""
    query = "SELECT body, created_at FROM ticket_comments WHERE body LIKE ?"
    if hub.database_url.startswith("sqlite"):
        path = hub.database_url.split("///", 1)[1]

        def read() -> list[tuple[str, str]]:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return db.execute(query, (prefix + "%",)).fetchall()

        rows = await asyncio.to_thread(read)
        return {body: datetime.fromisoformat(str(at)) for body, at in rows}
    import asyncpg

    conn = await asyncpg.connect(hub.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        records = await conn.fetch(query.replace("?", "$1"), prefix + "%")
    finally:
        await conn.close()
    return {r["body"]: r["created_at"].replace(tzinfo=None) for r in records}


class Bench:
    def __init__(self, a: HubProcess, b: HubProcess, http: httpx.AsyncClient) -> None:
        self.a, self.b, self.http = a, b, http
        self.alpha, self.beta = a.tenants[0], b.tenants[0]

    async def setup(self, tickets: int) -> None:
        issued = await self.http.post(
            f"{self.a.base_url}/api/exchange/pairing-keys", json={}, headers=self.alpha.admin.headers
        )
        connected = await self.http.post(
            f"{self.b.base_url}/api/exchange/connections",
            json={"key": issued.json()["key"]},
            headers=self.beta.admin.headers,
        )
        assert connected.status_code == 201, connected.text
        conns = await self.http.get(
            f"{self.a.base_url}/api/exchange/connections", headers=self.alpha.admin.headers
        )
        self.original_ids: list[int] = []
        for n in range(tickets):
            ticket = await self.http.post(
                f"{self.a.base_url}/api/tickets",
                json={"title": f"Bench {n}"},
                headers=self.alpha.dispatcher.headers,
            )
            self.original_ids.append(ticket.json()["id"])
            moved = await self.http.post(
                f"{self.a.base_url}/api/exchange/tickets/{ticket.json()['id']}/transfer",
                json={"connection_id": conns.json()[0]["id"]},
                headers=self.alpha.dispatcher.headers,
            )
            assert moved.status_code == 201, moved.text
        self.copy_ids: list[int] = []
        while len(self.copy_ids) < tickets:
            page = await self.http.get(f"{self.b.base_url}/api/tickets", headers=self.beta.dispatcher.headers)
            self.copy_ids = sorted(t["id"] for t in page.json()["items"] if t["source"] == "partner")
            await asyncio.sleep(0.1)

    async def comment(self, body: str, n: int) -> None:
        ticket_id = self.copy_ids[n % len(self.copy_ids)]
        response = await self.http.post(
            f"{self.b.base_url}/api/tickets/{ticket_id}/comments",
            json={"body": body, "public": True},
            headers=self.beta.dispatcher.headers,
        )
        assert response.status_code == 201, response.text

    async def paced(self, prefix: str, count: int, rate: float) -> None:
        start = time.perf_counter()
        tasks = []
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.comment(f"{prefix}{n:06}", n)))
        await asyncio.gather(*tasks)

    async def flood(self, prefix: str, count: int, clients: int = 8) -> None:
        queue = iter(range(count))

        async def worker() -> None:
            for n in queue:
                await self.comment(f"{prefix}{n:06}", n)

        await asyncio.gather(*(worker() for _ in range(clients)))

    async def arrived(self, prefix: str, count: int, timeout: float = 300) -> dict[str, datetime]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at_a = await created_at(self.a, prefix)
            if len(at_a) >= count:
                return at_a
            await asyncio.sleep(0.2)
        raise AssertionError(f"{prefix}: only {len(at_a)} of {count} arrived")

    async def latencies(self, prefix: str, count: int) -> list[float]:
        at_a = await self.arrived(prefix, count)
        at_b = await created_at(self.b, prefix)
        return [(at_a[body] - at_b[body]).total_seconds() * 1000 for body in at_b]


async def baseline(http: httpx.AsyncClient, url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await http.get(f"{url}/health")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(scale: float, rate: float, pg: bool, tickets: int) -> None:
    n = max(20, int(500 * scale))
    root = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    urls: list[str | None] = [None, None]
    if pg:
        from tests.telephony.hubproc import fresh_database

        urls = [f"{PG_SERVER}/bench_exchange_a", f"{PG_SERVER}/bench_exchange_b"]
        for url in urls:
            await fresh_database(url)
    a = HubProcess("Alpha", root, urls[0], HUB_OUTBOX_POLL_SECONDS="1.0")
    b = HubProcess("Beta", root, urls[1], HUB_OUTBOX_POLL_SECONDS="1.0")
    await a.seed("Alpha Security")
    await b.seed("Beta Lifts")
    a.start()
    b.start()
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        async with httpx.AsyncClient(timeout=60) as http:
            bench = Bench(a, b, http)
            await bench.setup(tickets)
            print(
                f"exchange bench: {n} comments per phase, {'PostgreSQL' if pg else 'SQLite'}, two hub processes"
            )
            base = await baseline(http, a.base_url, 200)
            print(
                f"baseline  bare HTTP round trip to the other hub: p50 {pct(base, 0.5):.1f} ms  p99 {pct(base, 0.99):.1f} ms"
            )

            await bench.paced("w-", 20, 20)  # warm-up
            await bench.arrived("w-", 20)
            started = time.perf_counter()
            await bench.paced("p-", n, rate)
            lat = await bench.latencies("p-", n)
            print(
                f"paced     {rate:.0f} comments/s for {time.perf_counter() - started:.1f} s: "
                f"B commit -> A commit p50 {pct(lat, 0.5):.1f} ms  p99 {pct(lat, 0.99):.1f} ms  "
                f"max {max(lat):.1f} ms  mean {statistics.fmean(lat):.1f} ms"
            )

            first = time.perf_counter()
            await bench.flood("f-", n)
            posted = time.perf_counter() - first
            at_a = await bench.arrived("f-", n)
            at_b = await created_at(b, "f-")
            span = (max(at_a.values()) - min(at_b.values())).total_seconds()
            lat = [(at_a[k] - at_b[k]).total_seconds() * 1000 for k in at_b]
            print(
                f"sustained {n / span:.0f} comments/s end to end (posting alone {n / posted:.0f}/s); "
                f"latency under flood p50 {pct(lat, 0.5):.0f} ms  p99 {pct(lat, 0.99):.0f} ms"
            )

            restart_count = max(20, n // 2)
            paced = asyncio.create_task(bench.paced("r-", restart_count, rate))
            await asyncio.sleep(restart_count / rate / 3)
            a.stop()
            await asyncio.sleep(2.0)
            a.start()
            await a.wait_ready()
            await paced
            await bench.arrived("r-", restart_count)
            bodies: list[str] = []
            in_order = True
            for original_id in bench.original_ids:
                link = await http.get(
                    f"{a.base_url}/api/exchange/tickets/{original_id}/partner-link",
                    headers=bench.alpha.dispatcher.headers,
                )
                number = link.json()[0]["partner_number"]
                page = await http.get(
                    f"{b.base_url}/api/tickets",
                    params={"q": str(number)},
                    headers=bench.beta.dispatcher.headers,
                )
                copy_id = next(t["id"] for t in page.json()["items"] if t["number"] == number)
                got = await http.get(
                    f"{a.base_url}/api/tickets/{original_id}/comments", headers=bench.alpha.dispatcher.headers
                )
                sent = await http.get(
                    f"{b.base_url}/api/tickets/{copy_id}/comments", headers=bench.beta.dispatcher.headers
                )
                arrived = [c["body"] for c in got.json() if c["body"].startswith("r-")]
                bodies += arrived
                # Per ticket, A has them in B's commit order.
                in_order = in_order and arrived == [
                    c["body"] for c in sent.json() if c["body"].startswith("r-")
                ]
            lost = restart_count - len(set(bodies))
            duplicated = len(bodies) - len(set(bodies))
            print(
                f"restart   A stopped 2 s during a {rate:.0f}/s run of {restart_count}: "
                f"lost {lost}, duplicated {duplicated}, in order {in_order}"
            )
            print(
                f"memory    peak RSS hub A {peak_rss_mb(a.process.pid) if a.process else 0:.0f} MB (since restart), "
                f"hub B {peak_rss_mb(b.process.pid) if b.process else 0:.0f} MB, "
                f"bench {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
            )
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 500 comments per phase")
    parser.add_argument("--rate", type=float, default=50.0, help="comments per second in the paced phases")
    parser.add_argument("--tickets", type=int, default=10, help="shared tickets the comments are spread over")
    parser.add_argument("--pg", action="store_true", help="each hub on its own local PostgreSQL database")
    args = parser.parse_args()
    asyncio.run(main(args.scale, args.rate, args.pg, args.tickets))
