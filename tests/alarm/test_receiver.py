"""MON-8 end to end: a panel talks DC-09 over real TCP and UDP sockets to the running receiver;
the intake worker applies what was acknowledged; tickets open, fold and resolve as set."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy import func, select

from hub.db import utcnow
from hub.intake.models import IntakeEvent
from hub.monitoring.alarm.frame import ANSWERS, parse_frame, parse_message
from hub.monitoring.alarm.models import AlarmEvent
from hub.monitoring.alarm.panel import Panel, read_reply, udp_exchange
from tests.alarm.helpers import apply, comments, make_panel, receiving, send_tcp, tickets_of
from tests.conftest import Tenant

KEY = "000102030405060708090A0B0C0D0E0F"


async def _count(app: Litestar, model: type) -> int:
    async with app.state.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _token(reply: bytes) -> str:
    return parse_frame(reply, ANSWERS).token


async def test_trouble_opens_ticket_repeat_folds_restore_is_noted(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: AC loss (Contact ID 1301) opens a monitoring ticket naming the object, event, zone
    and partition; the same trouble again folds into it as a private comment with the count;
    the restore (3301) is noted; the ticket stays open (the account did not ask to resolve)."""
    panel, object_id = await make_panel(client, tenant)
    async with receiving(app) as server:
        replies = await send_tcp(
            server,
            panel.contact_id(1, "301", "02", "007"),
            panel.contact_id(1, "301", "02", "007"),
            panel.contact_id(3, "301", "02", "007"),
        )
        assert [_token(r) for r in replies] == ["ACK", "ACK", "ACK"]
        await apply(app)
    (ticket,) = await tickets_of(app, object_id)
    assert ticket.source == "monitoring" and ticket.status == "open"
    assert "AC loss" in ticket.title and "zone 007" in ticket.title and "partition 02" in ticket.title
    assert "Zone: 007; partition: 02" in ticket.description and "ADM-CID" in ticket.description
    notes = await comments(app, ticket.id)
    assert [n.public for n in notes] == [False, False]
    assert "Repeated: AC loss" in notes[0].body and "2 times" in notes[0].body
    assert notes[1].body.startswith("Restored: AC loss restored")
    events = (
        await client.get(f"/api/objects/{object_id}/alarm-events", headers=tenant.dispatcher.headers)
    ).json()["items"]
    assert [e["outcome"] for e in events] == ["restored", "folded", "opened"]
    assert {e["ticket_id"] for e in events} == {ticket.id} and events[0]["zone"] == "007"


