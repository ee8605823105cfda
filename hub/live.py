"""Live events across hub processes: Litestar channels plus a small replay log (TEL-4, MON-5).

How to use it (telephony pop-ups and the client app's live updates both go through here):

* **Publish from a service, inside the request's transaction** (the normal case)::

      from hub.live import publish_after_commit, channel_name

      publish_after_commit(session, channel_name(account_id, "emp", employee_id), "popup", {...})

  The event is written with the caller's transaction and gets its log id (one increasing sequence
  shared by every process, taken in commit order) just after the commit; then it is handed to the
  channels backend — a rolled-back change never reaches a screen. ``data`` must be JSON.

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
  On PostgreSQL transactions commit out of order, so an id taken inside a publishing transaction
  could become visible after a higher one a client already saw (and resumed from). So a
  publishing transaction only *stages* its events (``live_staged``, no lock, no order); after its
  commit a short sequencing transaction, one at a time across processes, moves every committed
  staged event into the log and gives it its id there: ids are taken and made visible in order,
  and no publishing transaction waits for another (see :func:`_sequence_staged`). A stream also
  passes on every live event it has not replayed itself, whatever its id.

* Tests that build the app without running its lifespan get the channels started lazily on the
  first publish or stream; ``hub.app.shutdown`` stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Iterable
from datetime import datetime, timedelta
from typing import Any, cast

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
from sqlalchemy import ColumnElement, Index, String, Table, delete, insert, or_, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from hub.db import Base, Database, Id, JSONType, after_commit, after_rollback, utcnow
from hub.jobs import JobContext, periodic_job
from hub.metrics import LIVE_CLIENTS
from hub.settings import Settings

__all__ = [
    "HEARTBEAT_SECONDS",
    "REPLAY_PAGE",
    "RETENTION",
    "LiveEvent",
    "LiveHub",
    "StagedLiveEvent",
    "build_live",
    "channel_name",
    "live_of",
    "publish",
    "publish_after_commit",
    "sse_response",
    "stream_events",
    "until_logged",
]

log = structlog.get_logger("hub.live")

RETENTION = timedelta(hours=2)
REPLAY_PAGE = 500
HEARTBEAT_SECONDS = 15.0
# PostgreSQL refuses NOTIFY payloads of 8000 bytes and more; larger events travel by reference.
_NOTIFY_LIMIT = 7000


class _LiveEventColumns:
    channel: Mapped[str] = mapped_column(String(120))
    event_type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveEvent(_LiveEventColumns, Id, Base):
    """The replay log: recent live events per channel, shared by every process."""

    __tablename__ = "live_events"
    __table_args__ = (Index("ix_live_events_channel_id", "channel", "id"),)

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class StagedLiveEvent(_LiveEventColumns, Id, Base):
    """An event whose transaction has committed (or not yet) and that has no log id yet
    (PostgreSQL only: on SQLite, one writer, log ids already follow commits)."""

    __tablename__ = "live_staged"


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
        # This process's staged events by staged id, waiting for their log id.
        self._waiting: dict[int, LiveEvent] = {}
        self._sequencing: asyncio.Task[None] | None = None
        self._again = False

    @property
    def started(self) -> bool:
        return self.plugin._live_started

    async def start(self) -> None:
        async with self._start_lock:
            await self.plugin.__aenter__()

    async def stop(self) -> None:
        await self.settle()  # events committed just before the stop get their log ids and go out
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

    def committed(self, staged_id: int, event: LiveEvent) -> None:
        """A staged event's transaction committed: sequence it (with whatever else is staged)."""
        self._waiting[staged_id] = event
        if self._sequencing is not None:
            self._again = True  # the running pass may have read the staging table already
            return
        self._sequencing = asyncio.get_running_loop().create_task(self._sequence_until_done())

    async def _sequence_until_done(self) -> None:
        try:
            again = True
            while again:
                self._again = False
                await self.sequence()
                again = self._again
        finally:
            self._sequencing = None

    async def sequence(self, *, left_over: bool = False) -> None:
        """One pass: log this process's committed staged events (with ``left_over``, also any
        staged for longer than ``LEFT_OVER``: a dead process's) and send them."""
        waiting = list(self._waiting)
        try:
            logged = await _sequence_staged(self.db, waiting, left_over=left_over)
        except Exception:  # still waiting: the next pass takes them (or the job, if this one dies)
            log.exception("live_sequencing_failed")
            return
        for staged_id, event in logged:
            mine = self._waiting.pop(staged_id, None)
            if mine is not None:
                mine.id = event.id
            self.send(event)
        for staged_id in waiting:  # logged by another process's job meanwhile: its id is not ours to know
            self._waiting.pop(staged_id, None)

    async def settle(self) -> None:
        """Wait until this process's committed events have their log ids (tests, ``publish``)."""
        while self._sequencing is not None:
            await asyncio.shield(self._sequencing)


