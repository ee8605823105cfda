"""The ``hub`` command: serve, migrate, worker, alarm-receiver, account create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import msgspec

from hub.settings import Settings, get_settings

__all__ = ["main"]


def _migrate(settings: Settings) -> None:
    from hub.migrate import upgrade

    upgrade(settings.database.url)


async def _check_migrated(settings: Settings) -> None:
    """PostgreSQL is migrated by an operator (``hub migrate``); refuse to serve an old schema."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from hub.db import Database
    from hub.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(settings.database.url))
    heads = set(script.get_heads())
    db = Database(settings.database.url)
    try:
        async with db.engine.connect() as connection:
            current = await connection.run_sync(
                lambda c: set(MigrationContext.configure(c).get_current_heads())
            )
    finally:
        await db.dispose()
    # A branch head another branch depends on (desk_0001 under monitoring_0001) is applied without
    # being listed in alembic_version: compare what the current heads cover, not the lists.
    try:
        applied = {r.revision for r in script.revision_map.iterate_revisions(tuple(current), "base")}
    except Exception:  # a revision this code does not know: the database is ahead of it
        applied = set()
    if not current or heads - applied:
        sys.exit(
            f"The database is not migrated (at {sorted(current)}, need {sorted(heads)}): run `hub migrate`."
        )


def _serving_at(settings: Settings, host: str | None, port: int | None) -> Settings:
    """``--host``/``--port`` win over HUB_HOST/HUB_PORT, and the public URL (links in e-mails,
    pairing keys, the docs line) follows them unless HUB_PUBLIC_URL names it explicitly."""
    host = host or settings.server.host
    port = port or settings.server.port
    public_url = (os.environ.get("HUB_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
    server = msgspec.structs.replace(settings.server, host=host, port=port, public_url=public_url)
    return msgspec.structs.replace(settings, server=server)


def _refuse_workers(settings: Settings, workers: int) -> str | None:
    """Why ``--workers`` cannot run here, if it cannot: several processes need one database they
    can all write (SQLite has one writer) and live events that cross processes (the memory
    channel stays inside one)."""
    if workers < 1:
        return "hub serve: --workers must be at least 1"
    if workers == 1:
        return None
    if settings.database.url.startswith("sqlite"):
        return (
            f"hub serve: --workers {workers} needs PostgreSQL (HUB_DATABASE_URL=postgresql+asyncpg://...): "
            "SQLite has one writer and its live events stay in one process"
        )
    if settings.server.channels_backend == "memory":
        return (
            f"hub serve: --workers {workers} needs live events across processes: "
            "set HUB_CHANNELS_BACKEND=postgres or redis"
        )
    return None


def _serve_in_processes(settings: Settings, workers: int) -> None:
    """``workers`` processes on one port (uvicorn's supervisor). Each builds its own app, settings
    and database pool with ``create_app()`` from the environment, so what the command line
    decided is handed on through it."""
    import uvicorn

    os.environ.update(
        HUB_HOST=settings.server.host,
        HUB_PORT=str(settings.server.port),
        HUB_PUBLIC_URL=settings.server.public_url,
    )
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        workers=workers,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,
    )


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from hub.app import create_app

    settings = _serving_at(get_settings(), args.host, args.port)
    refusal = _refuse_workers(settings, args.workers)
    if refusal:
        sys.exit(refusal)
    if settings.database.url.startswith("sqlite"):
        _migrate(settings)
    else:
        asyncio.run(_check_migrated(settings))
    if args.demo:
        from hub.demo import print_demo, seed_demo

        print_demo(asyncio.run(seed_demo(settings)), settings)
    host, port = settings.server.host, settings.server.port
    processes = f", {args.workers} processes" if args.workers > 1 else ""
    print(
        f"hub listening on http://{host}:{port}{processes}  (API docs: {settings.server.public_url}/docs)",
        flush=True,
    )
    if args.workers > 1:
        _serve_in_processes(settings, args.workers)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)


def cmd_migrate(_: argparse.Namespace) -> None:
    settings = get_settings()
    _migrate(settings)
    print("database migrated")


def cmd_worker(_: argparse.Namespace) -> None:
    import httpx

    from hub.db import Database
    from hub.jobs import JobContext, registered_jobs, run_jobs
    from hub.live import build_live
    from hub.logging import configure_logging
    from hub.wiring import wire

    settings = get_settings()
    configure_logging()
    wire()

    async def run() -> None:
        db = Database(settings.database.url)
        # Jobs publish live events too (e.g. a stale call ended): they are logged with their ids
        # just after each commit, and sent to the channels backend, as in `hub serve`.
        live = build_live(settings, db)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
            try:
                await run_jobs(JobContext(db=db, settings=settings, http=http), registered_jobs(), stop)
            finally:
                await live.stop()
                await db.dispose()

    print(f"hub worker running jobs: {', '.join(job.name for job in registered_jobs())}", flush=True)
    asyncio.run(run())


