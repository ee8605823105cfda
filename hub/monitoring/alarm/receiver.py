"""What the receiver answers a frame, transport aside (:mod:`.server` does the sockets).

    answer = await receiver.answer(frame_bytes, remote_addr)   # bytes to send back, or None

The order is the standard's: CRC and length (``NAK``: the panel sends it again), the message
(``DUH``: not understood, not sent again), the account number (unknown: ``DUH``, recorded for
administrators), decryption with the account's key (``DUH`` when it fails), the timestamp window
(``NAK`` with the receiver's time, so the panel can set its clock), then the message is stored
through the intake pipeline and only when that transaction has committed is it acknowledged. A
message stored before (its ACK was lost) is acknowledged again and applied no second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from hub.db import Database, dialect_insert, utcnow
from hub.intake import Received, store_many
from hub.monitoring.alarm import crypto
from hub.monitoring.alarm.codes import decode_events
from hub.monitoring.alarm.frame import (
    Frame,
    FrameError,
    build_frame,
    format_timestamp,
    parse_frame,
    parse_message,
)
from hub.monitoring.alarm.models import AlarmAccount, UnknownAlarmAccount
from hub.settings import AlarmSettings

__all__ = ["SOURCE", "AlarmReceiver", "Directory", "Panel", "in_window", "reply"]

log = structlog.get_logger("hub.alarm")
SOURCE = "alarm"
UNKNOWN_RECORD_SECONDS = 10.0  # one record per unknown number and prefix this often, not per frame
BATCH = 500


@dataclass(frozen=True, slots=True)
class Panel:
    """An account number as the receiver knows it (from ``alarm_accounts``)."""

    id: int
    account_id: int
    object_id: int
    number: str
    receiver: str
    line: str
    key: bytes | None


class Directory:
    """Every account number in memory, reloaded in one query at most every ``seconds``: a known
    number is found without a query (a stale copy is used while a fresh one loads), an unknown
    one waits for a reload when the copy is older than ``seconds`` (new numbers show up; a flood
    from an unknown number costs one query per period)."""

    def __init__(self, db: Database, seconds: float) -> None:
        self._db = db
        self._seconds = seconds
        self._panels: dict[str, list[Panel]] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Task[None] | None = None

    async def find(self, number: str, receiver: str, line: str) -> Panel | None:
        stale = self._loaded_at is None or time.monotonic() - self._loaded_at >= self._seconds
        if stale and (self._loaded_at is None or number not in self._panels):
            await self._reload()
        elif stale:
            self._start_reload()
        fits = [
            p for p in self._panels.get(number, ()) if p.receiver in ("", receiver) and p.line in ("", line)
        ]
        # The most specific setting wins: receiver and line given over either over neither.
        return max(fits, key=lambda p: (bool(p.receiver), bool(p.line)), default=None)

    def _start_reload(self) -> asyncio.Task[None]:
        if self._loading is None or self._loading.done():
            self._loading = asyncio.create_task(self._load(time.monotonic()))
        return self._loading

    async def _reload(self) -> None:
        await asyncio.shield(self._start_reload())

    async def _load(self, started: float) -> None:
        columns = (
            AlarmAccount.id,
            AlarmAccount.account_id,
            AlarmAccount.object_id,
            AlarmAccount.number,
            AlarmAccount.receiver,
            AlarmAccount.line,
            AlarmAccount.key_hex,
        )
        async with self._db.sessionmaker() as session:
            rows = (await session.execute(select(*columns))).all()
        panels: dict[str, list[Panel]] = {}
        for r in rows:
            key = crypto.parse_key(r.key_hex) if r.key_hex else None
            panels.setdefault(r.number, []).append(
                Panel(r.id, r.account_id, r.object_id, r.number, r.receiver, r.line, key)
            )
        self._panels, self._loaded_at = panels, started

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)


class _Store:
    """Group commit: messages that arrive while a transaction is running are stored together in
    the next one. Each caller learns when its message is durable (or why not)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: asyncio.Queue[tuple[Received, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def put(self, event: Received) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="alarm-store")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, done))
        await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                async with self._db.sessionmaker() as session, session.begin():
                    await store_many(session, [event for event, _ in batch])
            except Exception as exc:  # every caller of the batch is told: none of them ACKs
                log.error("alarm_store_failed", error=repr(exc), messages=len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class AlarmReceiver:
    def __init__(
        self, db: Database, settings: AlarmSettings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.directory = Directory(db, settings.directory_seconds)
        self._store = _Store(db)
        self._unknown_recorded: dict[tuple[str, str, str], float] = {}

    async def close(self) -> None:
        await self._store.close()
        await self.directory.close()

    async def answer(self, data: bytes, remote_addr: str | None = None) -> bytes | None:
        """The reply to one frame, after whatever it needed stored is durable; None: no reply
        (the store failed: the panel's resend will find us again)."""
        try:
            frame = parse_frame(data)
        except FrameError as exc:
            return reply("NAK", None, now=self.clock()) if exc.kind in ("crc", "length") else _duh_unparsed()
        panel = (
            await self.directory.find(frame.account, frame.receiver, frame.line) if frame.account else None
        )
        if panel is None:
            if frame.token == "NULL" and not frame.encrypted:
                return reply("ACK", frame)  # a link test from a receiver or a panel not set up
            await self._record_unknown(frame, remote_addr)
            return reply("DUH", frame)
        if (panel.key is not None) != frame.encrypted:
            return reply("DUH", frame)  # an account with a key takes encrypted messages only
        try:
            clear = crypto.decrypt(panel.key, frame.rest) if panel.key is not None else frame.rest
            message = parse_message(clear)
            decode_events(frame.token, message.data)
        except (FrameError, crypto.DecryptError):
            return reply("DUH", frame)
        if frame.encrypted and message.timestamp is None:
            return reply("DUH", frame)  # the standard requires it: it is what makes a replay fail
        if message.timestamp is not None and not self._in_window(message.timestamp):
            return reply("NAK", frame, panel.key, now=self.clock())
        if frame.token != "NULL":
            try:
                await self._store.put(self._received(frame, panel, clear, message.timestamp, remote_addr))
            except Exception:
                return None
        return reply("ACK", frame, panel.key, now=self.clock())

    def _in_window(self, sent_at: datetime) -> bool:
        return in_window(sent_at, self.clock(), self.settings)

    def _received(
        self, frame: Frame, panel: Panel, clear: str, sent_at: datetime | None, remote_addr: str | None
    ) -> Received:
        # The same message again (a resend after a lost ACK) has the same key. Without the
        # panel's timestamp, the hour it came in stands in for it (sequence numbers wrap).
        when = sent_at.isoformat() if sent_at else self.clock().strftime("rx%Y%m%d%H")
        digest = hashlib.sha256(f"{frame.token}|{clear}".encode()).hexdigest()[:24]
        return Received(
            source=SOURCE,
            body=frame.raw,
            account_id=panel.account_id,
            endpoint_id=panel.id,
            dedupe_key=f"{panel.id}:{frame.sequence}:{when}:{digest}",
            order_key=f"alarm:{panel.object_id}",
            headers={
                "token": frame.token,
                "clear": clear,
                "sequence": frame.sequence,
                "receiver": frame.receiver,
                "line": frame.line,
                "account": frame.account,
                "encrypted": frame.encrypted,
                "sent_at": sent_at.isoformat() if sent_at else None,
            },
            remote_addr=remote_addr,
        )

    async def _record_unknown(self, frame: Frame, remote_addr: str | None) -> None:
        key = (frame.account, frame.receiver, frame.line)
        if self._unknown_recorded.get(key, 0.0) > time.monotonic():
            return
        self._unknown_recorded[key] = time.monotonic() + UNKNOWN_RECORD_SECONDS
        log.warning("alarm_unknown_account", account=frame.account, receiver=frame.receiver, line=frame.line)
        table = UnknownAlarmAccount.__table__
        now = self.clock()
        seen = {"last_seen": now, "remote_addr": remote_addr, "last_frame": frame.raw[:500]}
        try:
            async with self.db.sessionmaker() as session, session.begin():
                insert = dialect_insert(session, table).values(
                    number=frame.account,
                    receiver=frame.receiver,
                    line=frame.line,
                    first_seen=now,
                    count=1,
                    **seen,
                )
                await session.execute(
                    insert.on_conflict_do_update(
                        index_elements=["number", "receiver", "line"],
                        set_={**seen, "count": table.c.count + 1},  # type: ignore[attr-defined]
                    )
                )
        except Exception as exc:  # the DUH goes out all the same
            log.error("alarm_unknown_record_failed", error=repr(exc))


def in_window(sent_at: datetime, now: datetime, settings: AlarmSettings) -> bool:
    """DC-09's timestamp check: from ``window_past_seconds`` behind the receiver's clock to
    ``window_future_seconds`` ahead of it, both ends included."""
    earliest = now - timedelta(seconds=settings.window_past_seconds)
    return earliest <= sent_at <= now + timedelta(seconds=settings.window_future_seconds)


def _duh_unparsed() -> bytes:
    return build_frame("DUH", "0000", "0", "", "]")


def reply(kind: str, frame: Frame | None, key: bytes | None = None, *, now: datetime | None = None) -> bytes:
    """``ACK``/``NAK``/``DUH`` as DC-09 words them, encrypted with the account's key when the
    message was (a DUH never is: the receiver may not have understood the key)."""
    sequence = frame.sequence if frame is not None and kind != "NAK" else "0000"
    receiver = frame.receiver if frame is not None and frame.receiver else ("0" if kind == "NAK" else "")
    line = frame.line if frame is not None else "0"
    account = frame.account if frame is not None else ""
    stamp = format_timestamp(now) if now is not None else ""
    if frame is not None and frame.encrypted and key is not None and kind != "DUH":
        rest = crypto.encrypt(key, f"]{stamp}")
        return build_frame(kind, sequence, line, account, rest, receiver=receiver, encrypted=True)
    if kind == "NAK":
        return build_frame("NAK", "0000", line, "0", f"]{stamp}", receiver=receiver, account_mark="A")
    return build_frame(kind, sequence, line, account, "]", receiver=receiver)
