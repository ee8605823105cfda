"""Alarm receiver benchmark (MON-8, issue 14).

``hub alarm-receiver --no-worker`` runs in its own process on a fresh database with 1,000 panels
(one object each). This process plays the panels:

1. TCP, closed loop: 1,000 connections, each sending its next frame as soon as the last was
   acknowledged, for ``--seconds``: messages/s stored and ACKed, ACK latency.
2. TCP, open loop at ``--rate`` messages/s (default 1,000) over the same connections: ACK p50/p99
   from each message's scheduled moment.
3. UDP, closed loop with ``--udp-senders`` sockets: messages/s and latency.
4. The floor: the same generator against a bare asyncio TCP server in its own process that
   answers every frame (up to CR) with a fixed ACK: what the generator and the loopback allow.
5. The worker: the backlog the runs stored, applied by the intake worker (events/s).

Every message is a distinct Contact ID periodic test (its own sequence and timestamp), so each is
a new row, never a duplicate. Ends with one JSON line of the figures.

    .venv/bin/python -m bench.alarm                 # SQLite
    .venv/bin/python -m bench.alarm --pg            # a private PostgreSQL database
    .venv/bin/python -m bench.alarm --seconds 3     # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from bench._floors import (
    closed_loop,
    fmt_ms,
    open_loop,
    pct,
    peak_rss_mb,
    self_peak_rss_mb,
    stop_process,
    wait_port,
)
from hub.db import Database
from hub.devkit import TEST_SECRET, free_port, make_settings, make_tenant
from hub.intake.models import IntakeEvent
from hub.intake.worker import drain_intake
from hub.jobs import JobContext
from hub.monitoring.alarm.models import AlarmAccount
from hub.monitoring.alarm.panel import Panel
from hub.people.models import ServiceObject
from hub.wiring import wire

FIGURES: dict[str, Any] = {"bench": "alarm"}
ACK = b'\n1B5C0014"ACK"0001L0#1234[]\r'


# --- the floor: a bare asyncio TCP server ---------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r"):
            writer.write(ACK)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def _echo_server(port: int) -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


# --- panels -----------------------------------------------------------------------------------


class _Link:
    """One panel's TCP connection: one frame at a time, as a panel waits for its ACK."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)

    async def send(self) -> bool:
        assert self.reader is not None and self.writer is not None
        async with self.lock:
            self.writer.write(self.panel.contact_id(1, "602"))
            reply = await asyncio.wait_for(self.reader.readuntil(b"\r"), 30)
        return b'"ACK"' in reply or b'"*ACK"' in reply

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | None, int]) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)


async def _udp_senders(port: int, panels: list[Panel]) -> list[Any]:
    loop = asyncio.get_running_loop()
    senders = []
    for panel in panels:
        transport, protocol = await loop.create_datagram_endpoint(_Datagram, remote_addr=("127.0.0.1", port))
        senders.append((panel, transport, protocol))
    return senders


async def _udp_send(sender: Any) -> bool:
    panel, transport, protocol = sender
    protocol.waiting = asyncio.get_running_loop().create_future()
    transport.sendto(panel.contact_id(1, "602"))
    try:
        reply = await asyncio.wait_for(protocol.waiting, 5)
    except TimeoutError:
        return False
    return b'"ACK"' in reply


# --- set-up -----------------------------------------------------------------------------------


async def _panels(db: Database, account_id: int, count: int) -> list[Panel]:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            insert(ServiceObject),
            [
                {"account_id": account_id, "number": f"B{i:05d}", "name": f"Bench object {i}"}
                for i in range(count)
            ],
        )
        objects = list(await session.scalars(select(ServiceObject.id).order_by(ServiceObject.id)))
        await session.execute(
            insert(AlarmAccount),
            [
                {
                    "account_id": account_id,
                    "object_id": object_id,
                    "number": f"{i + 0x1000:X}",
                    "receiver": "",
                    "line": "",
                }
                for i, object_id in enumerate(objects)
            ],
        )
    return [Panel(f"{i + 0x1000:X}") for i in range(count)]


def _start_receiver(url: str, data_dir: Path, tcp: int, udp: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env |= {"HUB_DATABASE_URL": url, "HUB_SECRET_KEY": TEST_SECRET, "HUB_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "alarm-receiver",
            "--no-worker",
            "--tcp-port",
            str(tcp),
            "--udp-port",
            str(udp),
        ],
        env=env | {"HUB_ALARM_MAX_CONNECTIONS": "5000"},
        stdout=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )


async def _tcp_runs(name: str, port: int, panels: list[Panel], seconds: float, rate: float) -> None:
    links = [_Link(panel) for panel in panels]
    await asyncio.gather(*(link.open(port) for link in links))
    latencies: list[float] = []

    async def timed(i: int) -> bool:
        started = time.perf_counter()
        ok = await links[i % len(links)].send()
        latencies.append((time.perf_counter() - started) * 1000)
        return ok

    closed = await closed_loop(timed, 10**9, seconds, len(links))
    print(
        f"  {name}: TCP closed loop, {len(links)} connections: {closed.per_s:8.0f} msg/s  {fmt_ms(latencies)}"
    )
    opened = await open_loop(lambda i: links[i % len(links)].send(), int(rate * seconds), rate)
    print(f"  {name}: TCP open loop at {rate:.0f}/s: {opened.per_s:8.0f} msg/s  {fmt_ms(opened.latencies)}")
    FIGURES[f"{name}_tcp_msgs_per_s"] = round(closed.per_s)
    FIGURES[f"{name}_tcp_failed"] = closed.failed + opened.failed
    FIGURES[f"{name}_tcp_closed_p50_ms"] = round(pct(latencies, 0.5), 2)
    FIGURES[f"{name}_tcp_closed_p99_ms"] = round(pct(latencies, 0.99), 2)
    FIGURES[f"{name}_ack_p50_ms_at_rate"] = round(pct(opened.latencies, 0.5), 2)
    FIGURES[f"{name}_ack_p99_ms_at_rate"] = round(pct(opened.latencies, 0.99), 2)
    for link in links:
        link.close()


async def _udp_run(port: int, panels: list[Panel], seconds: float) -> None:
    senders = await _udp_senders(port, panels)
    latencies: list[float] = []

    async def timed(i: int) -> bool:
        started = time.perf_counter()
        ok = await _udp_send(senders[i % len(senders)])
        latencies.append((time.perf_counter() - started) * 1000)
        return ok

    run = await closed_loop(timed, 10**9, seconds, len(senders))
    print(
        f"  hub: UDP closed loop, {len(senders)} sockets: {run.per_s:8.0f} msg/s  {fmt_ms(latencies)}  lost {run.failed}"
    )
    FIGURES["hub_udp_msgs_per_s"] = round(run.per_s)
    FIGURES["hub_udp_p99_ms"] = round(pct(latencies, 0.99), 2)
    FIGURES["hub_udp_lost"] = run.failed
    for _, transport, _ in senders:
        transport.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="open-loop rate, messages/s (default 1000)"
    )
    parser.add_argument("--udp-senders", type=int, default=200)
    parser.add_argument("--pg", action="store_true", help="a private PostgreSQL database instead of SQLite")
    args = parser.parse_args()
    wire()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alarm-"))
    if args.pg:
        from hub.devkit import fresh_database, private_pg_url

        url = private_pg_url("hub_bench_alarm")
        await fresh_database(url)
    else:
        from hub.migrate import upgrade

        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
    settings = make_settings(url, tmp / "data")
    db = Database(url)
    tenant = await make_tenant(db, settings, "Bench Security")
    panels = await _panels(db, tenant.id, args.connections)
    FIGURES.update(database="postgresql" if args.pg else "sqlite", connections=args.connections)
    print(f"database: {FIGURES['database']}; {args.connections} panels, runs of {args.seconds:.0f} s")

    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.alarm", "echo", str(echo_port)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    tcp_port, udp_port = free_port(), free_port()
    receiver = _start_receiver(url, tmp / "data", tcp_port, udp_port)
    try:
        await wait_port(echo_port)
        await _tcp_runs("floor", echo_port, panels, args.seconds, args.rate)
        await wait_port(tcp_port, 60)
        await _tcp_runs("hub", tcp_port, panels, args.seconds, args.rate)
        await _udp_run(udp_port, panels[: args.udp_senders], args.seconds)
        FIGURES["hub_peak_rss_mb"] = round(peak_rss_mb(receiver.pid), 1)
    finally:
        stop_process(receiver)
        stop_process(echo)
    async with db.sessionmaker() as session:
        stored = int(await session.scalar(select(func.count()).select_from(IntakeEvent)) or 0)
    started = time.perf_counter()
    async with httpx.AsyncClient() as http:
        applied = await drain_intake(JobContext(db=db, settings=settings, http=http), max_rounds=10**6)
    apply_s = time.perf_counter() - started
    print(
        f"  hub: stored {stored:,} messages; the intake worker applied {applied:,} in {apply_s:.1f} s ({applied / apply_s:.0f}/s)"
    )
    FIGURES.update(
        stored=stored, applied_per_s=round(applied / apply_s), bench_peak_rss_mb=round(self_peak_rss_mb(), 1)
    )
    await db.dispose()
    print(f"receiver peak RSS {FIGURES['hub_peak_rss_mb']} MB")
    print(json.dumps(FIGURES), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["echo"]:
        asyncio.run(_echo_server(int(sys.argv[2])))
    else:
        asyncio.run(main())
