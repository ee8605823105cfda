"""TEL-4 with several hub processes on one PostgreSQL: the pop-up crosses processes."""

from __future__ import annotations

from pathlib import Path

import httpx

from hub.db import Database
from hub.telephony.service import issue_token
from tests.conftest import make_settings, make_tenant
from tests.telephony.hubproc import fresh_database, hub_processes, private_pg_url
from tests.telephony.server import SseReader


async def test_event_posted_to_one_process_reaches_stream_on_another(tmp_path: Path) -> None:
    """TEL-4 (scale-out): two ``hub serve`` processes on one PostgreSQL with the LISTEN/NOTIFY
    channels backend; the dispatcher's stream is held on process B, the PBX posts to process A;
    the pop-up, its update and its close all arrive on B, and a stream reopened on A with B's
    last event id catches up on the same log."""
    url = private_pg_url("hub_tel_multiprocess")
    await fresh_database(url)
    db = Database(url)
    try:
        tenant = await make_tenant(db, make_settings(url, tmp_path / "seed"), "Gamma Alarms")
        async with db.sessionmaker() as session, session.begin():
            token = await issue_token(session, tenant.id)
    finally:
        await db.dispose()
    async with hub_processes(url, tmp_path) as (a, b), httpx.AsyncClient(timeout=30) as http:
        contact = await http.post(
            f"{a.base_url}/api/contacts",
            json={"name": "Pavel Orlov", "mobile": "+7 903 111-22-33"},
            headers=tenant.dispatcher.headers,
        )
        assert contact.status_code == 201, contact.text
        async with http.stream(
            "GET", f"{b.base_url}/api/telephony/stream", headers=tenant.dispatcher.headers
        ) as response:
            assert response.status_code == 200
            reader = SseReader(response)
            await reader.connected()
            event = {
                "event": "ringing",
                "call_id": "mp-1",
                "from_number": "8 903 111 22 33",
                "extensions": ["101", "102"],
            }
            assert (
                await http.post(f"{a.base_url}/api/telephony/pbx/events/{token}", json=event)
            ).status_code == 200
            popup = await reader.next_of("call.ringing")
            assert popup.data["call"]["external_id"] == "mp-1"
            assert [m["name"] for m in popup.data["matches"]] == ["Pavel Orlov"]
            await http.post(
                f"{a.base_url}/api/telephony/pbx/events/{token}",
                json={"event": "answered", "call_id": "mp-1", "extension": "102"},
            )
            answered = await reader.next_of("call.answered")
            assert answered.data["call"]["employee_id"] == tenant.engineer.id
            await http.post(
                f"{b.base_url}/api/telephony/pbx/events/{token}",
                json={"event": "hangup", "call_id": "mp-1", "duration": 7},
            )
            ended = await reader.next_of("call.ended")
        await http.post(
            f"{b.base_url}/api/telephony/pbx/events/{token}",
            json={
                "event": "ringing",
                "call_id": "mp-2",
                "from_number": "+79031112233",
                "extensions": ["101"],
            },
        )
        async with http.stream(
            "GET",
            f"{a.base_url}/api/telephony/stream",
            headers=tenant.dispatcher.headers,
            params={"last_event_id": str(ended.id)},
        ) as response:
            reader = SseReader(response)
            missed = await reader.next_of("call.ringing")
            assert missed.data["call"]["external_id"] == "mp-2" and missed.id > ended.id
