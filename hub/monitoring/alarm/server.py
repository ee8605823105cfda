"""The receiver's sockets: TCP (many panels one after another on one connection, each frame
answered before the next is read) and UDP (one frame a datagram).

A connection is its own task, so a slow or broken client holds up nobody but itself, and not for
long: no frame begun within ``idle_timeout_seconds`` or a frame not ended within
``frame_timeout_seconds`` closes it, as does a frame over ``max_frame_bytes``, and beyond
``max_connections`` a new connection is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import cast

import structlog

from hub.monitoring.alarm.receiver import AlarmReceiver

__all__ = ["AlarmServer", "start_server"]

log = structlog.get_logger("hub.alarm")
UDP_IN_FLIGHT = 2000  # datagrams being answered at once; beyond, new ones are dropped (UDP resends)


@dataclass
class AlarmServer:
    receiver: AlarmReceiver
    tcp: asyncio.Server | None = None
    udp: asyncio.DatagramTransport | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def tcp_port(self) -> int:
        assert self.tcp is not None
        return int(self.tcp.sockets[0].getsockname()[1])

    @property
    def udp_port(self) -> int:
        assert self.udp is not None
        return int(self.udp.get_extra_info("sockname")[1])

    async def close(self) -> None:
        if self.tcp is not None:
            self.tcp.close()
        if self.udp is not None:
            self.udp.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        if self.tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.tcp.wait_closed(), 5)
        await self.receiver.close()


async def start_server(receiver: AlarmReceiver) -> AlarmServer:
    settings = receiver.settings
    server = AlarmServer(receiver)
    if settings.tcp_port:
        server.tcp = await asyncio.start_server(
            lambda r, w: _accept(server, r, w),
            settings.host,
            max(settings.tcp_port, 0),
            limit=settings.max_frame_bytes,
            backlog=1024,
        )
    if settings.udp_port:
        loop = asyncio.get_running_loop()
        server.udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(receiver),
            local_addr=(settings.host, max(settings.udp_port, 0)),
        )
    return server


async def _accept(server: AlarmServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    assert task is not None
    if len(server.connections) >= server.receiver.settings.max_connections:
        writer.close()
        return
    server.connections.add(task)
    try:
        await _serve(server.receiver, reader, writer)
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # the client went away, stalled or sent too much: its connection ends, nothing else
    except ValueError:
        pass  # readuntil past the limit
    finally:
        server.connections.discard(task)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)


async def _serve(receiver: AlarmReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    settings = receiver.settings
    peer = writer.get_extra_info("peername")
    remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None
    while True:
        first = await asyncio.wait_for(reader.read(1), settings.idle_timeout_seconds)
        if not first:
            return  # the client closed
        rest = (
            b""
            if first == b"\r"
            else await asyncio.wait_for(reader.readuntil(b"\r"), settings.frame_timeout_seconds)
        )
        frame = first + rest
        if len(frame) > settings.max_frame_bytes:
            return
        frame = frame[frame.rfind(b"\n") :] if b"\n" in frame else frame  # noise before the LF
        if len(frame.strip()) == 0:
            continue
        answer = await receiver.answer(frame, remote)
        if answer is not None:
            writer.write(answer)
            await asyncio.wait_for(writer.drain(), settings.frame_timeout_seconds)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: AlarmReceiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | None, int]) -> None:
        if len(self.tasks) >= UDP_IN_FLIGHT or len(data) > self.receiver.settings.max_frame_bytes:
            return
        task = asyncio.create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | None, int]) -> None:
        try:
            answer = await self.receiver.answer(data, f"{addr[0]}:{addr[1]}")
        except Exception as exc:  # one datagram's failure is logged, never the receiver's end
            log.error("alarm_udp_failed", error=repr(exc))
            return
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)