async def test_restore_of_every_trouble_resolves_when_the_account_asks(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: with resolve_on_restore, the ticket ends when its last open trouble is restored
    (SIA AT and YT, then AR and YR): cancelled when nobody was assigned, resolved when someone was."""
    panel, object_id = await make_panel(client, tenant, resolve_on_restore=True)
    async with receiving(app) as server:
        await send_tcp(server, panel.sia("Nri1/AT000"), panel.sia("Nri1/YT000"))
        await apply(app)
        assert len(await tickets_of(app, object_id)) == 1
        await send_tcp(server, panel.sia("Nri1/AR000"))
        await apply(app)
        assert (await tickets_of(app, object_id))[0].status == "open"  # the battery is still low
        await send_tcp(server, panel.sia("Nri1/YR000"))
        await apply(app)
        assert (await tickets_of(app, object_id))[0].status == "cancelled"
        # A new trouble after that opens a new ticket; assigned, its restore resolves it.
        await send_tcp(server, panel.sia("Nri1/TA003"))
        await apply(app)
        second = (await tickets_of(app, object_id))[1]
        assigned = await client.patch(
            f"/api/tickets/{second.id}",
            json={"responsible_id": tenant.engineer.id},
            headers=tenant.dispatcher.headers,
        )
        assert assigned.status_code == 200, assigned.text
        await send_tcp(server, panel.sia("Nri1/TR003"))
        await apply(app)
    statuses = [t.status for t in await tickets_of(app, object_id)]
    assert statuses == ["cancelled", "resolved"] and second.title.startswith("Tamper (zone 003")


async def test_alarms_openings_closings_and_tests_open_nothing_but_are_kept(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: burglary, fire, opening, closing and the periodic test never open service tickets;
    every event is kept and listed for the object."""
    panel, object_id = await make_panel(client, tenant)
    async with receiving(app) as server:
        replies = await send_tcp(
            server,
            panel.contact_id(1, "130", "01", "004"),
            panel.contact_id(1, "110"),
            panel.contact_id(1, "401", "01", "012"),
            panel.sia("Nri1/CL012"),
            panel.contact_id(1, "602"),
        )
        assert {_token(r) for r in replies} == {"ACK"}
        await apply(app)
    assert await tickets_of(app, object_id) == []
    listed = await client.get(f"/api/objects/{object_id}/alarm-events", headers=tenant.engineer.headers)
    assert [e["kind"] for e in listed.json()["items"]] == [
        "test",
        "opening_closing",
        "opening_closing",
        "alarm",
        "alarm",
    ]
    assert {e["outcome"] for e in listed.json()["items"]} == {"logged"}


async def test_account_rule_turns_a_trouble_off_and_alarm_codes_cannot_be_turned_on(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: the event table is the account's: AC loss set not to open tickets opens none; an
    alarm code can never be made to open one (422)."""
    panel, object_id = await make_panel(client, tenant)
    off = await client.put(
        "/api/alarm/rules",
        json={"protocol": "cid", "code": "301", "opens_ticket": False},
        headers=tenant.admin.headers,
    )
    assert off.status_code == 200 and off.json()["overridden"] is True and off.json()["default"] is True
    refused = await client.put(
        "/api/alarm/rules",
        json={"protocol": "cid", "code": "130", "opens_ticket": True},
        headers=tenant.admin.headers,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "alarm_code_never_opens"
    async with receiving(app) as server:
        await send_tcp(server, panel.contact_id(1, "301"))
        await apply(app)
    assert await tickets_of(app, object_id) == []
    back = await client.put(
        "/api/alarm/rules",
        json={"protocol": "cid", "code": "301", "opens_ticket": None},
        headers=tenant.admin.headers,
    )
    assert back.status_code == 200 and back.json()["overridden"] is False
    async with receiving(app) as server:
        await send_tcp(server, panel.contact_id(1, "301"))
        await apply(app)
    assert len(await tickets_of(app, object_id)) == 1


async def test_udp_trouble_opens_ticket(app: Litestar, client: httpx.AsyncClient, tenant: Tenant) -> None:
    """MON-8: one datagram, one answer: a trouble over UDP opens a ticket like over TCP."""
    panel, object_id = await make_panel(client, tenant)
    async with receiving(app) as server:
        reply = await udp_exchange("127.0.0.1", server.udp_port, panel.contact_id(1, "384", "01", "021"))
        assert _token(reply) == "ACK"
        await apply(app)
    (ticket,) = await tickets_of(app, object_id)
    assert "RF low battery" in ticket.title


async def test_many_panels_in_one_connection_each_answered_with_its_account(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: a receiver forwarding several panels over one connection: each frame is answered
    in turn with its own sequence and account, and each object gets its own ticket."""
    panels = [await make_panel(client, tenant) for _ in range(3)]
    async with receiving(app) as server:
        frames = [p.contact_id(1, "302") for p, _ in panels]
        replies = await send_tcp(server, *frames)
        await apply(app)
    for (panel, object_id), reply, frame in zip(panels, replies, frames, strict=True):
        answered, sent = parse_frame(reply, ANSWERS), parse_frame(frame)
        assert (answered.token, answered.account, answered.sequence) == ("ACK", panel.account, sent.sequence)
        assert len(await tickets_of(app, object_id)) == 1


async def test_unknown_account_is_answered_duh_shown_to_administrators_and_creates_nothing(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: a number nobody set up gets DUH, nothing is stored, administrators see it."""
    stranger = Panel("ABC123", line="5")
    async with receiving(app) as server:
        (reply,) = await send_tcp(server, stranger.contact_id(1, "301"))
        assert _token(reply) == "DUH"
        udp = await udp_exchange("127.0.0.1", server.udp_port, stranger.contact_id(1, "301"))
        assert _token(udp) == "DUH"
    assert await _count(app, IntakeEvent) == 0 and await _count(app, AlarmEvent) == 0
    seen = await client.get("/api/alarm/unknown-accounts", headers=tenant.admin.headers)
    assert [(u["number"], u["line"]) for u in seen.json()["items"]] == [("ABC123", "5")]
    staff = await client.get("/api/alarm/unknown-accounts", headers=tenant.dispatcher.headers)
    assert staff.status_code == 403


async def test_resend_after_lost_ack_is_acknowledged_and_applied_once(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: the same message again (same account, sequence, timestamp, content) is ACKed again
    and stored once: one event, one ticket, no repeat comment."""
    panel, object_id = await make_panel(client, tenant)
    frame = panel.contact_id(1, "350")
    async with receiving(app) as server:
        first = await send_tcp(server, frame)
        again = await send_tcp(server, frame)
        udp_again = await udp_exchange("127.0.0.1", server.udp_port, frame)
        await apply(app)
    assert [_token(r) for r in (*first, *again, udp_again)] == ["ACK", "ACK", "ACK"]
    assert await _count(app, IntakeEvent) == 1 and await _count(app, AlarmEvent) == 1
    (ticket,) = await tickets_of(app, object_id)
    assert await comments(app, ticket.id) == []


async def test_encrypted_messages_get_encrypted_answers(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: *ADM-CID with the account's AES key: the ACK is *ACK, sealed with the same key and
    carrying the receiver's time; a wrong key or a clear message to a keyed account gets DUH."""
    panel, object_id = await make_panel(client, tenant, key=KEY)
    wrong_key = Panel(panel.account, line=panel.line, key=bytes(16))
    clear = Panel(panel.account, line=panel.line)
    async with receiving(app) as server:
        good, wrong, unsealed = await send_tcp(
            server, panel.contact_id(1, "301"), wrong_key.contact_id(1, "302"), clear.contact_id(1, "302")
        )
        await apply(app)
    frame, text = panel.open_reply(good)
    assert frame.token == "ACK" and frame.encrypted and parse_message(text).timestamp is not None
    assert [_token(wrong), _token(unsealed)] == ["DUH", "DUH"]
    (ticket,) = await tickets_of(app, object_id)
    assert "AC loss" in ticket.title


async def test_timestamp_outside_the_window_is_nak_with_receiver_time(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: 41 s behind or 21 s ahead of the receiver is NAKed with the receiver's time (the
    panel sets its clock from it), encrypted when the message was; nothing is stored."""
    panel, _ = await make_panel(client, tenant)
    sealed, _ = await make_panel(client, tenant, key=KEY)
    async with receiving(app) as server:
        late, early, sealed_late, inside = await send_tcp(
            server,
            panel.contact_id(1, "301", when=utcnow() - timedelta(seconds=41)),
            panel.contact_id(1, "301", when=utcnow() + timedelta(seconds=21)),
            sealed.contact_id(1, "301", when=utcnow() - timedelta(minutes=5)),
            panel.contact_id(1, "301", when=utcnow() - timedelta(seconds=30)),
        )
    assert [_token(late), _token(early), _token(inside)] == ["NAK", "NAK", "ACK"]
    nak = parse_message(parse_frame(late, ANSWERS).rest)
    assert nak.timestamp is not None and abs((nak.timestamp - utcnow()).total_seconds()) < 5
    frame, text = sealed.open_reply(sealed_late)
    assert frame.token == "NAK" and frame.encrypted and parse_message(text).timestamp is not None
    assert await _count(app, IntakeEvent) == 1


async def test_null_link_test_is_acknowledged_and_stores_nothing(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: NULL messages (link supervision) are ACKed, also from a sealed account, and
    create nothing."""
    panel, _ = await make_panel(client, tenant)
    sealed, _ = await make_panel(client, tenant, key=KEY)
    async with receiving(app) as server:
        replies = await send_tcp(server, panel.null(), sealed.null())
    assert [_token(r) for r in replies] == ["ACK", "ACK"] and parse_frame(replies[1], ANSWERS).encrypted
    assert await _count(app, IntakeEvent) == 0


async def test_broken_frames_get_nak_or_duh_and_never_a_ticket(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: wrong CRC and wrong length: NAK (the panel resends); bad hex, unknown tokens,
    unreadable data: DUH; the connection goes on serving the next frame."""
    panel, object_id = await make_panel(client, tenant)
    good = panel.contact_id(1, "301")
    bad_crc = b"\n0000" + good[5:]
    bad_length = good[:5] + b"0FFF" + good[9:]
    bad_hex = b"\nZZZZ" + good[5:]
    garbage = b"\n\x00\xff hello\r"
    unreadable = panel.frame("ADM-CID", "not contact id")
    async with receiving(app) as server:
        replies = await send_tcp(server, bad_crc, bad_length, bad_hex, garbage, unreadable, good)
        await apply(app)
    assert [_token(r) for r in replies] == ["NAK", "NAK", "DUH", "DUH", "DUH", "ACK"]
    assert len(await tickets_of(app, object_id)) == 1


async def test_slow_oversized_and_silent_clients_cannot_hold_the_receiver(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: a client sending one byte a second is cut off after the frame timeout, one sending
    an endless frame at the size limit, a silent one after the idle timeout; meanwhile other
    panels are answered at once."""
    panel, _ = await make_panel(client, tenant)
    async with receiving(
        app, frame_timeout_seconds=1.0, idle_timeout_seconds=1.5, max_frame_bytes=256
    ) as server:
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        big_reader, big = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        silent_reader, _silent = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        big.write(b"\n" + b"A" * 1000)
        for byte in panel.contact_id(1, "301")[:3]:
            slow.write(bytes([byte]))
            await slow.drain()
            (reply,) = await send_tcp(server, panel.contact_id(1, "302"))  # served meanwhile
            assert _token(reply) == "ACK"
            await asyncio.sleep(0.6)
        for reader in (slow_reader, big_reader, silent_reader):
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the receiver
        assert server.connections == set()


async def test_reply_to_a_frame_cut_in_pieces_and_noise_before_it(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: a frame arriving in several TCP segments, with line noise before its LF, is read whole."""
    panel, _ = await make_panel(client, tenant)
    frame = panel.contact_id(1, "301")
    async with receiving(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        writer.write(b"\x00\x00noise" + frame[:10])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(frame[10:])
        assert _token(await read_reply(reader)) == "ACK"
        writer.close()
