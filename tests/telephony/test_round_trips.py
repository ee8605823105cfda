"""A PBX that repeats itself (retries, a burst replayed after a network hiccup) must cost the hub
little: a repeated event is recognised at the door of the intake pipeline, before anything is
applied (no caller match, no ticket lists), and the worker has nothing to do for it."""

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
# Authentication and the refused INSERT of the stored event: nothing more for a repeat (plus
# PostgreSQL's NOTIFY would come only with a stored one).
MAX_DUPLICATE_STATEMENTS = 3


async def test_a_repeated_event_is_found_before_the_caller_match(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2: a repeated ringing (and hangup) event answers ``duplicate`` after at most three
    statements, none of them the caller match, and changes nothing (the worker finds nothing new
    to apply); the first one is matched and its call ends with the hangup."""
    with counting_statements(app.state.db) as first:
        received = await pbx.hub(**RING)  # answered, then applied by the worker (pbx drains it)
    assert received.json()["outcome"] == "received", received.text
    for event in (RING, {"event": "hangup", "call_id": "c-dup", "cause": "noAnswer"}):
        if event["event"] == "hangup":
            assert (await pbx.hub(**event)).json()["outcome"] == "received"
        with counting_statements(app.state.db) as repeat:
            again = await pbx.hub(**event)
        assert again.json()["outcome"] == "duplicate", again.text
        assert len(repeat) <= MAX_DUPLICATE_STATEMENTS, "\n\n".join(repeat)
        assert not any("phone_index" in s or "tickets" in s for s in repeat), "\n\n".join(repeat)
    assert any("phone_index" in s for s in first), "the first ringing event matches the caller"
    [call] = await calls(client, tenant)
    assert call["status"] == "ended" and call["client"]["id"] == clients.contact_id
