"""Payments benchmark (issue 5): signed provider callbacks for distinct invoices, verified and
applied by one hub process on PostgreSQL, next to a bare Litestar endpoint receiving the same
bodies in the same run.

For each target it measures

* sustained throughput: ``--concurrency`` clients posting as fast as they can for ``--duration``
  seconds (each callback a distinct invoice, so each one is verified, stored and applied);
* latency at a fixed open-loop rate (``--rate``, default 500/s) for ``--duration`` seconds: p50/p99;

then checks in the database that every hub callback was applied exactly once, and prints peak RSS.

    .venv/bin/python -m bench.payments                          # 10 s phases, Stripe signatures
    .venv/bin/python -m bench.payments --scale 0.2 --duration 3 # quick check
    .venv/bin/python -m bench.payments --provider tbank         # T-Bank Token (SHA-256) instead

Aim (issue 5): at least 1,500 callbacks/s sustained and p99 under 20 ms at 500/s.
Needs the local PostgreSQL (127.0.0.1:5432, or the server of HUB_TEST_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, post
from sqlalchemy import func, select

from hub.connectors.payments import stripe, tbank
from hub.db import Database
from hub.payments.models import CallbackAttempt, Invoice, PaymentAccount
from tests.conftest import make_settings, make_tenant
from tests.telephony.hubproc import HubProcess, fresh_database, private_pg_url
from tests.telephony.server import free_port

DB_NAME = "hub_bench_payments"
STRIPE_SECRET = "whsec_bench_endpoint_secret"
TBANK = {"terminal_key": "1234567890DEMO", "password": "bench-password"}


@post("/callback", status_code=200, exclude_from_auth=True)
async def bare_callback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The baseline: a bare Litestar endpoint that reads the same body and answers."""
    await request.body()
    return {"received": True}


bare_app = Litestar([bare_callback])


