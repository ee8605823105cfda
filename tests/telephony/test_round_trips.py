"""A PBX that repeats itself (retries, a burst replayed after a network hiccup) must cost the hub
little: a repeated event is recognised before the caller match and the ticket lists."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.conftest import Tenant
from tests.statements import counting_statements
from tests.telephony.conftest import Clients, Pbx, calls

RING = {
    "event": "ringing",
    "call_id": "c-dup",
    "from_number": "+7 912 345-67-89",
    "to_number": "+74951112233",
    "extensions": ["101", "102"],
}
# Authentication, the call (locked), its log entry: nothing more for a repeat.
MAX_DUPLICATE_STATEMENTS = 3


async def test_a_repeated_event_is_found_before_the_caller_match(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2: a repeated ringing (and hangup) event answers ``duplicate`` after at most three
    statements, none of them the caller match, and changes nothing; the first one pops up."""
    with counting_statements(app.state.db) as first:
        applied = await pbx.hub(**RING)
    assert applied.json()["outcome"] == "applied", applied.text
    for event in (RING, {"event": "hangup", "call_id": "c-dup", "cause": "noAnswer"}):
        if event["event"] == "hangup":
            assert (await pbx.hub(**event)).json()["outcome"] == "applied"
        with counting_statements(app.state.db) as repeat:
            again = await pbx.hub(**event)
        assert again.json()["outcome"] == "duplicate", again.text
        assert len(repeat) <= MAX_DUPLICATE_STATEMENTS, "\n\n".join(repeat)
        assert not any("phone_index" in s or "tickets" in s for s in repeat), "\n\n".join(repeat)
    assert any("phone_index" in s for s in first), "the first ringing event matches the caller"
    [call] = await calls(client, tenant)
    assert call["status"] == "ended" and call["client"]["id"] == clients.contact_id
