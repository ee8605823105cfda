"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import httpx
import structlog
from litestar import Controller, Litestar, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub import __version__
from hub.access_log import AccessLog
from hub.auth.middleware import SUBJECT_CHECK_SECONDS, HubAuthMiddleware, SubjectCache
from hub.db import Database
from hub.deps import dependencies
from hub.docs import docs_assets_router, swagger_page
from hub.errors import exception_handlers
from hub.jobs import JobContext, registered_jobs, run_jobs
from hub.live import build_live
from hub.logging import configure_logging
from hub.metrics import refresh_gauges
from hub.monitoring.alarm.receiver import AlarmReceiver
from hub.monitoring.alarm.server import AlarmServer, start_server
from hub.openapi import polish_openapi
from hub.query_rules import before_request
from hub.routes import route_handlers
from hub.settings import Settings, get_settings
from hub.web.pages import template_config
from hub.wiring import wire

__all__ = ["create_app", "shutdown"]

log = structlog.get_logger("hub.app")


class MetricsController(Controller):
    """HTTP metrics (Litestar's middleware) and the hub's own (hub.metrics), the gauges read
    from the database as they are scraped."""

    path = "/metrics"
    include_in_schema = False

    @get(exclude_from_auth=True)
    async def metrics(self, state: State) -> Response[bytes]:
        await refresh_gauges(state.db)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Hub API",
        version=__version__,
        description="Service-desk partner-exchange and integration hub. Errors are RFC 9457 problem JSON "
        "with a stable `code`.",
        path="/docs",
        # Served from the hub itself (no CDN): see hub/docs.py.
        render_plugins=[swagger_page()],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                "ApiKey": SecurityScheme(type="apiKey", name="X-Api-Key", security_scheme_in="header"),
            }
        ),
        security=[{"BearerToken": []}, {"ApiKey": []}],
    )


def create_app(settings: Settings | None = None, *, run_background_jobs: bool | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging()
    wire()
    db = Database(settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size)
    start_jobs = settings.server.worker_in_process if run_background_jobs is None else run_background_jobs

    jobs = JobContext(
        db=db, settings=settings, http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    )
    # Live events (SSE pop-ups, app updates) across processes: see hub/live.py.
    live = build_live(settings, db)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        settings.files_dir.mkdir(parents=True, exist_ok=True)
        stop = asyncio.Event()
        runner = asyncio.create_task(run_jobs(jobs, registered_jobs(), stop)) if start_jobs else None
        alarm = await _start_alarm_receiver(db, settings)
        try:
            yield
        finally:
            if alarm is not None:
                await alarm.close()
            stop.set()
            if runner is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(runner, timeout=10)
            await shutdown(app)

    app = Litestar(
        route_handlers=[*route_handlers(), MetricsController, docs_assets_router()],
        dependencies=dependencies,
        exception_handlers=exception_handlers,
        before_request=before_request,
        middleware=[
            PrometheusConfig(app_name="hub", group_path=True, exclude=["/metrics"]).middleware,
            DefineMiddleware(
                HubAuthMiddleware,
                exclude=["^/docs", "^/metrics", "^/health", "^/ready", "^/console", "^/static"],
                exclude_from_auth_key="exclude_from_auth",
            ),
        ],
        openapi_config=_openapi(),
        template_config=template_config(),
        lifespan=[lifespan],
        plugins=[live.plugin],
        cors_config=CORSConfig(allow_origins=[]),
        request_max_body_size=settings.server.max_request_bytes,
        # subject_cache: what this process last read about signed-in people (hub.auth.middleware)
        state=State(
            {
                "settings": settings,
                "db": db,
                "jobs": jobs,
                "live": live,
                "subject_cache": SubjectCache(ttl=SUBJECT_CHECK_SECONDS),
                # /ready expects the job loops' heartbeat from this process only if they run here
                "jobs_in_process": start_jobs,
            }
        ),
        debug=False,
    )
    # Problem JSON errors and msgspec's exact request schemas in /docs/openapi.json.
    polish_openapi(app)
    # Around routing too, so that a 404 or 405 is logged like any other answer.
    app.asgi_handler = AccessLog(app.asgi_handler)
    return app


async def _start_alarm_receiver(db: Database, settings: Settings) -> AlarmServer | None:
    """MON-8: the DC-09 receiver inside ``hub serve`` when HUB_ALARM_ENABLED is set."""
    if not settings.alarm.enabled:
        return None
    server = await start_server(AlarmReceiver(db, settings.alarm))
    log.info(
        "alarm_receiver_listening",
        host=settings.alarm.host,
        tcp=settings.alarm.tcp_port,
        udp=settings.alarm.udp_port,
    )
    return server


async def shutdown(app: Litestar) -> None:
    """Release what :func:`create_app` opened (also called by tests that skip the lifespan)."""
    await app.state.live.stop()
    await app.state.jobs.http.aclose()
    await app.state.db.dispose()
