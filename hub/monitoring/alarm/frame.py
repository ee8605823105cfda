"""ANSI/SIA DC-09 framing: ``LF crc 0LLL "id" seq Rrcvr Lpref #acct [data] [x..] _ts CR``.

The CRC (CRC-16/ARC: reflected polynomial 0x8005, initial 0) and the length (4 hex digits, the
first ``0``) cover the text from the opening quote of the id token to the last character before
CR. Everything here is pure: bytes in, a :class:`Frame` or a :class:`FrameError` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "ANSWERS",
    "TOKENS",
    "Frame",
    "FrameError",
    "Message",
    "build_frame",
    "crc16",
    "format_timestamp",
    "parse_frame",
    "parse_message",
]

TOKENS = ("SIA-DCS", "ADM-CID", "NULL")  # what panels send
ANSWERS = ("ACK", "NAK", "DUH")  # what the receiver answers
_CRC_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0xA001 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)

# "id" seq [Rrcvr] Lpref [#acct] [ rest
_HEADER = re.compile(
    r'"(?P<star>\*?)(?P<token>[A-Z0-9-]{1,16})"(?P<seq>\d{4})'
    r"(?:R(?P<receiver>[0-9A-Fa-f]{1,6}))?L(?P<line>[0-9A-Fa-f]{1,6})"
    r"(?:#(?P<account>[0-9A-Fa-f]{3,16}))?\[(?P<rest>.*)\Z",
    re.DOTALL,
)
_TIMESTAMP = re.compile(r"_(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})\Z")
_XDATA = re.compile(r"\[([^\[\]]*)\]")


class FrameError(ValueError):
    """A frame the receiver cannot take. ``kind``: ``crc`` or ``length`` (answered NAK: the panel
    sends it again) or ``format`` (answered DUH: sending it again would not help)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Frame:
    """A checked frame: header fields and the text after the first ``[`` (hex when encrypted)."""

    token: str
    encrypted: bool
    sequence: str
    receiver: str  # hex digits without the R; "" when the frame has none
    line: str
    account: str  # "" when the frame has none
    rest: str
    raw: str  # the frame as received, without LF and CR


@dataclass(frozen=True, slots=True)
class Message:
    """The clear part of a frame: the data block, extended data and the panel's timestamp."""

    data: str  # inside the first [...], without the account echo "#acct|"
    xdata: tuple[str, ...]
    timestamp: datetime | None


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def parse_frame(frame: bytes, tokens: tuple[str, ...] = TOKENS) -> Frame:
    """Check CRC and length of one frame (with or without its LF/CR) and split its header."""
    text = _ascii(frame.strip(b"\n\r\x00 "))
    if len(text) < 9:
        raise FrameError("format", "frame too short")
    crc_text, length_text, body = text[:4], text[4:8], text[8:]
    if not _is_hex(crc_text) or not _is_hex(length_text) or length_text[0] != "0":
        raise FrameError("format", "CRC and length must be hex digits")
    if int(length_text, 16) != len(body):
        raise FrameError("length", f"length field says {int(length_text, 16)}, body has {len(body)}")
    if int(crc_text, 16) != crc16(body.encode("ascii")):
        raise FrameError("crc", "CRC mismatch")
    match = _HEADER.match(body)
    if match is None:
        raise FrameError("format", "not a DC-09 message")
    token = match["token"]
    if token not in tokens:
        raise FrameError("format", f"unsupported token {token!r}")
    return Frame(
        token=token,
        encrypted=bool(match["star"]),
        sequence=match["seq"],
        receiver=(match["receiver"] or "").upper(),
        line=match["line"].upper(),
        account=(match["account"] or "").upper(),
        rest=match["rest"],
        raw=text,
    )


def parse_message(rest: str) -> Message:
    """Split the clear text after ``[``: ``[#acct|]data]`` ``[x..]``* ``[_HH:MM:SS,MM-DD-YYYY]``."""
    data, closing, tail = rest.partition("]")
    if not closing:
        raise FrameError("format", "data block not closed")
    if data.startswith("#") and "|" in data:
        data = data.split("|", 1)[1]
    timestamp = None
    found = _TIMESTAMP.search(tail)
    if found:
        timestamp = _timestamp(found)
        tail = tail[: found.start()]
    xdata = tuple(_XDATA.findall(tail))
    if _XDATA.sub("", tail):
        raise FrameError("format", "unexpected text after the data block")
    return Message(data, xdata, timestamp)


def _timestamp(found: re.Match[str]) -> datetime:
    hour, minute, second, month, day, year = (int(part) for part in found.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise FrameError("format", "impossible timestamp") from None


def format_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("_%H:%M:%S,%m-%d-%Y")


def build_frame(
    token: str,
    sequence: str,
    line: str,
    account: str,
    rest: str,
    *,
    receiver: str = "",
    encrypted: bool = False,
    account_mark: str = "#",
) -> bytes:
    """One frame around ``rest`` (what follows the ``[``): CRC and length computed here."""
    star = "*" if encrypted else ""
    rcvr = f"R{receiver}" if receiver else ""
    acct = f"{account_mark}{account}" if account else ""
    body = f'"{star}{token}"{sequence}{rcvr}L{line}{acct}[{rest}'
    encoded = body.encode("ascii")
    return b"\n%04X%04X%s\r" % (crc16(encoded), len(encoded), encoded)


def _ascii(frame: bytes) -> str:
    try:
        return frame.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("format", "frame is not ASCII") from None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEFabcdef" for c in text)
