"""Live events across hub processes: Litestar channels plus a small replay log (TEL-4, MON-5).

How to use it (telephony pop-ups and the client app's live updates both go through here):

* **Publish from a service, inside the request's transaction** (the normal case)::

      from hub.live import publish_after_commit, channel_name

      publish_after_commit(session, channel_name(account_id, "emp", employee_id), "popup", {...})

  The event is written to the ``live_events`` table as the caller's transaction commits (that
  gives it its id: one increasing sequence shared by every process, taken in commit order) and
  handed to the channels backend only after the commit — a rolled-back change never reaches a
  screen. ``data`` must be JSON.

* **Publish outside a transaction** (a job, a CLI): ``await publish(app_or_state, channel, data,
  event_type="message")`` opens its own short session, logs and publishes.

* **Stream to a browser** from a guarded handler (the handler decides which channels the
  principal may see; the helper does not authorise)::

      @get("/api/things/stream", guards=[employees])
      async def stream(self, request: Request, principal: Principal) -> ServerSentEvent:
          return sse_response(request, [channel_name(principal.account_id, "emp", principal.subject_id)])

  Every frame carries ``id:`` (the log id), ``event:`` (the event type) and ``data:`` (JSON).
  A reconnecting ``EventSource`` sends ``Last-Event-ID`` by itself; a page that opens a fresh
  ``EventSource`` passes ``?last_event_id=N``. Either way the stream first replays what the log
  still holds after that id, then goes live (duplicates between the two are dropped). A comment
  line is sent every ``HEARTBEAT_SECONDS`` so idle connections stay open and dead ones are found.
  EventSource cannot send headers: pass the access token as ``?access_token=`` (the auth
  middleware accepts it there).

* **Backends**: ``settings.server.channels_backend`` — ``memory`` (one process, the embedded
  default), ``postgres`` (asyncpg LISTEN/NOTIFY on the hub's own database) or ``redis``
  (``settings.server.redis_url``). Only the event id and type travel through NOTIFY when the
  payload is larger than PostgreSQL's 8000-byte limit allows; the stream then reads the data
  from the log.

* **Replay log**: ``live_events`` keeps every event for ``RETENTION`` (the ``live.prune`` job
  deletes older rows); a catch-up reads it in pages of ``REPLAY_PAGE`` until it has sent all of
  it. The log is in the database, so it survives process restarts and is shared by every process.
  On PostgreSQL ids come from a sequence and transactions may commit out of order: an event with
  a lower id than the client's last one can become visible after the client saw the higher one.
  So the log insert is the last statement of a commit, under an advisory lock held only for it
  and the commit: ids become visible in order. A stream also passes on every live event it has
  not replayed itself, whatever its id.

* Tests that build the app without running its lifespan get the channels started lazily on the
  first publish or stream; ``hub.app.shutdown`` stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncGenerator, Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend
from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.datastructures import State
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy import (
    Index,
    Integer,
    String,
    Table,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    true,
    values,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from hub.db import Base, Database, Id, JSONType, after_commit, utcnow
from hub.jobs import JobContext, register_job
from hub.settings import Settings

__all__ = [
    "HEARTBEAT_SECONDS",
    "REPLAY_PAGE",
    "RETENTION",
    "LiveEvent",
    "LiveHub",
    "build_live",
    "channel_name",
    "live_of",
    "publish",
    "publish_after_commit",
    "sse_response",
    "stream_events",
]

log = structlog.get_logger("hub.live")

RETENTION = timedelta(hours=2)
REPLAY_PAGE = 500
HEARTBEAT_SECONDS = 15.0
# PostgreSQL refuses NOTIFY payloads of 8000 bytes and more; larger events travel by reference.
_NOTIFY_LIMIT = 7000


class LiveEvent(Id, Base):
    """The replay log: recent live events per channel, shared by every process."""

    __tablename__ = "live_events"
    __table_args__ = (Index("ix_live_events_channel_id", "channel", "id"),)

    channel: Mapped[str] = mapped_column(String(120))
    event_type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def channel_name(account_id: int, *parts: object) -> str:
    """A channel name scoped to one account, e.g. ``a7.emp.12`` (valid as a PostgreSQL identifier)."""
    return ".".join([f"a{account_id}", *(str(p) for p in parts)])


class _Envelope(msgspec.Struct, omit_defaults=True):
    id: int
    type: str
    data: Any = None
    ref: bool = False  # data left in the log (too large for the backend)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Envelope)


class _ResilientAsyncPgBackend(AsyncPgChannelsBackend):
    """LISTEN/NOTIFY with one kept publish connection (Litestar's opens one per publish) that is
    reopened after a failure, and a publish failure logged instead of killing the plugin's worker."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn=dsn)
        self._dsn = dsn
        self._pub_conn: Any = None
        self._pub_lock = asyncio.Lock()

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        text = data.decode("utf-8")
        async with self._pub_lock:
            for attempt in range(2):
                try:
                    if self._pub_conn is None or self._pub_conn.is_closed():
                        self._pub_conn = await self._connect()
                    for channel in channels:
                        await self._pub_conn.execute("SELECT pg_notify($1, $2)", channel, text)
                    return
                except Exception as exc:  # the connection may have died; retry once on a new one
                    self._pub_conn = None
                    if attempt:
                        log.warning("live_publish_failed", error=repr(exc))

    async def on_startup(self) -> None:
        await super().on_startup()
        self._listener_conn.add_termination_listener(self._on_listener_lost)
        self._reconnecting: asyncio.Task[None] | None = None

    def _on_listener_lost(self, _connection: Any) -> None:
        # The database restarted or dropped us: listen again on a new connection (events sent
        # in the gap are in the replay log; streams reconnecting with Last-Event-ID get them).
        if self._queue is not None and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        delay = 0.5
        try:
            while self._queue is not None:
                try:
                    async with self._listener_lock:
                        connection = await self._connect()
                        for channel in self._subscribed_channels:
                            await connection.add_listener(channel, self._listener)
                        connection.add_termination_listener(self._on_listener_lost)
                        self._listener_conn = connection
                    log.info("live_listener_reconnected", channels=len(self._subscribed_channels))
                    return
                except Exception as exc:
                    log.warning("live_listener_reconnect_failed", error=repr(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        finally:
            self._reconnecting = None

    async def subscribe(self, channels: Iterable[str]) -> None:
        async with self._listener_lock:
            for channel in set(channels) - self._subscribed_channels:
                await self._listener_conn.add_listener(channel, self._listener)  # type: ignore[arg-type]
                self._subscribed_channels.add(channel)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        async with self._listener_lock:
            for channel in set(channels) & self._subscribed_channels:
                # Forget it first: a cancelled UNLISTEN must not leave it "subscribed" forever.
                self._subscribed_channels.discard(channel)
                await self._listener_conn.remove_listener(channel, self._listener)  # type: ignore[arg-type]

    async def on_shutdown(self) -> None:
        self._listener_conn.remove_termination_listener(self._on_listener_lost)
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._pub_conn is not None:
            with contextlib.suppress(Exception):
                await self._pub_conn.close()
            self._pub_conn = None
        await super().on_shutdown()


class _HubChannelsPlugin(ChannelsPlugin):
    """Start and stop are idempotent: the app's lifespan and lazy starts in tests may both ask."""

    _live_started = False

    async def __aenter__(self) -> ChannelsPlugin:
        if not self._live_started:
            self._live_started = True
            await self._on_startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._live_started:
            self._live_started = False
            await self._on_shutdown()


def _backend(settings: Settings) -> ChannelsBackend:
    kind = settings.server.channels_backend
    if kind == "postgres":
        url = settings.database.url
        if not url.startswith("postgresql"):
            raise RuntimeError("HUB_CHANNELS_BACKEND=postgres needs a PostgreSQL HUB_DATABASE_URL")
        return _ResilientAsyncPgBackend(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    if kind == "redis":
        from litestar.channels.backends.redis import RedisChannelsPubSubBackend
        from redis.asyncio import Redis

        return RedisChannelsPubSubBackend(redis=Redis.from_url(settings.server.redis_url))
    return MemoryChannelsBackend()


class LiveHub:
    """The process's channels plugin plus the database that holds the replay log."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.backend_kind = settings.server.channels_backend
        self.plugin = _HubChannelsPlugin(
            backend=_backend(settings),
            arbitrary_channels_allowed=True,
            create_ws_route_handlers=False,
            subscriber_max_backlog=1000,
            subscriber_backlog_strategy="dropleft",
        )
        self._start_lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        return self.plugin._live_started

    async def start(self) -> None:
        async with self._start_lock:
            await self.plugin.__aenter__()

    async def stop(self) -> None:
        await self.plugin.__aexit__(None, None, None)

    def send(self, event: LiveEvent) -> None:
        """Hand a logged event to the backend (returns at once; the plugin publishes in order)."""
        envelope = _Envelope(event.id, event.event_type, event.data)
        payload = _encoder.encode(envelope)
        if len(payload) > _NOTIFY_LIMIT:
            payload = _encoder.encode(_Envelope(event.id, event.event_type, ref=True))
        if self.started:
            self.plugin.publish(payload, event.channel)
        else:
            # Apps run without their lifespan (tests): start on first use, then publish.
            asyncio.get_running_loop().create_task(self._start_and_publish(payload, event.channel))

    async def _start_and_publish(self, payload: bytes, channel: str) -> None:
        await self.start()
        self.plugin.publish(payload, channel)


# The LiveHub of each Database engine in this process: lets a bare session find its channels.
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, LiveHub] = weakref.WeakKeyDictionary()


def build_live(settings: Settings, db: Database) -> LiveHub:
    live = LiveHub(settings, db)
    _BY_ENGINE[db.engine.sync_engine] = live
    return live


def live_of(app_or_state: Litestar | State | LiveHub) -> LiveHub:
    if isinstance(app_or_state, LiveHub):
        return app_or_state
    state = app_or_state.state if isinstance(app_or_state, Litestar) else app_or_state
    live: LiveHub = state.live
    return live


def publish_after_commit(session: AsyncSession, channel: str, event_type: str, data: Any) -> LiveEvent:
    """Log ``data`` as event ``event_type`` on ``channel`` in this transaction; publish after commit.

    The event is written to the log as the transaction commits (see :func:`_log_in_commit_order`),
    so its id is known only after the commit.
    """
    event = LiveEvent(channel=channel, event_type=event_type, data=data, created_at=utcnow())
    session.sync_session.info.setdefault(_PENDING, []).append(event)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    live = _BY_ENGINE.get(engine)
    if live is None:
        log.warning("live_not_configured", channel=channel)
        return event
    after_commit(session, lambda: live.send(event))
    return event


_PENDING = "live_pending_events"
# Any fixed 64-bit number: the advisory lock that orders replay-log inserts across processes.
_COMMIT_ORDER_LOCK = 0x4C495645  # "LIVE"


def _log_in_commit_order(session: Session) -> None:
    """Insert this transaction's live events last, in its commit, so ids are taken in commit order.

    On PostgreSQL ids come from a sequence: a transaction that took id 7 and committed after one
    that took id 8 would let a client see 8, resume from it, and never get 7. Here everything else
    is flushed first, then a transaction-scoped advisory lock is taken just for the log insert and
    the commit: a later id cannot commit before an earlier one. (The lock holder waits on no row
    lock, so no deadlock can form around it.) SQLite has one writer: ids already follow commits.
    All of a commit's events (and on PostgreSQL the lock) are one statement.
    """
    if session.in_nested_transaction():
        return  # a savepoint's release is no commit; the events wait for the real one
    events: list[LiveEvent] = session.info.pop(_PENDING, None) or []
    if not events:
        return
    session.flush()
    dialect = session.get_bind().dialect.name
    for start in range(0, len(events), _PER_STATEMENT):  # one, but for a job's large burst
        chunk = events[start : start + _PER_STATEMENT]
        params = {f"{name}{i}": getattr(e, name) for i, e in enumerate(chunk) for name in _COLUMNS}
        # Rows take ids in the order they are listed (one statement, one sequence, under the lock).
        ids = sorted(session.scalars(_log_insert(dialect, len(chunk)), params))
        for event, event_id in zip(chunk, ids, strict=True):
            event.id = event_id


_LOG: Table = LiveEvent.__table__  # type: ignore[assignment]
_COLUMNS = ("channel", "event_type", "data", "created_at")
_PER_STATEMENT = 500  # far below both databases' limits on bound parameters


@functools.lru_cache(maxsize=64)
def _log_insert(dialect: str, count: int) -> Any:
    """The INSERT of ``count`` events (parameters channel0, data0, ..., channel1, ...), built once
    per size. On PostgreSQL it is INSERT ... SELECT from the listed rows joined to the advisory
    lock: a row reaches the INSERT (and takes its id) only once the join has the lock's row."""
    listed = [
        {name: bindparam(f"{name}{i}", type_=_LOG.c[name].type) for name in _COLUMNS} for i in range(count)
    ]
    if dialect != "postgresql":
        return insert(_LOG).values(listed).returning(_LOG.c.id)
    rows = values(
        column("position", Integer), *(column(name, _LOG.c[name].type) for name in _COLUMNS), name="listed"
    ).data([(i, *(row[name] for name in _COLUMNS)) for i, row in enumerate(listed)])
    lock = select(func.pg_advisory_xact_lock(_COMMIT_ORDER_LOCK).label("held")).subquery("commit_order")
    source = (
        select(*(rows.c[name] for name in _COLUMNS))
        .select_from(lock.join(rows, true()))
        .order_by(rows.c.position)
    )
    return insert(_LOG).from_select(list(_COLUMNS), source).returning(_LOG.c.id)


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without committing (rolled back, closed) publishes nothing."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


sa_event.listen(Session, "before_commit", _log_in_commit_order)
sa_event.listen(Session, "after_transaction_end", _drop_pending)


async def publish(
    app_or_state: Litestar | State | LiveHub, channel: str, data: Any, event_type: str = "message"
) -> int:
    """Log and publish one event outside any request transaction. Returns the event id."""
    live = live_of(app_or_state)
    async with live.db.sessionmaker() as session, session.begin():
        event = publish_after_commit(session, channel, event_type, data)
    return event.id


async def _replay_page(db: Database, channels: list[str], after_id: int) -> list[LiveEvent]:
    async with db.sessionmaker() as session, session.begin():
        rows = await session.scalars(
            select(LiveEvent)
            .where(LiveEvent.channel.in_(channels), LiveEvent.id > after_id)
            .order_by(LiveEvent.id)
            .limit(REPLAY_PAGE)
        )
        return list(rows)


async def _replay(db: Database, channels: list[str], last_event_id: int) -> AsyncGenerator[LiveEvent, None]:
    """Everything the log holds for ``channels`` after ``last_event_id``, page by page until caught
    up (a client away for long gets all of it, not just the first page)."""
    cursor = last_event_id
    while True:
        page = await _replay_page(db, channels, cursor)
        for event in page:
            yield event
        if len(page) < REPLAY_PAGE:
            return
        cursor = page[-1].id


async def _load_data(db: Database, event_id: int) -> Any:
    async with db.sessionmaker() as session, session.begin():
        return await session.scalar(select(LiveEvent.data).where(LiveEvent.id == event_id))


def _frame(event_id: int, event_type: str, data: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=_encoder.encode(data).decode(), event=event_type, id=event_id)


def _last_event_id(request: Request[Any, Any, Any]) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or ""
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


async def stream_events(
    live: LiveHub, channels: list[str], last_event_id: int = 0, heartbeat: float = HEARTBEAT_SECONDS
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Frames for ``channels``: first the log after ``last_event_id``, then live ones, forever."""
    if not live.started:
        await live.start()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    subscriber = await live.plugin.subscribe(channels)
    try:
        # Subscribed before reading the log, so nothing falls between replay and live.
        async with subscriber.run_in_background(inbox.put, join=False):
            replayed: set[int] = set()
            yield ServerSentEventMessage(data=None, comment="connected", retry=3000)
            if last_event_id:
                async for event in _replay(live.db, channels, last_event_id):
                    replayed.add(event.id)
                    yield _frame(event.id, event.event_type, event.data)
            while True:
                try:
                    raw = await asyncio.wait_for(inbox.get(), timeout=heartbeat)
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                envelope = _decoder.decode(raw)
                if envelope.id in replayed:
                    continue  # just sent by the replay (an id at or below the client's last one
                    # can still arrive here: a transaction that committed late)
                data = await _load_data(live.db, envelope.id) if envelope.ref else envelope.data
                yield _frame(envelope.id, envelope.type, data)
    finally:
        # A client that goes away cancels this generator, and the server keeps cancelling every
        # await here; shielded, the LISTEN bookkeeping is not left half-undone.
        await asyncio.shield(live.plugin.unsubscribe(subscriber, channels))


def sse_response(request: Request[Any, Any, Any], channels: list[str]) -> ServerSentEvent:
    """A Server-Sent Events response streaming ``channels`` with Last-Event-ID catch-up."""
    live = live_of(request.app)
    return ServerSentEvent(
        stream_events(live, channels, _last_event_id(request)),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@register_job("live.prune", interval=lambda _s: 300.0)
async def prune_live_events(ctx: JobContext) -> None:
    """Drop replay-log rows older than :data:`RETENTION` (safe in several processes at once)."""
    async with ctx.db.sessionmaker() as session, session.begin():
        await session.execute(delete(LiveEvent).where(LiveEvent.created_at < utcnow() - RETENTION))