class Conn:
    """A minimal HTTP/1.1 keep-alive client: httpx itself would be the bottleneck at these rates."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        try:
            status_line = await self.reader.readline()
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await self.reader.readexactly(length)
            return int(status_line.split()[1])
        except (ConnectionError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.close()
            return 599

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.idle: list[Conn] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        conn = self.idle.pop() if self.idle else Conn(self.host, self.port)
        status = await conn.post(path, body, headers)
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def fmt(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms  "
        f"mean {statistics.fmean(values) if values else float('nan'):6.2f} ms  n={len(values)}"
    )


async def seed(url: str, workdir: Path, provider: str, invoices: int, tickets: int) -> tuple[str, list[str]]:
    """A tenant with a payment account, ``tickets`` tickets and ``invoices`` issued invoices."""
    from hub.desk.actors import Actor
    from hub.desk.schemas import TicketCreate
    from hub.desk.service import create_ticket

    db = Database(url)
    tenant = await make_tenant(db, make_settings(url, workdir / "seed"), "Bench Property")
    credentials = (
        {"secret_key": "sk_test_bench", "webhook_secret": STRIPE_SECRET} if provider == "stripe" else TBANK
    )
    refs = [f"inv-b{i}" for i in range(invoices)]
    async with db.sessionmaker() as session, session.begin():
        account = PaymentAccount(
            account_id=tenant.id,
            provider=provider,
            name="bench",
            active=True,
            is_default=True,
            credentials=credentials,
            webhook_key=f"bench-{provider}",
            allowed_networks=[],
            reconcile_after_seconds=86400,
        )
        session.add(account)
        await session.flush()
        actor = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
        ticket_ids = [
            (await create_ticket(session, tenant.id, actor, TicketCreate(title=f"Bench ticket {i}"))).id
            for i in range(tickets)
        ]
        for i, ref in enumerate(refs):
            session.add(
                Invoice(
                    account_id=tenant.id,
                    ticket_id=ticket_ids[i % tickets],
                    status="issued",
                    currency="RUB",
                    total=Decimal("1500"),
                    paid_amount=Decimal(0),
                    refunded_amount=Decimal(0),
                    reserved_amount=Decimal(0),
                    payment_account_id=account.id,
                    provider=provider,
                    payment_ref=ref,
                    provider_payment_id=f"pay-{ref}",
                    issue_count=1,
                )
            )
            if i % 5000 == 4999:
                await session.flush()
    await db.dispose()
    return f"/api/webhooks/payments/{provider}/bench-{provider}", refs


def signer(provider: str) -> Callable[[str], tuple[bytes, dict[str, str]]]:
    def stripe_callback(ref: str) -> tuple[bytes, dict[str, str]]:
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
        body = json.dumps(
            {
                "id": f"evt_{ref}",
                "object": "event",
                "type": "checkout.session.completed",
                "created": int(time.time()),
                "livemode": False,
                "data": {"object": session},
            }
        ).encode()
        return body, {
            "content-type": "application/json",
            "Stripe-Signature": stripe.sign(body, STRIPE_SECRET, int(time.time())),
        }

    def tbank_callback(ref: str) -> tuple[bytes, dict[str, str]]:
        fields: dict[str, Any] = {
            "TerminalKey": TBANK["terminal_key"],
            "OrderId": ref,
            "Success": True,
            "Status": "CONFIRMED",
            "PaymentId": f"pay-{ref}",
            "ErrorCode": "0",
            "Amount": 150000,
            "Pan": "430000******0777",
        }
        fields["Token"] = tbank.token(fields, TBANK["password"])
        return json.dumps(fields).encode(), {"content-type": "application/json"}

    return stripe_callback if provider == "stripe" else tbank_callback


async def saturate(
    http: Pool,
    path: str,
    refs: list[str],
    sign: Callable[[str], tuple[bytes, dict[str, str]]],
    duration: float,
    concurrency: int,
) -> tuple[float, int, int]:
    """Closed loop: ``concurrency`` senders for ``duration`` s. Returns (per second, ok, failed)."""
    pending = iter(refs)
    ok = failed = 0
    deadline = time.perf_counter() + duration

    async def sender() -> None:
        nonlocal ok, failed
        while time.perf_counter() < deadline:
            ref = next(pending, None)
            if ref is None:
                return
            body, headers = sign(ref)
            status = await http.post(path, body, headers)
            if status < 300:
                ok += 1
            else:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return (ok + failed) / (time.perf_counter() - start), ok, failed


async def at_rate(
    http: Pool,
    path: str,
    refs: list[str],
    sign: Callable[[str], tuple[bytes, dict[str, str]]],
    rate: float,
    duration: float,
) -> tuple[list[float], int]:
    """Open loop at ``rate``/s: each request starts on schedule whatever the others do."""
    latencies: list[float] = []
    failed = 0
    count = min(len(refs), int(rate * duration))

    async def one(ref: str) -> None:
        nonlocal failed
        body, headers = sign(ref)
        started = time.perf_counter()
        status = await http.post(path, body, headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if status >= 300:
            failed += 1

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(refs[i])))
    await asyncio.gather(*tasks)
    return latencies, failed


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def wait_up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(150):
            try:
                await http.post("/callback", content=b"{}")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise TimeoutError(base)


async def run_phases(
    base: str, path: str, refs: list[str], sign: Any, args: argparse.Namespace
) -> dict[str, Any]:
    http = Pool(base)
    try:
        warm = refs[:200]
        _, warm_ok, warm_failed = await saturate(http, path, warm, sign, 2.0, 16)
        rest = refs[len(warm) :]
        throughput, ok, failed = await saturate(http, path, rest, sign, args.duration, args.concurrency)
        used = ok + failed
        latencies, late_failed = await at_rate(http, path, rest[used:], sign, args.rate, args.duration)
    finally:
        http.close()
    return {
        "throughput": throughput,
        "ok": ok,
        "failed": failed + late_failed,
        "latencies": latencies,
        "sent": warm_ok + warm_failed + used + len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the default invoice count (40,000)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="callbacks per second in the latency phase")
    parser.add_argument("--concurrency", type=int, default=32, help="senders in the throughput phase")
    parser.add_argument("--provider", choices=("stripe", "tbank"), default="stripe")
    args = parser.parse_args()
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    invoices = max(2000, int(40_000 * args.scale))
    tickets = max(50, min(2000, invoices // 4))
    url = private_pg_url(DB_NAME)
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-pay-"))
    print(
        f"# payments bench: {args.provider} callbacks, {invoices:,} issued invoices on {tickets:,} tickets, "
        f"phases of {args.duration:g} s, latency at {args.rate:g}/s"
    )
    await fresh_database(url)
    t0 = time.perf_counter()
    path, refs = await seed(url, workdir, args.provider, invoices, tickets)
    print(f"seeded in {time.perf_counter() - t0:.1f} s")
    sign = signer(args.provider)

    port = free_port()
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.payments:bare_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
    )
    try:
        await wait_up(f"http://127.0.0.1:{port}")
        # The bare endpoint applies nothing, so the same bodies may be sent again: it outruns the
        # invoice count in the throughput phase and must still have bodies left for the latency phase.
        baseline = await run_phases(f"http://127.0.0.1:{port}", "/callback", refs * 10, sign, args)
        bare_rss = peak_rss_mb(bare.pid)
    finally:
        bare.terminate()
        bare.wait()

    hub = HubProcess(url, workdir / "hub")
    try:
        await hub.wait_ready()
        measured = await run_phases(hub.base_url, path, refs, sign, args)
        hub_rss = peak_rss_mb(hub.process.pid)
    finally:
        hub.stop()

    db = Database(url)
    async with db.sessionmaker() as session:
        paid = await session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "paid"))
        applied = await session.scalar(
            select(func.count()).select_from(CallbackAttempt).where(CallbackAttempt.outcome == "applied")
        )
    await db.dispose()

    print(
        f"baseline bare Litestar endpoint:  {baseline['throughput']:7.0f} req/s sustained; at {args.rate:g}/s "
        f"{fmt(baseline['latencies'])}; peak RSS {bare_rss:.0f} MB"
    )
    print(
        f"hub verified + applied callbacks: {measured['throughput']:7.0f} callbacks/s sustained; at {args.rate:g}/s "
        f"{fmt(measured['latencies'])}; peak RSS {hub_rss:.0f} MB"
    )
    print(
        f"    hub answers: {measured['sent']} sent, {measured['failed']} failed; in the database: "
        f"{paid} invoices paid, {applied} callbacks applied (must equal sent)"
    )
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("aims: >= 1,500 callbacks/s sustained; p99 < 20 ms at 500/s")


if __name__ == "__main__":
    asyncio.run(main())