# The LiveHub of each Database engine in this process: lets a bare session find its channels.
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, LiveHub] = weakref.WeakKeyDictionary()


def build_live(settings: Settings, db: Database) -> LiveHub:
    live = LiveHub(settings, db)
    _BY_ENGINE[db.engine.sync_engine] = live
    return live


async def until_logged(db: Database) -> None:
    """Wait until the live events this process committed on ``db`` are in the replay log (their
    ids are taken just after the commit): for callers that read the log right after a request."""
    live = _BY_ENGINE.get(db.engine.sync_engine)
    if live is not None:
        await live.settle()


def live_of(app_or_state: Litestar | State | LiveHub) -> LiveHub:
    if isinstance(app_or_state, LiveHub):
        return app_or_state
    state = app_or_state.state if isinstance(app_or_state, Litestar) else app_or_state
    live: LiveHub = state.live
    return live


def publish_after_commit(session: AsyncSession, channel: str, event_type: str, data: Any) -> LiveEvent:
    """Log ``data`` as event ``event_type`` on ``channel`` in this transaction; publish after commit.

    The returned event has its log id once it is sequenced, just after the commit (on SQLite at the
    flush); :meth:`LiveHub.settle` waits for that.
    """
    event = LiveEvent(channel=channel, event_type=event_type, data=data, created_at=utcnow())
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    live = _BY_ENGINE.get(engine)
    if bind.dialect.name != "postgresql":
        _insert_at_commit(session, event)
        if live is not None:
            after_commit(session, lambda: live.send(event))
    else:
        staged = StagedLiveEvent(
            channel=channel, event_type=event_type, data=data, created_at=event.created_at
        )
        _insert_at_commit(session, staged)
        if live is not None:
            after_commit(session, lambda: live.committed(staged.id, event))
    if live is None:
        log.warning("live_not_configured", channel=channel)
    return event


_PENDING = "live_pending_rows"
_ROW_COLUMNS = ("channel", "event_type", "data", "created_at")


def _insert_at_commit(session: AsyncSession, row: LiveEvent | StagedLiveEvent) -> None:
    """Keep ``row`` for the one INSERT of the transaction's events just before its commit (a
    publishing transaction writes all its events in one statement); a savepoint that rolls back
    takes its rows with it."""
    pending: list[LiveEvent | StagedLiveEvent] = session.sync_session.info.setdefault(_PENDING, [])
    pending.append(row)

    def forget() -> None:
        if row in pending:
            pending.remove(row)

    after_rollback(session, forget)


def _insert_pending(session: Session) -> None:
    """Before the outermost commit: the transaction's events, in publishing order, in one INSERT
    (its ids come back in that order and are set on the rows, which after-commit callbacks use)."""
    if session.in_nested_transaction():
        return
    rows: list[LiveEvent | StagedLiveEvent] = session.info.pop(_PENDING, None) or []
    if not rows:
        return
    table = cast(Table, type(rows[0]).__table__)
    values = [{name: getattr(row, name) for name in _ROW_COLUMNS} for row in rows]
    # One multi-row INSERT: its rows take ids from one sequence (autoincrement) in listed order.
    ids = sorted(session.scalars(insert(table).values(values).returning(table.c.id)).all())
    for row, row_id in zip(rows, ids, strict=True):
        row.id = row_id


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction ended without its commit: nothing to insert
        session.info.pop(_PENDING, None)


