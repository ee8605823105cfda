"""TEL-4: live pop-ups over SSE through hub/live.py, per employee, with catch-up."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx
from tests.telephony.server import SseReader, serve


async def test_popup_reaches_ringing_extensions_then_updates_and_closes(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-4, TEL-3: the employees whose extensions ring get a pop-up with every matched client;
    answering elsewhere updates it, the hangup closes it; an employee whose phone did not ring
    gets nothing."""
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        streams = {}
        async with (
            http.stream("GET", "/api/telephony/stream", headers=tenant.dispatcher.headers) as disp,
            http.stream("GET", "/api/telephony/stream", headers=tenant.engineer.headers) as eng,
            http.stream("GET", "/api/telephony/stream", headers=tenant.admin.headers) as adm,
        ):
            for name, response in (("disp", disp), ("eng", eng), ("adm", adm)):
                assert response.status_code == 200
                streams[name] = SseReader(response)
                await streams[name].connected()
            r = await pbx.hub(
                event="ringing", call_id="p-1", from_number="8 (912) 345-67-89", extensions=["101", "102"]
            )
            assert r.status_code == 200
            for name in ("disp", "eng"):
                popup = await streams[name].next_of("call.ringing")
                assert popup.data["call"]["external_id"] == "p-1"
                assert {m["id"] for m in popup.data["matches"]} == {
                    clients.contact_id,
                    clients.other_contact_id,
                }
                ivan = next(m for m in popup.data["matches"] if m["id"] == clients.contact_id)
                assert ivan["company_name"] == "Romashka LLC"
                assert set(popup.data["tickets"]) == {"open", "recent"}
            await pbx.hub(event="answered", call_id="p-1", extension="102")
            for name in ("disp", "eng"):
                frame = await streams[name].next_of("call.answered")
                assert frame.data["call"]["employee_id"] == tenant.engineer.id
                assert frame.data["call"]["answered_extension"] == "102"
            await pbx.hub(event="hangup", call_id="p-1", cause="normalClearing", duration=12)
            for name in ("disp", "eng"):
                frame = await streams[name].next_of("call.ended")
                assert frame.data["call"]["status"] == "ended"
            # The administrator (extension 100) only saw call-list updates, never a pop-up.
            seen = [(await streams["adm"].next()).event for _ in range(3)]
            assert seen == ["call.updated"] * 3


async def test_reconnecting_console_catches_up(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-4: a console that lost its stream during a call gets what it missed, in order, when it
    reconnects with the last event id it saw."""
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream("GET", "/api/telephony/stream", headers=tenant.dispatcher.headers) as response:
            reader = SseReader(response)
            await reader.connected()
            await pbx.hub(event="ringing", call_id="r-1", from_number="+79990001122", extensions=["101"])
            ringing = await reader.next_of("call.ringing")
        await pbx.hub(event="answered", call_id="r-1", extension="101")
        await pbx.hub(event="hangup", call_id="r-1", cause="normalClearing", duration=5)
        params = {"last_event_id": str(ringing.id)}
        async with http.stream(
            "GET", "/api/telephony/stream", headers=tenant.dispatcher.headers, params=params
        ) as response:
            reader = SseReader(response)
            frames = [await reader.next() for _ in range(5)]
        mine = [f.event for f in frames if f.event != "call.updated"]
        assert mine == ["call.answered", "call.ended"]
        ids = [f.id for f in frames]
        assert ids == sorted(ids) and all(i is not None and i > ringing.id for i in ids)


async def test_stream_needs_an_employee(app: Litestar, client: httpx.AsyncClient, tenant: Tenant) -> None:
    """TEL-4: no stream without a valid employee token (EventSource passes it as access_token)."""
    r = await client.get("/api/telephony/stream")
    assert r.status_code == 401
    r = await client.get("/api/telephony/stream", params={"access_token": "nonsense"})
    assert r.status_code == 401
