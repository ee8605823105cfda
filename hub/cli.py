"""The ``hub`` command: serve, migrate, worker, alarm-receiver, account create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from hub import __version__
from hub.settings import Settings, check_port, get_settings
from hub.startup import StartupError, explain

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
    port = check_port(port, "--port") if port is not None else settings.server.port
    public_url = (os.environ.get("HUB_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
    server = msgspec.structs.replace(settings.server, host=host, port=port, public_url=public_url)
    return msgspec.structs.replace(settings, server=server)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says "listening" (as uvicorn binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{host}:{port} is already in use (another hub or program listens there): "
                "stop it or choose another port with --port or HUB_PORT"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port} ({exc.strerror}): check --host/HUB_HOST and --port/HUB_PORT"
        ) from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, settings: Settings, workers: int) -> Any:
    """No proxy-headers middleware of uvicorn's own: it would trust X-Forwarded-For from loopback
    and rewrite the client address before the hub sees it. HUB_TRUSTED_PROXIES
    (hub.webhooks.payments.client_address) is the only rule for who may name a client address."""
    import uvicorn

    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,  # the hub logs each request itself (hub.access_log)
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
    )


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


def _serve_in_processes(settings: Settings, workers: int, sock: socket.socket) -> None:
    """``workers`` processes on one port (uvicorn's supervisor). Each builds its own app, settings
    and database pool with ``create_app()`` from the environment, so what the command line
    decided is handed on through it."""
    from uvicorn.supervisors import Multiprocess

    os.environ.update(
        HUB_HOST=settings.server.host,
        HUB_PORT=str(settings.server.port),
        HUB_PUBLIC_URL=settings.server.public_url,
    )
    Multiprocess(_uvicorn_config("hub.app:create_app", settings, workers), sockets=[sock]).run()


def _serve_here(settings: Settings, sock: socket.socket) -> None:
    import uvicorn

    from hub.app import create_app

    server = uvicorn.Server(_uvicorn_config(create_app(settings), settings, 1))
    server.run(sockets=[sock])
    if not server.started:  # the application's start-up failed; uvicorn has said why
        sys.exit(3)


def cmd_serve(args: argparse.Namespace) -> None:
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
    host = settings.server.host
    sock = _bind(host, settings.server.port)
    port = sock.getsockname()[1]  # the one bound (--port 0: any free port)
    processes = f", {args.workers} processes" if args.workers > 1 else ""
    print(
        f"hub listening on http://{host}:{port}{processes}  (API docs: {settings.server.public_url}/docs)",
        flush=True,
    )
    if args.workers > 1:
        _serve_in_processes(settings, args.workers, sock)
    else:
        _serve_here(settings, sock)


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


ADMIN_PASSWORD_ENV = "HUB_ADMIN_PASSWORD"


def _admin_password(args: argparse.Namespace) -> str:
    """``--admin-password`` (scripts), else HUB_ADMIN_PASSWORD, else asked twice without echo (a
    password on the command line is visible to other users in the process list)."""
    if args.admin_password:
        return str(args.admin_password)
    if os.environ.get(ADMIN_PASSWORD_ENV):
        return os.environ[ADMIN_PASSWORD_ENV]
    first = getpass.getpass(f"Password for {args.admin_email}: ")
    if getpass.getpass("Repeat the password: ") != first:
        sys.exit("hub account create: the two passwords differ; nothing was created")
    return first


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
    password = _admin_password(args)
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
                            "password": password,
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
        prog="hub",
        description="Service-desk partner-exchange and integration hub. Settings come from HUB_* "
        "environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"hub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP server (migrates the embedded SQLite first)",
        description="Run the HTTP API (and, unless HUB_WORKER_IN_PROCESS=false, the background jobs).",
    )
    serve.add_argument(
        "--demo", action="store_true", help="seed two demo accounts (once) and print how to sign in"
    )
    serve.add_argument("--host", help="address to listen on (default HUB_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port, 1-65535 (default HUB_PORT, else 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP processes on the one port (more than 1 needs PostgreSQL and HUB_CHANNELS_BACKEND "
        "postgres or redis)",
    )
    serve.set_defaults(func=cmd_serve)

    commands.add_parser(
        "migrate", help="apply database migrations (PostgreSQL is migrated only by this command)"
    ).set_defaults(func=cmd_migrate)
    commands.add_parser("worker", help="run background jobs (outbox, sweepers) without HTTP").set_defaults(
        func=cmd_worker
    )

    alarm = commands.add_parser(
        "alarm-receiver", help="run the SIA DC-09 alarm receiver (TCP and UDP) and the intake worker"
    )
    alarm.add_argument("--host", help="address to listen on (default HUB_ALARM_HOST, else 127.0.0.1)")
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
    create = account.add_parser(
        "create",
        help="create an account with its first administrator",
        description=f"The password comes from --admin-password, else {ADMIN_PASSWORD_ENV}, else a prompt.",
    )
    create.add_argument("--name", required=True, help="the company's name as its staff see it")
    create.add_argument(
        "--slug", required=True, help="short account name used to sign in (letters, digits, -)"
    )
    create.add_argument("--admin-name", default="Administrator", help="the administrator's name")
    create.add_argument("--admin-email", required=True, help="the administrator's e-mail (their login)")
    create.add_argument(
        "--admin-password",
        help=f"the administrator's password (for scripts; else {ADMIN_PASSWORD_ENV}, else asked)",
    )
    create.add_argument("--region", default="RU", help="default phone region, ISO code (default RU)")
    create.add_argument("--currency", default="RUB", help="invoice currency, ISO code (default RUB)")
    create.set_defaults(func=cmd_account_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            args.func(args)
    except Exception as exc:
        problem = explain(exc)
        if problem is None:
            raise
        sys.exit(f"hub {args.command}: {problem}")


if __name__ == "__main__":
    main()
