"""Outbox claim benchmark (issue 11, item 8): how a backlog of due messages is claimed and drained.

For each backlog size (default 1,500 and 10,000 due messages, on top of ``--history`` delivered
ones, a fifth of them sharing ordering keys) on a fresh PostgreSQL database it

* prints the claim query's plan (EXPLAIN ANALYZE, as the worker runs it) and whether it sorts rows
  (a ``Sort`` node), with its execution time;
* claims the whole backlog batch by batch, as the worker does (each claim its own transaction):
  p50/p99 ms per claim;
* on the backlog made anew, drains it with the real worker (``drain_outbox``) through a no-op
  handler (the far side answers at once): messages/s.

By default the statistics are those of the table before the burst (as autovacuum leaves them
when the outbox is quiet); ``--analyze`` takes fresh ones first.

It ends with one JSON line holding every figure it printed.

    .venv/bin/python -m bench.outbox                     # 1,500 and 10,000
    .venv/bin/python -m bench.outbox --backlog 1500 --analyze

Needs the local PostgreSQL (127.0.0.1:5432); the database ``--database`` is dropped and made anew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from bench._hubs import PG_SERVER, SECRET, fresh_database
from hub.db import Database, utcnow
from hub.jobs import JobContext
from hub.outbox.handlers import DeliveryContext, MessageView, outbox_handler
from hub.outbox.models import OutboxMessage
from hub.outbox.worker import _candidates, _claim, drain_outbox, read_in_index_order
from hub.settings import (
    DatabaseSettings,
    FileSettings,
    OutboxSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
)

TOPIC = "bench.noop"


@outbox_handler(TOPIC)
async def _no_op(_ctx: DeliveryContext, _message: MessageView) -> None:
    """The far side that accepts every message at once."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fill(db: Database, due: int, history: int, keys: int, analyze: bool) -> None:
    """``history`` delivered messages, then ``due`` pending ones (every fifth keyed, ``keys`` keys)."""
    columns = "topic, payload, idempotency_key, ordering_key, status, attempts, next_attempt_at, created_at"
    rows = """
        SELECT :topic, '{}'::json, :prefix || n, CASE WHEN n % 5 = 0 THEN 'key-' || (n % :keys) END,
               :status, 0, now() - interval '1 minute', now()
        FROM generate_series(1, :count) AS n"""
    async with db.sessionmaker() as session, session.begin():
        for prefix, status, count in (("h-", "delivered", history), ("d-", "pending", due)):
            await session.execute(
                text(f"INSERT INTO outbox_messages ({columns}) {rows}"),
                {"topic": TOPIC, "prefix": prefix, "keys": keys, "status": status, "count": count},
            )
    if analyze:  # else the planner sees the table as autovacuum left it (a burst outruns it)
        async with db.engine.begin() as connection:
            await connection.execute(text("ANALYZE outbox_messages"))


async def time_claims(ctx: JobContext) -> list[float]:
    """Claim the whole backlog batch by batch (each claim committed, as the worker does): ms each."""
    times: list[float] = []
    while True:
        started = time.perf_counter()
        async with ctx.db.sessionmaker() as session, session.begin():
            _, claimed = await _claim(session, ctx.settings.outbox, utcnow())
        if not claimed:
            return times
        times.append((time.perf_counter() - started) * 1000)


async def claim_plan(ctx: JobContext) -> list[str]:
    query = _candidates(utcnow(), ctx.settings.outbox.batch_size).with_for_update(
        skip_locked=True, of=OutboxMessage
    )
    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    async with ctx.db.sessionmaker() as session:
        await session.begin()
        await read_in_index_order(session)  # as the worker's claim does
        rows = await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))
        plan = [row[0] for row in rows]
        await session.rollback()  # EXPLAIN ANALYZE took the row locks
    return plan


def _settings(url: str) -> Settings:
    return Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="bench-outbox-")),
        database=DatabaseSettings(url=url),
        server=ServerSettings(),
        files=FileSettings(),
        security=SecuritySettings(secret_key=SECRET),
    )


async def with_backlog(url: str, due: int, args: argparse.Namespace, work: Any) -> Any:
    """``work(ctx)`` on a fresh database holding the backlog."""
    await fresh_database(url)
    db = Database(url)
    try:
        await fill(db, due, args.history, args.keys, args.analyze)
        async with httpx.AsyncClient() as http:
            return await work(JobContext(db, _settings(url), http))
    finally:
        await db.dispose()


async def drain(ctx: JobContext) -> tuple[int, float]:
    started = time.perf_counter()
    drained = await drain_outbox(ctx, max_rounds=1_000_000)
    return drained, time.perf_counter() - started


async def one_backlog(url: str, due: int, args: argparse.Namespace) -> dict[str, Any]:
    async def plan_and_claims(ctx: JobContext) -> tuple[list[str], list[float]]:
        return await claim_plan(ctx), await time_claims(ctx)

    plan, claims = await with_backlog(url, due, args, plan_and_claims)
    drained, seconds = await with_backlog(url, due, args, drain)
    sorts = [line for line in plan if re.search(r"(^|->\s+)Sort\s+\(", line.strip())]
    executed = [float(m.group(1)) for line in plan if (m := re.match(r"Execution Time: ([0-9.]+)", line))]
    stats = "fresh statistics" if args.analyze else "statistics older than the backlog"
    print(f"\nbacklog {due:,} due + {args.history:,} delivered ({args.keys} keys on every fifth), {stats}")
    print("  claim plan:\n    " + "\n    ".join(plan))
    figures = {
        "backlog": due,
        "analyzed": args.analyze,
        "claim_query_ms": executed[0] if executed else None,
        "plan_sorts": len(sorts),
        "claims": len(claims),
        "claim_p50_ms": round(statistics.median(claims), 2),
        "claim_p99_ms": round(pct(claims, 0.99), 2),
        "drained": drained,
        "drain_per_s": round(drained / seconds, 1),
    }
    print(
        f"  candidates query (EXPLAIN ANALYZE): {figures['claim_query_ms']} ms; Sort nodes: {len(sorts)}\n"
        f"  claiming it all, {len(claims)} claims of up to {OutboxSettings().batch_size}: "
        f"p50 {figures['claim_p50_ms']} ms, p99 {figures['claim_p99_ms']} ms per claim"
    )
    print(f"  drained {drained:,} in {seconds:.2f} s: {figures['drain_per_s']:,} messages/s (no-op far side)")
    return figures


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = f"{args.pg_server}/{args.database}"
    return {"bench": "outbox", "runs": [await one_backlog(url, due, args) for due in args.backlog]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, nargs="+", default=[1500, 10_000])
    parser.add_argument("--history", type=int, default=20_000, help="delivered messages already in the table")
    parser.add_argument("--keys", type=int, default=50, help="ordering keys shared by every fifth message")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE after filling (default: statistics of the empty table, as in a burst)",
    )
    parser.add_argument("--pg-server", default=PG_SERVER)
    parser.add_argument("--database", default="bench_outbox")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result))
