"""Partner-exchange benchmark (issue 10): comments both ways at once, files mirrored in parallel.

Starts two real ``hub serve`` processes, A ("Alpha Security") and B ("Beta Lifts"), each on its own
fresh PostgreSQL database (``bench_exchange_a`` / ``bench_exchange_b`` on ``--pg-server``; with
``--sqlite`` each on its own SQLite file), pairs them through the HTTP API and transfers 10 tickets
from A to B. Then two phases on the same hubs and tickets, each followed by a wait until both hubs
have settled:

* paced (``--paced`` comments, default 300, at ``--rate`` per second in all, default 10): comment
  k leaves k/rate s after the start, alternating sides and walking the tickets, with a few
  (``--paced-files``) files mirrored meanwhile: latency at a rate the exchange can carry;
* saturation / max throughput (the burst below): every connection posts as fast as its answers
  come back, so a queue builds when the posting outruns the exchange.

In the saturation phase, all at once:

* A posts comments on its original tickets with ``pass_to_partner`` (copies land on B's tickets);
* B posts public comments on its partner tickets (copies land, private, on A's originals);
* public files (1-3 MiB each, a few dozen) are uploaded to B's partner tickets while the comments
  run, so the file-mirroring job sends them to A concurrently with the comment messages.

1,000 comments in all (``--comments``, times ``--scale``), spread evenly over the tickets and both
sides. Each (side, ticket) pair is one keep-alive connection posting its comments one after another
(20 connections at once), so its posting order is known; every body starts with a unique marker
``bench:<phase>:<side>:<ticket>:<index>`` (``phase`` paced or burst; the index counts on over
both phases, so the order checks span them). The generator speaks HTTP/1.1 over plain asyncio streams: httpx
needs more CPU per request than the hub spends on a bare endpoint, so httpx clients cannot outrun
one on this machine (the ``httpx`` line shows it). After the load the bench waits (at most
``--settle-timeout`` s) for both outboxes to settle, then reads both databases directly and prints:

* lost / duplicated: comments (and files) with no copy / more than one copy on the other side;
* stranded: messages still ``held`` in exchange_inbound_messages plus ``exchange.message`` outbox
  rows not delivered (pending, delivering or dead), on both hubs;
* order violations: per ticket and side, neighbouring copies (by id) in another order than posted;
* latency per comment (for each phase) from its ``created_at`` on the sender to its copy's ``created_at`` on the
  receiver (both stamped by the hubs inside their transactions, just before commit; one machine
  clock): p50 / p99, each way;
* throughput: copies committed per second from the first post to the last copy;
* floors from the same run: a bare ``GET /health`` (one connection: p50/p99; the load generator's
  connections: requests/s, with the hub's CPU share showing who the limit was; the same with
  httpx clients), the same store work in plain asyncpg (one comment row + one outbox row per
  transaction, 20 at a time on a 10-connection pool like the hub's, scratch tables in
  ``bench_exchange``) per second; the generator's comment rate against its /health rate;
* floors for the receiving side (issue 11): the generator's ceiling (a raw asyncio server) and
  the bare Litestar endpoint (its own uvicorn process) posted partner envelopes for ``--duration``
  s, and the inbound store floor in plain asyncpg (verify the partner's HMAC, store the inbound
  message keyed by its id with ``INSERT ... ON CONFLICT DO NOTHING`` and its private comment copy,
  one transaction, scratch tables in hub B's database); the ratios of the sustained copies/s;
* peak RSS (VmHWM) of both hubs and of this process, CPU seconds of each, the load average;
* the aims (issue 11) as met / NOT met: partner comment -> private copy p99 < 150 ms at 50/s
  (the paced phase, ``--rate`` 50 by default) and >= 300/s sustained (the saturation phase);

* with ``--profile``: the hubs' PostgreSQL backends sampled every 0.5 s while posting (state and
  wait event from pg_stat_activity, ungranted pg_locks), summarised per phase;

and finally ONE JSON line with every figure (the saturation phase's under the old keys, the paced
phase's as ``paced_*``).

    .venv/bin/python -m bench.exchange                 # PostgreSQL, 1,000 comments, 30 files
    .venv/bin/python -m bench.exchange --scale 0.2 --duration 3   # quick check: 200 comments, 6 files
    .venv/bin/python -m bench.exchange --sqlite        # the same on two SQLite files
    .venv/bin/python -m bench.exchange --profile       # + database wait/lock samples per phase
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench._floors import (
    ceiling_and_bare,
    closed_loop,
    load_average,
    print_aims,
    print_ceiling_and_bare,
    ratio,
    scratch_tables,
)
from bench._hubs import PG_SERVER, Hub, asyncpg_dsn, fresh_database

TOPIC = "exchange.message"
MARKER = re.compile(r"^bench:(?P<phase>paced|burst):(?P<side>[AB]):(?P<ticket>\d+):(?P<index>\d+)\b")
PHASES = ("paced", "burst")
FILE_MARKER = re.compile(r"^bench-file-(\d+)-")
MiB = 1024 * 1024


def phase_of(marker: str) -> str:
    m = MARKER.match(marker)
    assert m is not None
    return m["phase"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def r(value: float, digits: int = 1) -> float | None:
    return None if value != value else round(value, digits)  # NaN -> null in the JSON line


def as_utc(value: Any) -> datetime:
    """A created_at as read: aware from PostgreSQL, a naive UTC string from SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RawClient:
    """One keep-alive HTTP/1.1 connection written with plain asyncio streams: the load generator.

    httpx costs this machine milliseconds of CPU per request (measured in the run: the generator
    line), more than the hub spends on a bare endpoint, so httpx clients cannot outrun one; this
    costs a few microseconds. Requests carry a Content-Length; responses must too (the hub's do)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.head}{extra}\r\n".encode()
            + body
        )
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:
                raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
            data = await self.reader.readexactly(int(length.group(1)))
        except BaseException:
            await self.close()
            raise
        if re.search(rb"(?i)\r\nconnection:\s*close", head):
            await self.close()
        return int(head[9:12]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Store:
    """Direct reads of one hub's database (asyncpg, or sqlite3 read-only in a thread)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        if not self.hub.is_sqlite:
            self.conn = await asyncpg.connect(asyncpg_dsn(self.hub.database_url))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def fetch(self, sql: str) -> list[dict[str, Any]]:
        if self.conn is not None:
            return [dict(row) for row in await self.conn.fetch(sql)]

        def read() -> list[dict[str, Any]]:
            db = sqlite3.connect(f"file:{self.hub.sqlite_path}?mode=ro", uri=True, timeout=30)
            try:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(sql).fetchall()]
            finally:
                db.close()

        return await asyncio.to_thread(read)

    async def value(self, sql: str) -> int:
        rows = await self.fetch(sql)
        return int(next(iter(rows[0].values())) or 0) if rows else 0

    async def comments(self) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT id, ticket_id, body, author_kind, created_at FROM ticket_comments"
            " WHERE body LIKE 'bench:%' ORDER BY id"
        )

    async def files(self) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT id, ticket_id, filename, size, uploaded_by_kind, created_at FROM ticket_files"
            " WHERE filename LIKE 'bench-file-%' ORDER BY id"
        )

    async def copies(self) -> int:
        return await self.value(
            "SELECT count(*) FROM ticket_comments WHERE author_kind = 'partner' AND body LIKE 'bench:%'"
        )

    async def backlog(self) -> dict[str, int]:
        """Exchange work not finished: held inbound messages and undelivered outbox rows, by state."""
        held = await self.value("SELECT count(*) FROM exchange_inbound_messages WHERE status = 'held'")
        rows = await self.fetch(
            f"SELECT status, count(*) AS n FROM outbox_messages WHERE topic = '{TOPIC}' GROUP BY status"
        )
        counts = {row["status"]: int(row["n"]) for row in rows}
        return {
            "held": held,
            "pending": counts.get("pending", 0),
            "delivering": counts.get("delivering", 0),
            "dead": counts.get("dead", 0),
            "delivered": counts.get("delivered", 0),
        }