def _alarm_settings_from(args: argparse.Namespace, settings: Settings) -> Settings:
    """``--host``/``--tcp-port``/``--udp-port`` win over HUB_ALARM_HOST/_TCP_PORT/_UDP_PORT."""
    given = {
        name: value
        for name, value in (("host", args.host), ("tcp_port", args.tcp_port), ("udp_port", args.udp_port))
        if value is not None
    }
    return msgspec.structs.replace(settings, alarm=msgspec.structs.replace(settings.alarm, **given))


def cmd_alarm_receiver(args: argparse.Namespace) -> None:
    """The DC-09 receiver on its own (MON-8), with the intake worker that applies what it stores
    unless ``--no-worker`` (then ``hub serve`` or ``hub worker`` applies it)."""
    import httpx

    from hub.db import Database
    from hub.intake import INTAKE_JOB
    from hub.jobs import JobContext, registered_jobs, run_jobs
    from hub.logging import configure_logging
    from hub.monitoring.alarm.receiver import AlarmReceiver
    from hub.monitoring.alarm.server import start_server
    from hub.wiring import wire

    settings = _alarm_settings_from(args, get_settings())
    if settings.database.url.startswith("sqlite"):
        _migrate(settings)
    else:
        asyncio.run(_check_migrated(settings))
    configure_logging()
    wire()
    jobs = [] if args.no_worker else [job for job in registered_jobs() if job.name == INTAKE_JOB]

    async def run() -> None:
        db = Database(settings.database.url, pool_size=settings.database.pool_size)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await start_server(AlarmReceiver(db, settings.alarm))
        tcp = f"tcp {server.tcp_port}" if server.tcp else "no tcp"
        udp = f"udp {server.udp_port}" if server.udp else "no udp"
        print(f"hub alarm receiver on {settings.alarm.host}: {tcp}, {udp}", flush=True)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
            try:
                if jobs:
                    await run_jobs(JobContext(db=db, settings=settings, http=http), jobs, stop)
                else:
                    await stop.wait()
            finally:
                await server.close()
                await db.dispose()

    try:  # the event loop uvicorn uses for `hub serve` when it is installed: faster sockets
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())


def cmd_account_create(args: argparse.Namespace) -> None:
    from hub.accounts.schemas import EmployeeCreate
    from hub.accounts.service import create_account, create_employee
    from hub.db import Database
    from hub.errors import HubError

    settings = get_settings()
    if settings.database.url.startswith("sqlite"):
        _migrate(settings)

    async def run() -> None:
        db = Database(settings.database.url)
        try:
            async with db.sessionmaker() as session, session.begin():
                account = await create_account(
                    session,
                    name=args.name,
                    slug=args.slug,
                    default_region=args.region,
                    currency=args.currency,
                )
                await create_employee(
                    session,
                    account.id,
                    # convert, not the constructor: it checks the e-mail and password rules.
                    msgspec.convert(
                        {
                            "name": args.admin_name,
                            "email": args.admin_email,
                            "role": "administrator",
                            "password": args.admin_password,
                        },
                        EmployeeCreate,
                    ),
                    log2_n=settings.security.password_log2_n,
                )
        finally:
            await db.dispose()
        print(f"account {args.slug!r} created; administrator {args.admin_email} can sign in")

    try:
        asyncio.run(run())
    except (HubError, msgspec.ValidationError) as exc:  # an existing slug, a bad e-mail or password
        sys.exit(f"hub account create: {exc}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub", description="Service-desk partner-exchange and integration hub"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server (migrates the embedded SQLite first)")
    serve.add_argument("--demo", action="store_true", help="seed demo accounts and print their credentials")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP processes on the one port (more than 1 needs PostgreSQL and HUB_CHANNELS_BACKEND "
        "postgres or redis)",
    )
    serve.set_defaults(func=cmd_serve)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    commands.add_parser("worker", help="run background jobs (outbox, sweepers) without HTTP").set_defaults(
        func=cmd_worker
    )

    alarm = commands.add_parser(
        "alarm-receiver", help="run the SIA DC-09 alarm receiver (TCP and UDP) and the intake worker"
    )
    alarm.add_argument("--host")
    alarm.add_argument("--tcp-port", type=int, help="0: no TCP listener")
    alarm.add_argument("--udp-port", type=int, help="0: no UDP listener")
    alarm.add_argument(
        "--no-worker",
        action="store_true",
        help="store and acknowledge only; `hub serve`/`hub worker` applies",
    )
    alarm.set_defaults(func=cmd_alarm_receiver)

    account = commands.add_parser("account", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = account.add_parser("create", help="create an account with its first administrator")
    create.add_argument("--name", required=True)
    create.add_argument("--slug", required=True)
    create.add_argument("--admin-name", default="Administrator")
    create.add_argument("--admin-email", required=True)
    create.add_argument("--admin-password", required=True)
    create.add_argument("--region", default="RU")
    create.add_argument("--currency", default="RUB")
    create.set_defaults(func=cmd_account_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        args.func(args)


if __name__ == "__main__":
    main()
