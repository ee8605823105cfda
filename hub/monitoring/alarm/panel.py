"""A panel as the receiver sees one: builds DC-09 frames and sends them over TCP or UDP. For the
tests, the benchmark and a vendor checking what the hub answers (``contracts/ALARM.md``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from hub.db import utcnow
from hub.monitoring.alarm import crypto
from hub.monitoring.alarm.frame import (
    ANSWERS,
    Frame,
    build_frame,
    format_timestamp,
    parse_frame,
    parse_message,
)

__all__ = ["Panel", "read_reply", "udp_exchange"]

REPLY_SECONDS = 5.0


@dataclass
class Panel:
    account: str
    line: str = "0"
    receiver: str = ""
    key: bytes | None = None
    sequence: int = field(default=0)

    def next_sequence(self) -> str:
        self.sequence = self.sequence % 9999 + 1
        return f"{self.sequence:04d}"

    def frame(
        self,
        token: str,
        data: str,
        *,
        when: datetime | None = None,
        sequence: str | None = None,
        stamp: bool = True,
    ) -> bytes:
        """``data`` inside the brackets: ``1301 01 000`` (ADM-CID), ``Nri1/AT000`` (SIA-DCS)."""
        timestamp = format_timestamp(when or utcnow()) if stamp or self.key else ""
        clear = f"#{self.account}|{data}]{timestamp}" if data else f"]{timestamp}"
        rest = crypto.encrypt(self.key, clear) if self.key else clear
        sequence = sequence or self.next_sequence()
        return build_frame(
            token, sequence, self.line, self.account, rest, receiver=self.receiver, encrypted=bool(self.key)
        )

    def contact_id(
        self,
        qualifier: int,
        code: str,
        partition: str = "01",
        zone: str = "000",
        *,
        when: datetime | None = None,
        sequence: str | None = None,
    ) -> bytes:
        return self.frame("ADM-CID", f"{qualifier}{code} {partition} {zone}", when=when, sequence=sequence)

    def sia(self, data: str, *, when: datetime | None = None, sequence: str | None = None) -> bytes:
        return self.frame("SIA-DCS", data, when=when, sequence=sequence)

    def null(self) -> bytes:
        return self.frame("NULL", "")

    def open_reply(self, reply: bytes) -> tuple[Frame, str]:
        """The reply's frame and its clear text (decrypted with the panel's key when encrypted)."""
        frame = parse_frame(reply, ANSWERS)
        clear = crypto.decrypt(self.key, frame.rest) if frame.encrypted and self.key else frame.rest
        parse_message(clear)
        return frame, clear


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r"), REPLY_SECONDS)


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | None, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


async def udp_exchange(host: str, port: int, frame: bytes) -> bytes:
    """Send one datagram, return the receiver's answer."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_OneReply, remote_addr=(host, port))
    try:
        transport.sendto(frame)
        return await asyncio.wait_for(protocol.reply, REPLY_SECONDS)
    finally:
        transport.close()