@dataclass
class Posted:
    side: str
    ticket: int  # 0..tickets-1, the shared ticket's index
    index: int  # position in its (side, ticket) stream, counted over both phases
    comment_id: int
    http_ms: float
    lag_ms: float = 0.0  # paced phase: how late the POST left against its schedule


@dataclass
class Load:
    posted: list[Posted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: list[tuple[str, int, int]] = field(default_factory=list)  # name, ticket index, size
    file_errors: list[str] = field(default_factory=list)
    file_ms: list[float] = field(default_factory=list)
    done: int = 0
    started_at: datetime | None = None
    post_seconds: float = 0.0
    files_seconds: float = 0.0
    next_index: dict[tuple[str, int], int] = field(default_factory=dict)  # per stream, after this phase


class Bench:
    def __init__(self, a: Hub, b: Hub, args: argparse.Namespace) -> None:
        self.a, self.b, self.args = a, b, args
        self.http = httpx.AsyncClient(timeout=120, trust_env=False)
        self.store = {"A": Store(a), "B": Store(b)}

    # -- setup ---------------------------------------------------------------------------------

    async def setup(self, tickets: int) -> None:
        """Pair B with A by a key A issues, transfer ``tickets`` tickets A -> B, and map each
        original on A to its partner ticket on B (through the links' shared uuid)."""
        alpha, beta = self.a.tenant, self.b.tenant
        assert alpha is not None and beta is not None
        issued = await self.http.post(
            f"{self.a.base_url}/api/exchange/pairing-keys", json={}, headers=alpha.admin.headers
        )
        assert issued.status_code == 201, issued.text
        connected = await self.http.post(
            f"{self.b.base_url}/api/exchange/connections",
            json={"key": issued.json()["key"]},
            headers=beta.admin.headers,
        )
        assert connected.status_code == 201, connected.text
        conns = await self.http.get(
            f"{self.a.base_url}/api/exchange/connections", headers=alpha.admin.headers
        )
        connection_id = conns.json()["items"][0]["id"]
        originals: list[int] = []
        for n in range(tickets):
            ticket = await self.http.post(
                f"{self.a.base_url}/api/tickets",
                json={"title": f"Bench shared ticket {n}"},
                headers=alpha.dispatcher.headers,
            )
            assert ticket.status_code == 201, ticket.text
            originals.append(ticket.json()["id"])
            moved = await self.http.post(
                f"{self.a.base_url}/api/exchange/tickets/{originals[-1]}/transfer",
                json={"connection_id": connection_id},
                headers=alpha.dispatcher.headers,
            )
            assert moved.status_code == 201, moved.text
        deadline = time.monotonic() + 60
        while True:
            out = await self.store["A"].fetch(
                "SELECT ticket_id, uuid FROM exchange_shared_tickets WHERE direction = 'outgoing'"
            )
            inc = await self.store["B"].fetch(
                "SELECT ticket_id, uuid FROM exchange_shared_tickets WHERE direction = 'incoming'"
            )
            if len(inc) >= tickets:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(inc)} of {tickets} transferred tickets reached B")
            await asyncio.sleep(0.1)
        on_b = {row["uuid"]: int(row["ticket_id"]) for row in inc}
        by_original = {int(row["ticket_id"]): on_b[row["uuid"]] for row in out}
        self.ticket_ids = {"A": originals, "B": [by_original[t] for t in originals]}

    # -- floors --------------------------------------------------------------------------------

    async def health_round_trip(self, count: int) -> list[float]:
        samples = []
        client = RawClient(self.a.port)
        try:
            for _ in range(count):
                started = time.perf_counter()
                status, _ = await client.request("GET", "/health")
                samples.append((time.perf_counter() - started) * 1000)
                assert status == 200, status
        finally:
            await client.close()
        return samples

    async def health_flood(self, clients: int, seconds: float) -> dict[str, float]:
        """For comparison: ``clients`` httpx clients, each one request after another, against the
        bare endpoint: the rate they reach, and how busy that keeps the hub and this process."""
        samples: list[float] = []
        stop = time.perf_counter() + seconds

        async def client() -> None:
            async with httpx.AsyncClient(base_url=self.a.base_url, timeout=30, trust_env=False) as http:
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    response = await http.get("/health")
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200

        cpu, own = self.a.cpu_seconds(), own_cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
        return {
            "rps": len(samples) / wall,
            "p50_ms": pct(samples, 0.5),
            "p99_ms": pct(samples, 0.99),
            "hub_cpu_share": (self.a.cpu_seconds() - cpu) / wall,
            "bench_cpu_share": (own_cpu_seconds() - own) / wall,
        }

    async def health_capacity(self, connections: int, seconds: float) -> dict[str, float]:
        """The load generator (``connections`` :class:`RawClient` connections, one request after
        another each) against the bare endpoint: what the endpoint serves when the client is not
        the limit, and how busy that keeps the hub."""
        samples: list[float] = []
        stop = time.perf_counter() + seconds

        async def connection() -> None:
            client = RawClient(self.a.port)
            try:
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    status, _ = await client.request("GET", "/health")
                    samples.append((time.perf_counter() - started) * 1000)
                    assert status == 200, status
            finally:
                await client.close()

        cpu, own = self.a.cpu_seconds(), own_cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(connections)))
        wall = time.perf_counter() - started
        return {
            "rps": len(samples) / wall,
            "p50_ms": pct(samples, 0.5),
            "p99_ms": pct(samples, 0.99),
            "hub_cpu_share": (self.a.cpu_seconds() - cpu) / wall,
            "bench_cpu_share": (own_cpu_seconds() - own) / wall,
        }

    # -- load ----------------------------------------------------------------------------------

    async def load(
        self,
        phase: str,
        total: int,
        tickets: int,
        files: int,
        uploaders: int,
        seed: int,
        *,
        rate: float | None = None,
        first_index: dict[tuple[str, int], int] | None = None,
        first_file: int = 0,
    ) -> Load:
        """``total`` comments over 2 x ``tickets`` streams (side, ticket), every stream one client
        posting in order; ``files`` public files uploaded to B's partner tickets meanwhile, file j
        once j/files of the comments are posted, so the uploads spread over the comment load.

        With ``rate`` (paced phase) comment k of the phase is due ``k / rate`` s after the start
        (k alternates sides and walks the tickets), and its stream posts it then, or as soon as its
        previous POST returned if that is later (the lag is recorded); without, every stream posts
        as fast as its answers come back (saturation phase). Stream positions continue from
        ``first_index``, so the markers ``bench:<phase>:<side>:<ticket>:<index>`` are unique and
        ordered over both phases; file names continue from ``first_file``."""
        alpha, beta = self.a.tenant, self.b.tenant
        assert alpha is not None and beta is not None
        schedule: dict[tuple[str, int], list[int]] = defaultdict(list)  # stream -> its k's, in order
        for k in range(total):
            schedule["AB"[k % 2], (k // 2) % tickets].append(k)
        base = first_index or {}
        result = Load()
        result.next_index = {
            (side, t): base.get((side, t), 0) + len(schedule.get((side, t), []))
            for side in "AB"
            for t in range(tickets)
        }
        rng = random.Random(seed)
        sizes = [rng.randint(1 * MiB, 3 * MiB) for _ in range(files)]
        t0 = 0.0

        async def stream(side: str, ticket: int, ks: list[int]) -> None:
            hub = self.a if side == "A" else self.b
            headers = (alpha if side == "A" else beta).dispatcher.headers
            ticket_id = self.ticket_ids[side][ticket]
            extra = {"public": False, "pass_to_partner": True} if side == "A" else {"public": True}
            client = RawClient(hub.port, headers)
            first = base.get((side, ticket), 0)
            try:
                for n, k in enumerate(ks):
                    index = first + n
                    lag = 0.0
                    if rate:
                        due = t0 + k / rate
                        wait = due - time.perf_counter()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        lag = max(0.0, (time.perf_counter() - due) * 1000)
                    body = f"bench:{phase}:{side}:{ticket}:{index} {phase} comment {n + 1} of {len(ks)} from {side}"
                    started = time.perf_counter()
                    try:
                        status, data = await client.request(
                            "POST",
                            f"/api/tickets/{ticket_id}/comments",
                            json.dumps({"body": body, **extra}).encode(),
                        )
                    except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
                        result.errors.append(f"{side}{ticket}#{index}: {exc!r}")
                        continue
                    finally:
                        result.done += 1
                    if status != 201:
                        result.errors.append(f"{side}{ticket}#{index}: {status} {data[:300]!r}")
                        continue
                    ms = (time.perf_counter() - started) * 1000
                    result.posted.append(Posted(side, ticket, index, int(json.loads(data)["id"]), ms, lag))
            finally:
                await client.close()

        queue = iter(range(files))

        async def uploader() -> None:
            async with httpx.AsyncClient(base_url=self.b.base_url, timeout=300, trust_env=False) as http:
                for j in queue:
                    while result.done < j * total / files and result.done < total:
                        await asyncio.sleep(0.02)
                    number = first_file + j
                    ticket = number % tickets
                    name = f"bench-file-{number:03d}-t{ticket}.bin"
                    data = os.urandom(sizes[j])
                    started = time.perf_counter()
                    try:
                        response = await http.post(
                            f"/api/tickets/{self.ticket_ids['B'][ticket]}/files",
                            files={"file": (name, data, "application/octet-stream")},
                            data={"public": "true"},
                            headers=beta.dispatcher.headers,
                        )
                    except httpx.HTTPError as exc:
                        result.file_errors.append(f"{name}: {exc!r}")
                        continue
                    if response.status_code != 201:
                        result.file_errors.append(f"{name}: {response.status_code} {response.text[:300]}")
                        continue
                    result.file_ms.append((time.perf_counter() - started) * 1000)
                    result.files.append((name, ticket, sizes[j]))

        async def timed(work: Awaitable[Any], attr: str) -> None:
            started = time.perf_counter()
            await work
            setattr(result, attr, time.perf_counter() - started)

        result.started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        await asyncio.gather(
            timed(asyncio.gather(*(stream(s, t, ks) for (s, t), ks in schedule.items())), "post_seconds"),
            timed(asyncio.gather(*(uploader() for _ in range(uploaders))), "files_seconds"),
        )
        return result

    async def settle(self, expected_copies: int, expected_files: int, timeout: float) -> dict[str, Any]:
        """Wait until every copy arrived and both hubs have nothing left to send or hold; or, when
        something never arrives, until nothing has moved for ``quiet`` seconds; at most ``timeout``."""
        started = time.monotonic()
        quiet = 8.0
        last: tuple[Any, ...] | None = None
        since = time.monotonic()
        while True:
            copies = await self.store["A"].copies() + await self.store["B"].copies()
            mirrored = await self.store["A"].value(
                "SELECT count(*) FROM ticket_files WHERE uploaded_by_kind = 'partner'"
                " AND filename LIKE 'bench-file-%'"
            )
            backlog = {side: await self.store[side].backlog() for side in "AB"}
            busy = sum(b["held"] + b["pending"] + b["delivering"] for b in backlog.values())
            state = (copies, mirrored, busy, tuple(b["delivered"] for b in backlog.values()))
            if state != last:
                last, since = state, time.monotonic()
            complete = copies >= expected_copies and mirrored >= expected_files
            if complete and busy == 0:
                reason = "settled"
                break
            if busy == 0 and time.monotonic() - since > quiet:
                reason = "quiet (outboxes empty, copies missing)"
                break
            if time.monotonic() - started > timeout:
                reason = f"timeout after {timeout:.0f} s"
                break
            await asyncio.sleep(0.25)
        return {"seconds": time.monotonic() - started, "reason": reason, "backlog": backlog}

    # -- checks --------------------------------------------------------------------------------

    async def check(self) -> dict[str, Any]:
        rows = {side: await self.store[side].comments() for side in "AB"}
        index_of = {side: {tid: n for n, tid in enumerate(self.ticket_ids[side])} for side in "AB"}
        # Originals: what each side committed itself (by marker); copies: what arrived from the other.
        originals: dict[str, dict[str, Any]] = {}
        copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        stray = 0
        for side in "AB":
            for row in rows[side]:
                m = MARKER.match(row["body"])
                if m is None:
                    continue
                marker = m.group(0)
                if row["author_kind"] == "partner":
                    if m["side"] == side:  # an echo: a side's own comment came back to it
                        stray += 1
                    copies[marker].append({**row, "side": side})
                elif m["side"] == side:
                    originals[marker] = {**row, "side": side}
                else:
                    stray += 1
        lost = [k for k in originals if not copies.get(k)]
        duplicated = sum(len(v) - 1 for k, v in copies.items() if len(v) > 1)
        without_original = [k for k in copies if k not in originals]
        misplaced = 0
        # (phase, sender side) -> latencies; phase -> when its last copy was committed
        latencies: dict[tuple[str, str], list[float]] = {(p, s): [] for p in PHASES for s in "AB"}
        last_copy: dict[str, datetime] = {}
        # (sender side, ticket index) -> markers in the sender's commit order / in the copies' order
        sent_order: dict[tuple[str, int], list[str]] = defaultdict(list)
        got_order: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for marker, original in sorted(originals.items(), key=lambda kv: int(kv[1]["id"])):
            side = original["side"]
            other = "B" if side == "A" else "A"
            ticket = index_of[side].get(int(original["ticket_id"]), -1)
            sent_order[side, ticket].append(marker)
            for copy in copies.get(marker, []):
                if copy["side"] != other or index_of[other].get(int(copy["ticket_id"])) != ticket:
                    misplaced += 1
                    continue
                got_order[side, ticket].append((int(copy["id"]), marker))
            if copies.get(marker):
                first = min(copies[marker], key=lambda c: int(c["id"]))
                arrived = as_utc(first["created_at"])
                latencies[phase_of(marker), side].append(
                    (arrived - as_utc(original["created_at"])).total_seconds() * 1000
                )
                last_copy[phase_of(marker)] = max(last_copy.get(phase_of(marker), arrived), arrived)
        order_violations = 0
        streams_out_of_order = 0
        posting_order_differs = 0
        for key, markers in sent_order.items():
            position = {m: n for n, m in enumerate(markers)}
            seen: set[str] = set()
            got = []
            for _, marker in sorted(got_order[key]):
                if marker not in seen:
                    seen.add(marker)
                    got.append(position[marker])
            inversions = sum(1 for x, y in itertools.pairwise(got) if y < x)
            order_violations += inversions
            streams_out_of_order += inversions > 0
            # The sender's own commit order must be the order the stream posted them in.
            posted_as = [int(m.rsplit(":", 1)[1]) for m in markers]
            posting_order_differs += posted_as != sorted(posted_as)
        # Files: every public bench file on B must be on A exactly once.
        a_files = await self.store["A"].files()
        b_files = await self.store["B"].files()
        uploaded = {row["filename"] for row in b_files if row["uploaded_by_kind"] != "partner"}
        mirrored = Counter(row["filename"] for row in a_files if row["uploaded_by_kind"] == "partner")
        copies_by_phase = Counter(phase_of(k) for k, v in copies.items() for _ in v)
        dup_by_phase = Counter(phase_of(k) for k, v in copies.items() for _ in v[1:])
        phases = {
            phase: {
                "originals": sum(1 for k in originals if k.startswith(f"bench:{phase}:")),
                "copies": copies_by_phase[phase],
                "lost": sum(1 for k in lost if k.startswith(f"bench:{phase}:")),
                "duplicated": dup_by_phase[phase],
                "latency_ms": latencies[phase, "A"] + latencies[phase, "B"],
                "latency_a_to_b_ms": latencies[phase, "A"],
                "latency_b_to_a_ms": latencies[phase, "B"],
                "last_copy": last_copy.get(phase),
            }
            for phase in PHASES
        }
        return {
            "phases": phases,
            "originals": len(originals),
            "copies": sum(len(v) for v in copies.values()),
            "lost": len(lost),
            "lost_sample": sorted(lost)[:10],
            "duplicated": duplicated,
            "copies_without_original": len(without_original),
            "misplaced": misplaced,
            "echoes_or_strays": stray,
            "order_violations": order_violations,
            "streams_out_of_order": streams_out_of_order,
            "streams": len(sent_order),
            "sender_order_differs": posting_order_differs,
            "files_uploaded": len(uploaded),
            "files_lost": len(uploaded - set(mirrored)),
            "files_duplicated": sum(n - 1 for n in mirrored.values() if n > 1),
            "files_mirrored": sum(mirrored.values()),
        }


# -- --profile: what the hubs' database connections are doing ---------------------------------------

ACTIVITY = """
SELECT datname, state, coalesce(wait_event_type || ':' || wait_event, 'on CPU / no wait') AS wait, count(*) AS n
FROM pg_stat_activity
WHERE datname = ANY($1::text[]) AND backend_type = 'client backend' AND NOT pid = ANY($2::int[])
GROUP BY 1, 2, 3
"""
UNGRANTED = """
SELECT d.datname, l.locktype, l.mode, l.relation, count(*) AS n
FROM pg_locks l JOIN pg_database d ON d.oid = l.database
WHERE NOT l.granted AND d.datname = ANY($1::text[])
GROUP BY 1, 2, 3, 4
"""


class Sampler:
    """``--profile``: every ``interval`` s, the hubs' PostgreSQL backends by state and wait event
    (pg_stat_activity, the bench's own connections left out) and the lock requests not granted
    (pg_locks), summarised per phase as the mean number of backends in each (state, wait) over the
    samples. A pooled connection "idle in transaction" is one the hub holds while it computes or
    waits in Python between statements; "active" with a Lock wait is a row/advisory lock wait."""

    def __init__(
        self, server: str, databases: dict[str, str], own_pids: list[int], interval: float = 0.5
    ) -> None:
        self.server, self.databases, self.own_pids, self.interval = server, databases, own_pids, interval
        self.side_of = {db: side for side, db in databases.items()}
        self.conn: asyncpg.Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self.samples = 0
        self.activity: Counter[tuple[str, str, str]] = Counter()
        self.locks: Counter[tuple[str, str, str, int | None]] = Counter()
        self.peak: Counter[str] = Counter()
        self.pg_cpu: dict[int, float] = {}
        self.started = 0.0

    @staticmethod
    def postgres_cpu() -> dict[int, float]:
        """CPU seconds used so far by each live process of the local server (named ``postgres``);
        empty when the server runs elsewhere (another host or container)."""
        ticks = os.sysconf("SC_CLK_TCK")
        used: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                text = stat.read_text()
                if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
                    fields = text.rsplit(")", 1)[1].split()
                    used[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    async def start(self) -> None:
        self.conn = self.conn or await asyncpg.connect(asyncpg_dsn(self.server) + "/postgres")
        self.pg_cpu, self.started = self.postgres_cpu(), time.perf_counter()
        self.samples, self.activity, self.locks, self.peak = 0, Counter(), Counter(), Counter()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self.conn is not None
        names = list(self.databases.values())
        while True:
            started = time.perf_counter()
            backends: Counter[str] = Counter()
            for row in await self.conn.fetch(ACTIVITY, names, self.own_pids):
                side = self.side_of[row["datname"]]
                self.activity[side, row["state"] or "?", row["wait"]] += row["n"]
                backends[side] += row["n"]
            for row in await self.conn.fetch(UNGRANTED, names):
                self.locks[self.side_of[row["datname"]], row["locktype"], row["mode"], row["relation"]] += (
                    row["n"]
                )
            for side, n in backends.items():
                self.peak[side] = max(self.peak[side], n)
            self.samples += 1
            await asyncio.sleep(max(0.0, self.interval - (time.perf_counter() - started)))

    async def stop(self, stores: dict[str, Store]) -> dict[str, Any]:
        """The phase's summary: per hub, mean backends by state/wait and ungranted locks."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        n = max(1, self.samples)
        relnames: dict[tuple[str, int], str] = {}
        for side, store in stores.items():
            oids = [rel for (s, _, _, rel) in self.locks if s == side and rel is not None]
            if oids and store.conn is not None:
                for row in await store.conn.fetch(
                    "SELECT oid, relname FROM pg_class WHERE oid = ANY($1::oid[])", oids
                ):
                    relnames[side, int(row["oid"])] = row["relname"]
        wall = time.perf_counter() - self.started
        summary: dict[str, Any] = {
            "samples": self.samples,
            # processes alive at both ends only (new backends' time from their start)
            "postgres_cpu_share": round(
                sum(cpu - self.pg_cpu.get(pid, 0.0) for pid, cpu in self.postgres_cpu().items()) / wall, 2
            ),
        }
        for side in self.databases:
            states = {
                f"{state} {wait}": round(count / n, 2)
                for (s, state, wait), count in self.activity.most_common()
                if s == side
            }
            locks = {
                f"{locktype} {mode}"
                + (f" on {relnames.get((side, rel), rel)}" if rel is not None else ""): round(count / n, 2)
                for (s, locktype, mode, rel), count in self.locks.most_common()
                if s == side
            }
            summary[side] = {
                "backends_mean": round(sum(states.values()), 2),
                "backends_peak": self.peak[side],
                "by_state_wait": states,
                "locks_waiting": locks,
            }
        return summary

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def print_profile(phase: str, summary: dict[str, Any]) -> None:
    print(
        f"profile   {phase}: PostgreSQL server processes {summary['postgres_cpu_share'] * 100:.0f}% of a core"
    )
    for side in "AB":
        info = summary.get(side)
        if not info:
            continue
        states = ", ".join(f"{k} {v}" for k, v in list(info["by_state_wait"].items())[:6])
        locks = ", ".join(f"{k} {v}" for k, v in list(info["locks_waiting"].items())[:4]) or "none"
        print(
            f"profile   {phase} hub {side}: {info['backends_mean']} backends on average (peak {info['backends_peak']},"
            f" {summary['samples']} samples): {states}; waiting lock requests: {locks}"
        )


# -- store floor (plain asyncpg, or sqlite3 with --sqlite) -------------------------------------------

SCRATCH_DDL = """
CREATE TABLE bench_comments (
    id BIGSERIAL PRIMARY KEY, account_id BIGINT NOT NULL, ticket_id BIGINT NOT NULL, body TEXT NOT NULL,
    public BOOLEAN NOT NULL, important BOOLEAN NOT NULL, author_kind VARCHAR(20) NOT NULL,
    author_id BIGINT, author_name VARCHAR(300), created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_bench_comments_ticket_id_id ON bench_comments (ticket_id, id);
CREATE TABLE bench_outbox (
    id BIGSERIAL PRIMARY KEY, account_id BIGINT, topic VARCHAR(100) NOT NULL, payload JSONB NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL UNIQUE, ordering_key VARCHAR(200), status VARCHAR(20) NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at TIMESTAMPTZ NOT NULL, created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_bench_outbox_due ON bench_outbox (status, next_attempt_at);
CREATE INDEX ix_bench_outbox_ordering ON bench_outbox (ordering_key, id);
"""
INSERT_COMMENT = (
    "INSERT INTO bench_comments (account_id, ticket_id, body, public, important, author_kind, author_id,"
    " author_name, created_at) VALUES ($1, $2, $3, true, false, 'employee', 1, 'Dispatcher', $4) RETURNING id"
)
INSERT_OUTBOX = (
    "INSERT INTO bench_outbox (account_id, topic, payload, idempotency_key, ordering_key, status, attempts,"
    " next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)"
)


async def store_floor(url: str | None, sqlite_path: Path, count: int, concurrency: int) -> dict[str, float]:
    """One comment row + one outbox row per transaction, ``concurrency`` at a time (the hub's pool
    holds 10 connections, so the pool here does too)."""
    samples: list[float] = []
    payload = json.dumps({"kind": "comment_posted", "body": "x" * 80})

    if url is None:  # --sqlite: the same two INSERTs with the standard library, one writer
        db = sqlite3.connect(sqlite_path, isolation_level=None)
        ddl = SCRATCH_DDL.replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY").replace("JSONB", "TEXT")
        db.executescript(ddl.replace("TIMESTAMPTZ", "TEXT"))
        db.execute("PRAGMA journal_mode=WAL")
        started = time.perf_counter()
        for n in range(count):
            t0 = time.perf_counter()
            now = datetime.now(UTC).isoformat()
            db.execute("BEGIN")
            cid = db.execute(
                re.sub(r"\$\d", "?", INSERT_COMMENT), (1, n % 10, f"floor comment {n}", now)
            ).fetchone()[0]
            db.execute(
                re.sub(r"\$\d", "?", INSERT_OUTBOX.replace("$6, $6", "$6, $7")),
                (1, TOPIC, payload, f"floor:{cid}", f"exchange:conn:1:{n % 10}", now, now),
            )
            db.execute("COMMIT")
            samples.append((time.perf_counter() - t0) * 1000)
        wall = time.perf_counter() - started
        db.close()
        return {"tps": count / wall, "p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}

    await fresh_database(url, migrate=False)
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=min(10, concurrency), max_size=10)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.execute(SCRATCH_DDL)
        numbers = iter(range(count))

        async def worker() -> None:
            for n in numbers:
                t0 = time.perf_counter()
                async with pool.acquire() as conn, conn.transaction():
                    now = datetime.now(UTC)
                    cid = await conn.fetchval(INSERT_COMMENT, 1, n % 10, f"floor comment {n}", now)
                    await conn.execute(
                        INSERT_OUTBOX, 1, TOPIC, payload, f"floor:{cid}", f"exchange:conn:1:{n % 10}", now
                    )
                samples.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    finally:
        await pool.close()
    return {"tps": count / wall, "p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}


INBOUND_SQL = """
INSERT INTO bench_floor_inbound (account_id, connection_id, message_id, ticket_uuid, seq, kind, status, envelope,
    received_at, applied_at, digest)
VALUES ($1, 1, $2, $3, $4, 'comment_posted', 'applied', $5, now(), now(), $6)
ON CONFLICT DO NOTHING
RETURNING id
"""
PRIVATE_COPY_SQL = """
INSERT INTO bench_floor_comments (account_id, ticket_id, body, public, important, author_kind, author_name,
    created_at)
VALUES ($1, $2, $3, false, false, 'partner', 'Partner dispatcher', now())
"""
PARTNER_SECRET = b"bench-partner-shared-secret"


def partner_envelope(i: int) -> bytes:
    return json.dumps(
        {
            "message_id": str(uuid.UUID(int=i)),
            "kind": "comment_posted",
            "ticket_uuid": str(uuid.UUID(int=i % 10 + 1)),
            "seq": i,
            "comment": {"body": f"bench:floor:{i} " + "x" * 80, "author": "Partner dispatcher"},
        }
    ).encode()


async def inbound_floor(url: str, duration: float, concurrency: int) -> dict[str, float]:
    """The receiving side's floor: verify the partner's HMAC, store the inbound message keyed by
    its id (``INSERT ... ON CONFLICT DO NOTHING``) and its private comment copy, one transaction;
    plain asyncpg on scratch copies of ``exchange_inbound_messages`` and ``ticket_comments``, a
    pool of 10 like the hub's."""
    dsn = asyncpg_dsn(url)
    tables = {"bench_floor_inbound": "exchange_inbound_messages", "bench_floor_comments": "ticket_comments"}
    async with scratch_tables(dsn, tables):
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        assert pool is not None
        try:
            signed = [
                (e, hmac.new(PARTNER_SECRET, e, hashlib.sha256).hexdigest())
                for e in map(partner_envelope, range(2000))
            ]

            async def store(i: int) -> bool:
                envelope, signature = signed[i % len(signed)]
                if not hmac.compare_digest(
                    hmac.new(PARTNER_SECRET, envelope, hashlib.sha256).hexdigest(), signature
                ):
                    return False
                message = json.loads(envelope)
                async with pool.acquire() as conn, conn.transaction():
                    stored = await conn.fetchval(
                        INBOUND_SQL, 1, str(uuid.UUID(int=10**7 + i)), message["ticket_uuid"], message["seq"],
                        envelope.decode(), hashlib.sha256(envelope).hexdigest(),
                    )  # fmt: skip
                    if stored is not None:
                        await conn.execute(
                            PRIVATE_COPY_SQL, 1, message["seq"] % 10 + 1, message["comment"]["body"]
                        )
                return stored is not None

            await closed_loop(store, 10**9, 1.0, concurrency)

            async def timed(i: int) -> bool:
                return await store(10**6 + i)

            run = await closed_loop(timed, 10**9, duration, concurrency)
        finally:
            await pool.close()
    return {"per_s": run.per_s, "n": run.count}


# -- main --------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = max(2 * args.tickets, int(args.comments * args.scale))
    files = max(1, round(args.files * args.scale)) if args.files else 0
    clients = 2 * args.tickets
    root = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    urls: list[str | None] = [None, None]
    scratch: str | None = None
    if not args.sqlite:
        server = args.pg_server.rstrip("/")
        urls = [f"{server}/bench_exchange_a", f"{server}/bench_exchange_b"]
        scratch = f"{server}/bench_exchange"
        for url in urls:  # one at a time: alembic's upgrade is not safe to run in two threads
            assert url is not None
            await fresh_database(url)
    env = {
        "HUB_OUTBOX_POLL_SECONDS": str(args.poll),
        "HUB_OUTBOX_INITIAL_DELAY_SECONDS": "0.2",
        "HUB_OUTBOX_MAX_DELAY_SECONDS": "1.0",
        "HUB_OUTBOX_MAX_ATTEMPTS": "1000",
    }
    load_start = load_average()
    print(f"load average at start: {' '.join(map(str, load_start))} ({os.cpu_count()} CPUs)")
    a = Hub("Alpha", root, urls[0], **env)
    b = Hub("Beta", root, urls[1], **env)
    await a.seed("Alpha Security", "alpha")
    await b.seed("Beta Lifts", "beta")
    engine = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"exchange bench: {engine}, two hub processes; {total} comments over {args.tickets} shared tickets"
        f" from both sides ({clients} connections), {files} public files of 1-3 MiB mirrored B -> A meanwhile"
    )
    a.start()
    b.start()
    bench = Bench(a, b, args)
    sampler: Sampler | None = None
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        for store in bench.store.values():
            await store.open()
        await bench.setup(args.tickets)

        # Floors, measured before the load in this same run.
        rtt = await bench.health_round_trip(max(100, int(500 * args.scale)))
        seconds = max(2.0, 5.0 * args.scale)
        capacity = await bench.health_capacity(clients, seconds)
        flood = await bench.health_flood(clients, seconds)
        sender = await store_floor(scratch, root / "floor.db", max(500, int(5000 * args.scale)), clients)
        items = [(partner_envelope(i), b"content-type: application/json\r\n") for i in range(2000)]
        ceiling, bare = await ceiling_and_bare(items, concurrency=clients, duration=args.duration)
        inbound = (
            await inbound_floor(urls[1], args.duration, clients)
            if urls[1] is not None
            else {"per_s": float("nan"), "n": 0}
        )
        print(
            f"floor     GET /health, one connection, one request at a time: p50 {pct(rtt, 0.5):.2f} ms"
            f"  p99 {pct(rtt, 0.99):.2f} ms"
        )
        print(
            f"floor     GET /health, the load generator ({clients} keep-alive connections): {capacity['rps']:.0f} req/s"
            f"  p50 {capacity['p50_ms']:.1f} ms  p99 {capacity['p99_ms']:.1f} ms"
            f"  (CPU: hub {capacity['hub_cpu_share'] * 100:.0f}% of a core, bench {capacity['bench_cpu_share'] * 100:.0f}%)"
        )
        print(
            f"httpx     GET /health, {clients} httpx clients instead: {flood['rps']:.0f} req/s"
            f"  p50 {flood['p50_ms']:.1f} ms  p99 {flood['p99_ms']:.1f} ms"
            f"  (CPU: hub {flood['hub_cpu_share'] * 100:.0f}%, bench {flood['bench_cpu_share'] * 100:.0f}%)"
            f" = {flood['rps'] / capacity['rps'] * 100:.0f}% of the generator's rate"
        )
        print(
            f"floor     store work in plain {'sqlite3' if args.sqlite else 'asyncpg'} (comment row + outbox row,"
            f" one transaction, {1 if args.sqlite else clients} at a time): {sender['tps']:.0f} tx/s"
            f"  p50 {sender['p50_ms']:.2f} ms  p99 {sender['p99_ms']:.2f} ms"
        )
        print_ceiling_and_bare(ceiling, bare, clients)
        print(
            f"floor     inbound store in plain asyncpg (verify HMAC + inbound message INSERT ON CONFLICT DO NOTHING"
            f" + private comment copy, one transaction, {clients} tasks, pool 10): {inbound['per_s']:.0f}/s (n={inbound['n']})"
        )

        if args.profile and not args.sqlite:
            assert urls[0] is not None and urls[1] is not None
            own = [s.conn.get_server_pid() for s in bench.store.values() if s.conn is not None]
            sampler = Sampler(
                args.pg_server.rstrip("/"),
                {"A": urls[0].rsplit("/", 1)[1], "B": urls[1].rsplit("/", 1)[1]},
                own,
            )

        async def phase(name: str, **kwargs: Any) -> dict[str, Any]:
            """One phase: post (and upload), wait for both hubs to settle; CPU and samples over it."""
            before = {"A": a.cpu_seconds(), "B": b.cpu_seconds(), "bench": own_cpu_seconds()}
            if sampler is not None:
                await sampler.start()
            wall0 = time.perf_counter()
            load = await bench.load(name, **kwargs)
            post_wall = time.perf_counter() - wall0
            cpu_post = {side: (hub.cpu_seconds() - before[side]) for side, hub in (("A", a), ("B", b))}
            loads.append(load)
            profile = await sampler.stop(bench.store) if sampler is not None else None
            posted = sum(len(x.posted) for x in loads)
            files_done = sum(len(x.files) for x in loads)
            settled = await bench.settle(posted, files_done, args.settle_timeout)
            wall = time.perf_counter() - wall0
            cpu = {side: (hub.cpu_seconds() - before[side]) for side, hub in (("A", a), ("B", b))}
            cpu["bench"] = own_cpu_seconds() - before["bench"]
            return {
                "load": load,
                "settled": settled,
                "cpu": cpu,
                "cpu_post": cpu_post,
                "wall": wall,
                "post_wall": post_wall,
                "profile": profile,
            }

        def print_load(name: str, run: dict[str, Any], wanted: int, files_wanted: int) -> dict[str, Any]:
            load: Load = run["load"]
            posted = len(load.posted)
            post_rate = posted / load.post_seconds if load.post_seconds else 0.0
            http_ms = [x.http_ms for x in load.posted]
            lag_ms = [x.lag_ms for x in load.posted]
            paced = (
                f" (offered {args.rate:g}/s; posts late against their schedule: p99 {pct(lag_ms, 0.99):.0f} ms)"
                if name == "paced"
                else ""
            )
            print(
                f"{name:<9} {posted} of {wanted} comments posted in {load.post_seconds:.1f} s = {post_rate:.1f}/s{paced};"
                f" POST p50 {pct(http_ms, 0.5):.0f} ms  p99 {pct(http_ms, 0.99):.0f} ms;"
                f" {len(load.files)} of {files_wanted} files ({sum(f[2] for f in load.files) / MiB:.0f} MiB)"
                f" uploaded in {load.files_seconds:.1f} s; errors: {len(load.errors)} comments, {len(load.file_errors)} files"
            )
            for error in (load.errors + load.file_errors)[:5]:
                print(f"          error: {error}")
            settled, cpu = run["settled"], run["cpu"]
            print(
                f"{'':<9} settle: {settled['reason']} {settled['seconds']:.1f} s after the last post;"
                f" CPU over post+settle ({run['wall']:.0f} s): hub A {cpu['A']:.0f} s, hub B {cpu['B']:.0f} s, bench"
                f" {cpu['bench']:.0f} s; while posting ({run['post_wall']:.0f} s) hub A"
                f" {run['cpu_post']['A'] / run['post_wall'] * 100:.0f}%, hub B {run['cpu_post']['B'] / run['post_wall'] * 100:.0f}% of a core"
            )
            if run["profile"] is not None:
                print_profile(name, run["profile"])
            return {"posted": posted, "post_rate": post_rate, "http_ms": http_ms, "lag_ms": lag_ms}

        loads: list[Load] = []
        paced_total = max(2 * args.tickets, int(args.paced * args.scale)) if args.paced else 0
        paced_files = max(1, round(args.paced_files * args.scale)) if args.paced_files and paced_total else 0
        runs: dict[str, dict[str, Any]] = {}
        printed: dict[str, dict[str, Any]] = {}
        if paced_total:
            runs["paced"] = await phase(
                "paced",
                total=paced_total,
                tickets=args.tickets,
                files=paced_files,
                uploaders=1,
                seed=args.seed + 1,
                rate=args.rate,
            )
            printed["paced"] = print_load("paced", runs["paced"], paced_total, paced_files)
        runs["burst"] = await phase(
            "burst",
            total=total,
            tickets=args.tickets,
            files=files,
            uploaders=args.uploaders,
            seed=args.seed,
            first_index=loads[0].next_index if loads else None,
            first_file=paced_files,
        )
        printed["burst"] = print_load("burst", runs["burst"], total, files)
        result = await bench.check()
        backlog = runs["burst"]["settled"]["backlog"]
        held = backlog["A"]["held"] + backlog["B"]["held"]
        undelivered = sum(backlog[s][k] for s in "AB" for k in ("pending", "delivering", "dead"))
        stranded = held + undelivered
        stats: dict[str, dict[str, Any]] = {}
        for name, run in runs.items():
            ph = result["phases"][name]
            load = run["load"]
            last = ph["last_copy"]
            span = (last - load.started_at).total_seconds() if last and load.started_at else float("nan")
            copies = ph["copies"] - ph["duplicated"]
            stats[name] = {
                "span": span,
                "throughput": copies / span if span == span and span > 0 else 0.0,
                **ph,
            }
        print(
            f"settle    {runs['burst']['settled']['reason']} after the saturation phase; backlog A {backlog['A']}, B {backlog['B']}"
        )
        print(
            f"result    lost {result['lost']}  duplicated {result['duplicated']}  stranded {stranded}"
            f" (held {held}, outbox undelivered {undelivered})  order violations {result['order_violations']}"
            f" ({result['streams_out_of_order']} of {result['streams']} streams)"
            f"  misplaced {result['misplaced']}  echoes/strays {result['echoes_or_strays']}"
            f"  copies without original {result['copies_without_original']}"
            f"  (both phases: {result['originals']} comments, {result['copies']} copies)"
        )
        if result["lost_sample"]:
            print(f"          lost e.g. {', '.join(result['lost_sample'])}")
        print(
            f"files     {result['files_uploaded']} uploaded on B, {result['files_mirrored']} copies on A:"
            f" lost {result['files_lost']}  duplicated {result['files_duplicated']}"
        )
        for name, st in stats.items():
            lat, a_b, b_a = st["latency_ms"], st["latency_a_to_b_ms"], st["latency_b_to_a_ms"]
            title = f"paced, {args.rate:g}/s offered" if name == "paced" else "saturation/max throughput"
            print(
                f"latency   {title}: sender commit -> partner commit: p50 {pct(lat, 0.5):.0f} ms  p99 {pct(lat, 0.99):.0f} ms"
                f"  max {max(lat, default=float('nan')):.0f} ms  mean {statistics.fmean(lat) if lat else float('nan'):.0f} ms"
                f"  (A->B p50 {pct(a_b, 0.5):.0f} / p99 {pct(a_b, 0.99):.0f} ms,"
                f" B->A p50 {pct(b_a, 0.5):.0f} / p99 {pct(b_a, 0.99):.0f} ms)"
            )
            print(
                f"throughput {name}: {st['throughput']:.1f} comments/s end to end (first post -> last copy committed,"
                f" {st['span']:.1f} s; {st['copies']} copies, lost {st['lost']}, duplicated {st['duplicated']})"
            )
        rss = {
            "hub_a_mb": r(a.peak_rss_mb()),
            "hub_b_mb": r(b.peak_rss_mb()),
            "bench_mb": r(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        print(
            f"memory    peak RSS hub A {rss['hub_a_mb']} MB, hub B {rss['hub_b_mb']} MB, bench {rss['bench_mb']} MB"
        )
        burst, bl = stats["burst"], printed["burst"]
        lat, a_b, b_a = burst["latency_ms"], burst["latency_a_to_b_ms"], burst["latency_b_to_a_ms"]
        cpu = runs["burst"]["cpu"]
        post_rate = bl["post_rate"]
        figures = {
            "bench": "exchange",
            "engine": engine.lower(),
            "comments": total,
            "posted": bl["posted"],
            "post_errors": len(runs["burst"]["load"].errors),
            "tickets": args.tickets,
            "lost": result["lost"],
            "duplicated": result["duplicated"],
            "stranded": stranded,
            "stranded_held": held,
            "stranded_outbox": undelivered,
            "order_violations": result["order_violations"],
            "streams_out_of_order": result["streams_out_of_order"],
            "misplaced": result["misplaced"],
            "echoes_or_strays": result["echoes_or_strays"],
            "copies_without_original": result["copies_without_original"],
            "settle": runs["burst"]["settled"]["reason"],
            "settle_s": r(runs["burst"]["settled"]["seconds"]),
            "p50_ms": r(pct(lat, 0.5)),
            "p99_ms": r(pct(lat, 0.99)),
            "max_ms": r(max(lat, default=float("nan"))),
            "a_to_b_p50_ms": r(pct(a_b, 0.5)),
            "a_to_b_p99_ms": r(pct(a_b, 0.99)),
            "b_to_a_p50_ms": r(pct(b_a, 0.5)),
            "b_to_a_p99_ms": r(pct(b_a, 0.99)),
            "throughput": r(burst["throughput"]),
            "span_s": r(burst["span"]),
            "burst_lost": burst["lost"],
            "burst_duplicated": burst["duplicated"],
            "burst_hub_a_cpu_share": r(runs["burst"]["cpu_post"]["A"] / runs["burst"]["post_wall"], 2),
            "burst_hub_b_cpu_share": r(runs["burst"]["cpu_post"]["B"] / runs["burst"]["post_wall"], 2),
        }
        if "paced" in stats:
            paced, pl, prun = stats["paced"], printed["paced"], runs["paced"]
            plat = paced["latency_ms"]
            figures |= {
                "paced_comments": paced_total,
                "paced_posted": pl["posted"],
                "paced_post_errors": len(prun["load"].errors),
                "paced_rate": args.rate,
                "paced_post_rate": r(pl["post_rate"], 2),
                "paced_post_p50_ms": r(pct(pl["http_ms"], 0.5)),
                "paced_post_p99_ms": r(pct(pl["http_ms"], 0.99)),
                "paced_lag_p99_ms": r(pct(pl["lag_ms"], 0.99)),
                "paced_files": len(prun["load"].files),
                "paced_lost": paced["lost"],
                "paced_duplicated": paced["duplicated"],
                "paced_p50_ms": r(pct(plat, 0.5)),
                "paced_p99_ms": r(pct(plat, 0.99)),
                "paced_max_ms": r(max(plat, default=float("nan"))),
                "paced_a_to_b_p50_ms": r(pct(paced["latency_a_to_b_ms"], 0.5)),
                "paced_a_to_b_p99_ms": r(pct(paced["latency_a_to_b_ms"], 0.99)),
                "paced_b_to_a_p50_ms": r(pct(paced["latency_b_to_a_ms"], 0.5)),
                "paced_b_to_a_p99_ms": r(pct(paced["latency_b_to_a_ms"], 0.99)),
                "paced_throughput": r(paced["throughput"], 2),
                "paced_span_s": r(paced["span"]),
                "paced_settle": prun["settled"]["reason"],
                "paced_settle_s": r(prun["settled"]["seconds"]),
                "paced_hub_a_cpu_share": r(prun["cpu_post"]["A"] / prun["post_wall"], 2),
                "paced_hub_b_cpu_share": r(prun["cpu_post"]["B"] / prun["post_wall"], 2),
                "paced_cpu_s": {
                    "hub_a": r(prun["cpu"]["A"]),
                    "hub_b": r(prun["cpu"]["B"]),
                    "bench": r(prun["cpu"]["bench"]),
                },
            }
        figures |= {
            "generator": {
                "connections": clients,
                "post_rate": r(post_rate),
                "post_p50_ms": r(pct(bl["http_ms"], 0.5)),
                "post_p99_ms": r(pct(bl["http_ms"], 0.99)),
                "health_rps": r(capacity["rps"]),
                "post_rate_vs_health": r(post_rate / capacity["rps"], 4),
                "httpx_health_rps": r(flood["rps"]),
                "httpx_health_p50_ms": r(flood["p50_ms"], 2),
                "httpx_health_p99_ms": r(flood["p99_ms"], 2),
                "httpx_bench_cpu_share": r(flood["bench_cpu_share"], 2),
            },
            "files": {
                "uploaded": result["files_uploaded"],
                "upload_errors": sum(len(x.file_errors) for x in loads),
                "mib": r(sum(f[2] for x in loads for f in x.files) / MiB),
                "mirrored": result["files_mirrored"],
                "lost": result["files_lost"],
                "duplicated": result["files_duplicated"],
            },
            "floors": {
                "health_p50_ms": r(pct(rtt, 0.5), 2),
                "health_p99_ms": r(pct(rtt, 0.99), 2),
                "health_rps": r(capacity["rps"]),
                "health_load_p50_ms": r(capacity["p50_ms"], 2),
                "health_load_p99_ms": r(capacity["p99_ms"], 2),
                "health_hub_cpu_share": r(capacity["hub_cpu_share"], 2),
                "health_bench_cpu_share": r(capacity["bench_cpu_share"], 2),
                "store_tps": r(sender["tps"]),
                "store_p50_ms": r(sender["p50_ms"], 2),
                "store_p99_ms": r(sender["p99_ms"], 2),
            },
            "cpu_s": {"hub_a": r(cpu["A"]), "hub_b": r(cpu["B"]), "bench": r(cpu["bench"])},
            "rss": rss,
        }
        paced_p99 = figures.get("paced_p99_ms", float("nan"))
        sustained = burst["throughput"]
        print(
            f"ratios    sustained copies/s to bare {ratio(sustained, bare['per_s']):.3f}, to inbound store floor"
            f" {ratio(sustained, inbound['per_s']):.2f}, to sender store floor {ratio(sustained, sender['tps']):.2f}"
        )
        load_end = load_average()
        print(f"load average at end: {' '.join(map(str, load_end))}")
        # The paced phase counts only if the generator offered about its rate (each connection
        # posts one comment at a time, so slow answers hold the posting back; a short phase's
        # rate also counts the last answer's time, hence 80%).
        at_50 = "paced" in stats and args.rate >= 50 and printed["paced"]["post_rate"] >= 0.8 * args.rate
        figures |= {
            "load_avg_start": load_start,
            "load_avg_end": load_end,
            "private_copy_p99_ms": paced_p99,
            "private_copy_rate_per_s": args.rate,
            "sustained_per_s": r(sustained),
            "generator_ceiling_per_s": r(ceiling["per_s"]),
            "bare_per_s": r(bare["per_s"]),
            "store_floor_per_s": r(inbound["per_s"]),
            "sender_store_floor_per_s": r(sender["tps"]),
            "ratio_sustained_to_bare": r(ratio(sustained, bare["per_s"]), 3),
            "ratio_sustained_to_store_floor": r(ratio(sustained, inbound["per_s"]), 3),
        }
        figures["rss"]["bare_mb"] = r(bare["rss_mb"])
        figures["aims"] = print_aims(
            {
                "private_copy_p99_under_150ms_at_50": (
                    f"partner comment -> private copy p99 < 150 ms at 50/s (offered {args.rate:g}/s, posted"
                    f" {printed.get('paced', {}).get('post_rate', 0):.1f}/s)",
                    at_50 and paced_p99 < 150 and stats["paced"]["lost"] == 0,
                ),
                "sustained_at_least_300": (
                    ">= 300 comments/s sustained, none lost or duplicated",
                    sustained >= 300 and result["lost"] == 0 and result["duplicated"] == 0,
                ),
            }
        )
        if sampler is not None:
            figures["profile"] = {name: run["profile"] for name, run in runs.items()}
        print(json.dumps(figures))
        return figures
    finally:
        if sampler is not None:
            await sampler.close()
        await bench.http.aclose()
        for s in bench.store.values():
            await s.close()
        a.stop()
        b.stop()
        if args.keep:
            print(f"kept {root} (hub logs in Alpha/hub.log, Beta/hub.log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _run(main_: Callable[[argparse.Namespace], Coroutine[Any, Any, Any]]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the comments, files and floors")
    parser.add_argument("--comments", type=int, default=1000, help="comments in all, both sides together")
    parser.add_argument("--tickets", type=int, default=10, help="shared tickets the comments are spread over")
    parser.add_argument(
        "--files", type=int, default=30, help="public files (1-3 MiB) uploaded on B's tickets"
    )
    parser.add_argument("--uploaders", type=int, default=3, help="concurrent file uploads (saturation phase)")
    parser.add_argument(
        "--paced",
        type=int,
        default=300,
        help="comments of the paced phase, both sides together (0: no paced phase)",
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="total comments per second of the paced phase (default 50)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of each bare-endpoint / inbound-floor phase"
    )
    parser.add_argument(
        "--paced-files", type=int, default=4, help="public files uploaded during the paced phase"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample pg_stat_activity / pg_locks of both hub databases every 0.5 s while posting, summarised per phase",
    )
    parser.add_argument("--sqlite", action="store_true", help="each hub on its own SQLite file")
    parser.add_argument("--pg-server", default=PG_SERVER, help="PostgreSQL server for the hub databases")
    parser.add_argument("--poll", type=float, default=1.0, help="HUB_OUTBOX_POLL_SECONDS of both hubs")
    parser.add_argument("--settle-timeout", type=float, default=180.0, help="longest wait after the load (s)")
    parser.add_argument("--seed", type=int, default=10, help="random seed of the file sizes")
    parser.add_argument("--keep", action="store_true", help="keep the data directories and hub logs")
    asyncio.run(main_(parser.parse_args()))


if __name__ == "__main__":
    _run(main)
