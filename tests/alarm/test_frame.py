"""MON-8: DC-09 framing, CRC, length, encryption and event decoding, without a database.

Vectors: the CRC-16/ARC check value of "123456789" (0xBB3D, the catalogue value of the CRC DC-09
uses), and frames captured from real panels and published in public projects' examples and
issues, whose CRC and length the panels computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.monitoring.alarm import crypto
from hub.monitoring.alarm.codes import decode_events, kind_of, label_of
from hub.monitoring.alarm.frame import FrameError, build_frame, crc16, parse_frame, parse_message
from hub.monitoring.alarm.receiver import in_window
from hub.settings import AlarmSettings

# Frames as panels sent them (CRC and length by the panel's firmware).
PANEL_FRAMES = [
    (b'\nF92F0043"ADM-CID"0020R7896L7896#3456[#3456|1407 00 001]_17:01:14,07-26-2024\r', "ADM-CID", "3456"),
    (b'\nD730002F"NULL"0000R7896L7896#3456[]_17:01:26,07-26-2024\r', "NULL", "3456"),
    (b'\n9EC40027"ADM-CID"0001L0#1002[#1002|1602 00 001]\r', "ADM-CID", "1002"),
    (b'\n75140027"ADM-CID"0001L0#1002[#1002|3354 00 004]\r', "ADM-CID", "1002"),
]

hexdigits = st.text("0123456789ABCDEF", min_size=1, max_size=6)


def test_crc_is_crc16_arc_check_value() -> None:
    """MON-8: the CRC of DC-09 is CRC-16/ARC; its catalogue check value over "123456789"."""
    assert crc16(b"123456789") == 0xBB3D
    # pysiaalarm's documented calculation for this message body.
    assert crc16(b'"SIA-DCS"5268L0#AAA[Nri1/WA000]_08:40:47,07-08-2020') == 0xE9A4


@pytest.mark.parametrize(("raw", "token", "account"), PANEL_FRAMES)
def test_frames_from_real_panels_pass_crc_and_length(raw: bytes, token: str, account: str) -> None:
    """MON-8: frames real panels sent are accepted as they are."""
    frame = parse_frame(raw)
    assert (frame.token, frame.account, frame.encrypted) == (token, account, False)


def test_real_contact_id_frame_decodes_to_its_event() -> None:
    """MON-8: 3354 00 004 is the restore of 'failure to communicate', partition 00, zone 004."""
    frame = parse_frame(PANEL_FRAMES[3][0])
    (event,) = decode_events(frame.token, parse_message(frame.rest).data)
    assert (event.code, event.restore, event.partition, event.zone) == ("354", True, "00", "004")
    assert kind_of("cid", "354") == "trouble" and label_of(event) == "Failure to communicate restored"
    stamped = parse_message(parse_frame(PANEL_FRAMES[0][0]).rest)
    assert stamped.timestamp == datetime(2024, 7, 26, 17, 1, 14, tzinfo=UTC)


@given(
    token=st.sampled_from(["SIA-DCS", "ADM-CID", "NULL"]),
    sequence=st.integers(0, 9999).map(lambda n: f"{n:04d}"),
    receiver=st.one_of(st.just(""), hexdigits),
    line=hexdigits,
    account=st.text("0123456789ABCDEF", min_size=3, max_size=16),
    data=st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="[]"), max_size=60),
)
def test_build_then_parse_round_trips(
    token: str, sequence: str, receiver: str, line: str, account: str, data: str
) -> None:
    """MON-8: every frame the hub builds (its answers) is one it reads back field for field."""
    raw = build_frame(token, sequence, line, account, f"#{account}|{data}]", receiver=receiver)
    frame = parse_frame(raw)
    assert (frame.token, frame.sequence, frame.receiver, frame.line, frame.account) == (
        token,
        sequence,
        receiver,
        line,
        account,
    )
    assert parse_message(frame.rest).data == data


@given(st.binary(max_size=300))
def test_garbage_never_crashes_the_parser(data: bytes) -> None:
    """MON-8: any bytes give a frame or a FrameError (answered NAK/DUH), never another error."""
    try:
        frame = parse_frame(data)
    except FrameError as exc:
        assert exc.kind in ("crc", "length", "format")
        return
    try:
        decode_events(frame.token, parse_message(frame.rest).data)
    except FrameError:
        pass


@given(st.text(max_size=80), st.sampled_from(["SIA-DCS", "ADM-CID"]))
def test_garbage_data_blocks_never_crash_the_decoders(text: str, token: str) -> None:
    """MON-8: the data block and the timestamp are read or refused as a format error."""
    try:
        decode_events(token, parse_message(text).data)
    except FrameError as exc:
        assert exc.kind == "format"


@given(position=st.integers(0, 60), replacement=st.integers(32, 126))
def test_any_changed_character_fails_crc_or_length(position: int, replacement: int) -> None:
    """MON-8: one character changed anywhere in the checked part is caught (CRC-16 catches every
    single-byte error), so a damaged frame is never taken for another."""
    raw = bytearray(PANEL_FRAMES[0][0])
    index = 9 + position % (len(raw) - 10)  # inside the body, past CRC and length
    if raw[index] == replacement:
        return
    raw[index] = replacement
    with pytest.raises(FrameError) as caught:
        parse_frame(bytes(raw))
    assert caught.value.kind in ("crc", "format", "length")


def test_wrong_length_and_wrong_crc_are_told_apart() -> None:
    """MON-8: a frame cut short is a length error; a frame with a bad CRC a CRC error (both NAK)."""
    raw = PANEL_FRAMES[2][0]
    with pytest.raises(FrameError) as short:
        parse_frame(raw[:-5] + b"\r")
    assert short.value.kind == "length"
    with pytest.raises(FrameError) as crc:
        parse_frame(b"\n0000" + raw[5:])
    assert crc.value.kind == "crc"
    with pytest.raises(FrameError) as bad_hex:
        parse_frame(b"\nZZZZ" + raw[5:])
    assert bad_hex.value.kind == "format"


@given(
    key_size=st.sampled_from([16, 24, 32]),
    clear=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
)
def test_encryption_round_trips_for_aes_128_192_256(key_size: int, clear: str) -> None:
    """MON-8: AES-CBC with a zero IV, whole blocks of hex, the pad ended by '|'."""
    key = bytes(range(key_size))
    sealed = crypto.encrypt(key, clear)
    assert len(bytes.fromhex(sealed)) % 16 == 0
    assert crypto.decrypt(key, sealed) == clear


def test_known_aes_vector_with_zero_iv() -> None:
    """MON-8: a first block with no pad ('|' then 15 characters) encrypts like AES-ECB of it
    (CBC with a zero IV): the FIPS-197 AES-128 vector key shows it is plain AES underneath."""
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    sealed = crypto.encrypt(key, "]_12:00:00,01-0")  # 15 characters + '|' = one block, no pad
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    assert sealed == (ecb.update(b"|]_12:00:00,01-0") + ecb.finalize()).hex().upper()


def test_wrong_key_is_a_decrypt_error() -> None:
    """MON-8: a message sealed with another key is refused (answered DUH), never misread."""
    sealed = crypto.encrypt(bytes(16), "#1234|1301 01 000]_10:00:00,12-02-2026")
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(bytes(range(16)), sealed)
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(bytes(16), sealed[:-2])


def test_sia_data_with_several_events_partitions_and_text() -> None:
    """MON-8: 'N' then fields with or without '/', events with their zone and ^text^."""
    events = decode_events("SIA-DCS", "Nri2/AT000/ri3YT/BA012^Hall^")
    assert [(e.code, e.partition, e.zone, e.restore) for e in events] == [
        ("AT", "2", "000", False),
        ("YT", "3", "", False),
        ("BA", "3", "012", False),
    ]
    assert events[2].text == "Hall"
    (restore,) = decode_events("SIA-DCS", "Nri1YR000")
    assert (restore.code, restore.restore, restore.restores) == ("YT", True, ("YT", "YM"))


def test_event_kinds_follow_the_standard_series() -> None:
    """MON-8: troubles (3xx, tampers) open tickets by default; alarms, openings, closings never."""
    assert [kind_of("cid", c) for c in ("301", "302", "137", "130", "110", "401", "602", "305")] == [
        "trouble", "trouble", "trouble", "alarm", "alarm", "opening_closing", "test", "other",
    ]  # fmt: skip
    assert [kind_of("sia", c) for c in ("AT", "TA", "XT", "BA", "FA", "OP", "CL", "RP")] == [
        "trouble", "trouble", "trouble", "alarm", "alarm", "opening_closing", "opening_closing", "test",
    ]  # fmt: skip


@given(offset_ms=st.integers(-300_000, 300_000), past=st.integers(0, 120), future=st.integers(0, 120))
def test_timestamp_window_is_past_to_future_inclusive(offset_ms: int, past: int, future: int) -> None:
    """MON-8: a panel time ``offset_ms`` from the receiver's clock is taken exactly when it
    lies within [-past, +future] (DC-09's -40/+20 s by default)."""
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    settings = AlarmSettings(window_past_seconds=past, window_future_seconds=future)
    taken = -past * 1000 <= offset_ms <= future * 1000
    assert in_window(now + timedelta(milliseconds=offset_ms), now, settings) == taken
    assert in_window(now - timedelta(seconds=40), now, AlarmSettings())
    assert not in_window(now + timedelta(seconds=20.001), now, AlarmSettings())