sa_event.listen(Session, "before_commit", _insert_pending)
sa_event.listen(Session, "after_transaction_end", _drop_pending)


# Any fixed 64-bit number: the advisory lock that lets one sequencing pass run at a time.
_SEQUENCER_LOCK = 0x4C495645  # "LIVE"
_STAGED = cast(Table, StagedLiveEvent.__table__)
_LOG = cast(Table, LiveEvent.__table__)


# A staged event still there after this long was left by a process that died after its commit.
LEFT_OVER = timedelta(seconds=30)


async def _sequence_staged(
    db: Database, staged_ids: list[int], *, left_over: bool = False
) -> list[tuple[int, LiveEvent]]:
    """Move the committed staged events ``staged_ids`` (with ``left_over``, also those staged
    before ``LEFT_OVER`` ago) into the log, in staging order; (staged id, logged event) each.

    Why a resumed stream cannot skip an event: a log id is taken only here, in a transaction that
    holds ``_SEQUENCER_LOCK`` from before it takes its first id until after its commit has made
    them visible (PostgreSQL releases a transaction's locks after it is visible). So every id
    below one a client has seen is already committed, or was never taken: an id taken earlier
    can no longer commit later. The publishing transactions themselves take no lock and no id:
    they stage, side by side, and each process sequences its own after they commit (which
    process's pass comes first does not matter: whatever a pass logs was committed before it).
    """
    async with db.sessionmaker() as session, session.begin():
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
        chosen: ColumnElement[bool] = _STAGED.c.id.in_(staged_ids)
        if left_over:
            chosen = or_(chosen, _STAGED.c.created_at < utcnow() - LEFT_OVER)
        moved = list(await session.execute(delete(_STAGED).where(chosen).returning(*_STAGED.c)))
        if not moved:
            return []
        moved.sort(key=lambda row: row.id)
        rows = [
            {"channel": r.channel, "event_type": r.event_type, "data": r.data, "created_at": r.created_at}
            for r in moved
        ]
        ids = await session.scalars(insert(_LOG).returning(_LOG.c.id, sort_by_parameter_order=True), rows)
        return [
            (staged.id, LiveEvent(id=log_id, **row))
            for staged, row, log_id in zip(moved, rows, ids, strict=True)
        ]


async def publish(
    app_or_state: Litestar | State | LiveHub, channel: str, data: Any, event_type: str = "message"
) -> int:
    """Log and publish one event outside any request transaction. Returns the event id."""
    live = live_of(app_or_state)
    async with live.db.sessionmaker() as session, session.begin():
        event = publish_after_commit(session, channel, event_type, data)
    await live.settle()
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
    LIVE_CLIENTS.inc()
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
        LIVE_CLIENTS.dec()
        await asyncio.shield(live.plugin.unsubscribe(subscriber, channels))


def sse_response(request: Request[Any, Any, Any], channels: list[str]) -> ServerSentEvent:
    """A Server-Sent Events response streaming ``channels`` with Last-Event-ID catch-up."""
    live = live_of(request.app)
    return ServerSentEvent(
        stream_events(live, channels, _last_event_id(request)),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@periodic_job("live.sequence", interval=lambda _s: 5.0)
async def sequence_left_over(ctx: JobContext) -> None:
    """Log events staged by a process that died between its commit and its sequencing pass."""
    live = _BY_ENGINE.get(ctx.db.engine.sync_engine)
    if ctx.db.is_sqlite:
        return
    if live is not None:
        await live.sequence(left_over=True)
    else:  # a process with no channels: logged, for streams to replay on their next resume
        await _sequence_staged(ctx.db, [], left_over=True)


@periodic_job("live.prune", interval=lambda _s: 300.0)
async def prune_live_events(ctx: JobContext) -> None:
    """Drop replay-log rows older than :data:`RETENTION` (safe in several processes at once)."""
    async with ctx.db.sessionmaker() as session, session.begin():
        await session.execute(delete(LiveEvent).where(LiveEvent.created_at < utcnow() - RETENTION))
