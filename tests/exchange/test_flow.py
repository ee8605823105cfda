"""Ticket exchange between two hubs (in-process apps joined by an HTTP router) and between
accounts of one hub: transfer, comments both ways, tracking, rating and send-back, disconnect
(EX-3..9). Every hub-to-hub message goes through the outbox and the partner's inbox endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from contracts.exchange import MAX_FILE_BYTES, MAX_INBOX_BYTES
from hub.outbox.models import OutboxMessage
from tests.conftest import PASSWORD, Tenant
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain, pair


async def _partner_ticket(hub: Hub, tenant: Tenant) -> dict[str, Any]:
    found = [t for t in await desk.tickets(hub.client, tenant) if t["source"] == "partner"]
    assert len(found) == 1, found
    return await desk.ticket(hub.client, tenant, found[0]["id"])


async def _transferred(
    a: Hub, alpha: Tenant, b: Hub, beta: Tenant, **options: Any
) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    a_conn, b_conn = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    await desk.transfer(a.client, alpha, original["id"], a_conn, **options)
    await drain(a, b)
    return original, await _partner_ticket(b, beta), a_conn, b_conn


async def test_transfer_without_client_data(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-4, EX-7: the partner gets a new ticket (source partner, its own number) with no end-client
    data; the original shows the partner ticket's number and status."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    company = await a.client.post(
        "/api/companies",
        json={"name": "Secret Client LLC", "phones": ["+7 495 111 22 33"]},
        headers=alpha.admin.headers,
    )
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha, company_id=company.json()["id"])
    await desk.transfer(a.client, alpha, original["id"], a_conn, include_client=False)
    await drain(a, b)
    copy = await _partner_ticket(b, beta)
    assert copy["title"] == original["title"] and copy["source"] == "partner"
    links = await desk.partner_link(b.client, beta, copy["id"])
    assert links[0]["direction"] == "incoming" and links[0]["client"] is None
    assert links[0]["partner_number"] == original["number"]
    everything = str(copy) + str(links) + str(await desk.comments(b.client, beta, copy["id"]))
    assert "Secret Client" not in everything and "111" not in everything
    tracking = (await desk.partner_link(a.client, alpha, original["id"]))[0]
    assert tracking["partner_number"] == copy["number"] and tracking["partner_status"] == copy["status"]
    assert tracking["partner_name"] == "Beta Lifts" and tracking["can_rate"] is False


async def test_transfer_with_client_data(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-4: with *pass the end client's information*, the partner ticket carries the client."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    company = await a.client.post(
        "/api/companies",
        json={"name": "Client Co", "phones": ["+7 495 111 22 33"]},
        headers=alpha.admin.headers,
    )
    contact = await a.client.post(
        "/api/contacts",
        json={"name": "Ivan Petrov", "mobile": "+7 916 000 11 22", "company_id": company.json()["id"]},
        headers=alpha.admin.headers,
    )
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(
        a.client, alpha, company_id=company.json()["id"], contact_id=contact.json()["id"]
    )
    await desk.transfer(a.client, alpha, original["id"], a_conn, include_client=True)
    await drain(a, b)
    copy = await _partner_ticket(b, beta)
    client = (await desk.partner_link(b.client, beta, copy["id"]))[0]["client"]
    assert client["company"] == "Client Co" and client["contact"] == "Ivan Petrov"
    assert any("916" in phone for phone in client["phones"])


async def test_comments_both_ways_public_private_rules(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-5, EX-6: A's comment with *pass to partner* is public in B; A's other comments stay home;
    B's public comments come back to A as private, marked with the partner and author name; B's
    private comments never leave B. Nothing echoes back."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    original, copy, _, _ = await _transferred(a, alpha, b, beta)
    await desk.comment(
        a.client, alpha, original["id"], "please bring a ladder", public=False, pass_to_partner=True
    )
    await desk.comment(a.client, alpha, original["id"], "internal: client is grumpy", public=False)
    await desk.comment(a.client, alpha, original["id"], "for our client only", public=True)
    await drain(a, b)
    await desk.comment(b.client, beta, copy["id"], "engineer on the way", public=True)
    await desk.comment(b.client, beta, copy["id"], "b-internal: spare part missing", public=False)
    await drain(a, b)

    in_b = await desk.comments(b.client, beta, copy["id"])
    bodies_b = {c["body"]: c for c in in_b}
    assert bodies_b["please bring a ladder"]["public"] is True
    assert "internal: client is grumpy" not in bodies_b and "for our client only" not in bodies_b
    assert [c["body"] for c in in_b].count("engineer on the way") == 1

    in_a = await desk.comments(a.client, alpha, original["id"])
    mirrored = [c for c in in_a if c["body"] == "engineer on the way"]
    assert len(mirrored) == 1 and mirrored[0]["public"] is False
    assert "Beta Lifts" in (mirrored[0].get("author_name") or "")
    assert "b-internal: spare part missing" not in str(in_a)
    assert [c["body"] for c in in_a].count("please bring a ladder") == 1  # no echo


async def test_status_tracking_rate_and_send_back(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-7, EX-8, EX-9: B's number, status and responsible show on A's ticket as they change; when
    B resolves, A can rate (B closes) or send back with a comment (B reopens); A's responsible and
    the original ticket's observer are notified of B's decision (with B's comment) through the
    outbox, but not of A's own decision taking effect at B."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha, observer_ids=[alpha.engineer.id])
    await desk.transfer(a.client, alpha, original["id"], a_conn)
    await drain(a, b)
    copy = await _partner_ticket(b, beta)
    await desk.assign(a.client, alpha, original["id"], alpha.dispatcher.id)
    # E-mail on for the account: the responsible and the observer hear of B's decision.
    channel = {"channel": "email", "config": {"host": "smtp.alpha.test", "sender": "desk@alpha.test"}}
    configured = await a.client.put("/api/notifications/channels", json=channel, headers=alpha.admin.headers)
    assert configured.status_code == 200, configured.text

    refused = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/rate",
        json={"score": 5},
        headers=alpha.dispatcher.headers,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "partner_not_resolved"

    await desk.assign(b.client, beta, copy["id"], beta.engineer.id)
    await desk.set_status(b.client, beta, copy["id"], "in_progress")
    await drain(a, b)
    tracking = (await desk.partner_link(a.client, alpha, original["id"]))[0]
    assert tracking["partner_status"] == "in_progress"
    assert tracking["partner_responsible"] == beta.engineer.name

    await desk.set_status(b.client, beta, copy["id"], "resolved")
    await drain(a, b)
    tracking = (await desk.partner_link(a.client, alpha, original["id"]))[0]
    assert tracking["partner_status"] == "resolved" and tracking["can_rate"] is True
    async with a.db.sessionmaker() as session:
        notes = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify.email"))
        ).all()
    decided = {
        tuple(n.payload["recipient"]): n.payload for n in notes if n.payload["event"] == "partner_decision"
    }
    assert set(decided) == {("employee", alpha.dispatcher.id), ("employee", alpha.engineer.id)}
    assert all("Beta Lifts" in p["text"] and p["data"]["status"] == "resolved" for p in decided.values())

    sent_back = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/send-back",
        json={"comment": "the lift still squeaks"},
        headers=alpha.dispatcher.headers,
    )
    assert sent_back.status_code == 200, sent_back.text
    await drain(a, b)
    assert (await desk.ticket(b.client, beta, copy["id"]))["status"] == "reopened"
    assert (await desk.partner_link(a.client, alpha, original["id"]))[0]["partner_status"] == "reopened"

    await desk.set_status(b.client, beta, copy["id"], "resolved", comment="replaced the bearing")
    await drain(a, b)
    rated = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/rate",
        json={"score": 4, "comment": "fine"},
        headers=alpha.dispatcher.headers,
    )
    assert rated.status_code == 200, rated.text
    await drain(a, b)
    closed = await desk.ticket(b.client, beta, copy["id"])
    assert closed["status"] == "closed" and closed["rating_score"] == 4
    assert (await desk.partner_link(a.client, alpha, original["id"]))[0]["partner_status"] == "closed"
    # B's decisions (resolved twice) reach A's people, with B's comment; B reopening after A's
    # send-back and closing after A's rating are A's own decisions: no notification.
    async with a.db.sessionmaker() as session:
        notes = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify.email"))
        ).all()
    decisions = [n.payload["data"] for n in notes if n.payload["event"] == "partner_decision"]
    assert [d["status"] for d in decisions] == ["resolved"] * 4
    bearing = "replaced the bearing"
    assert sorted(d["comment"] or "" for d in decisions) == ["", "", bearing, bearing]


async def test_disconnect_refuses_everything_after(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-3: after B disconnects, A's comments and transfers do not pass; both sides show ended."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    original, copy, a_conn, b_conn = await _transferred(a, alpha, b, beta)
    await desk.comment(
        a.client, alpha, original["id"], "queued before the end", public=False, pass_to_partner=True
    )
    ended = await b.client.post(f"/api/exchange/connections/{b_conn}/disconnect", headers=beta.admin.headers)
    assert ended.status_code == 200
    await drain(a, b)
    assert "queued before the end" not in str(await desk.comments(b.client, beta, copy["id"]))
    conn = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert conn["state"] == "ended" and conn["ended_by"] == "partner"
    another = await desk.new_ticket(a.client, alpha)
    refused = await a.client.post(
        f"/api/exchange/tickets/{another['id']}/transfer",
        json={"connection_id": a_conn},
        headers=alpha.dispatcher.headers,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "connection_ended"


@pytest.mark.parametrize("include_client", [False, True])
async def test_same_hub_chain_a_b_c_no_echo(one_hub: Hub, include_client: bool) -> None:
    """EX-2, EX-6, EX-10 (no echo): on one hub, A transfers to B and B on to C. C's public comment
    reaches B (private) and stops there; A's comment reaches B (public) and goes neither back to A
    nor on to C; B's public comment reaches A only. Each comment exists once per ticket."""
    hub = one_hub
    alpha, beta, gamma = hub.tenants
    ab, _ = await pair(hub, alpha, hub, beta)
    bc, _ = await pair(hub, beta, hub, gamma)
    original = await desk.new_ticket(hub.client, alpha)
    await desk.transfer(hub.client, alpha, original["id"], ab, include_client=include_client)
    await drain(hub)
    b_ticket = await _partner_ticket(hub, beta)
    await desk.transfer(hub.client, beta, b_ticket["id"], bc)
    await drain(hub)
    c_ticket = await _partner_ticket(hub, gamma)

    await desk.comment(hub.client, gamma, c_ticket["id"], "from C", public=True)
    await desk.comment(hub.client, alpha, original["id"], "from A", public=True, pass_to_partner=True)
    await desk.comment(hub.client, beta, b_ticket["id"], "from B", public=True)
    await drain(hub)

    in_a = [c["body"] for c in await desk.comments(hub.client, alpha, original["id"])]
    in_b = [c["body"] for c in await desk.comments(hub.client, beta, b_ticket["id"])]
    in_c = [c["body"] for c in await desk.comments(hub.client, gamma, c_ticket["id"])]
    assert in_a.count("from A") == 1 and in_a.count("from B") == 1 and "from C" not in in_a
    assert in_b.count("from A") == 1 and in_b.count("from B") == 1 and in_b.count("from C") == 1
    assert in_c.count("from C") == 1 and "from A" not in in_c and "from B" not in in_c
    # Refused: B cannot send the ticket back to A over the connection it came on.
    back = await hub.client.post(
        f"/api/exchange/tickets/{b_ticket['id']}/transfer",
        json={
            "connection_id": (await desk.partner_link(hub.client, beta, b_ticket["id"]))[0]["connection_id"]
        },
        headers=beta.dispatcher.headers,
    )
    assert back.status_code == 409 and back.json()["code"] == "ticket_from_this_partner"


async def test_files_chosen_passed_and_mirrored(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-4, EX-5, EX-6 for files: only the chosen files go with the transfer; files passed to the
    partner later are public there; the partner's public files come back private, its private
    files never leave; no file travels back to where it came from."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    chosen = await desk.upload(a.client, alpha, original["id"], "plan.pdf", b"%PDF plan of floor 3")
    await desk.upload(a.client, alpha, original["id"], "contract.pdf", b"%PDF secret contract")
    await desk.transfer(a.client, alpha, original["id"], a_conn, file_ids=[chosen["id"]])
    await drain(a, b)
    copy = next(t for t in await desk.tickets(b.client, beta) if t["source"] == "partner")
    at_b = await desk.files(b.client, beta, copy["id"])
    assert [(f["filename"], f["public"]) for f in at_b] == [("plan.pdf", True)]
    assert await desk.download(b.client, beta, copy["id"], at_b[0]["id"]) == b"%PDF plan of floor 3"

    later = await desk.upload(a.client, alpha, original["id"], "photo.jpg", b"\xff\xd8 photo", public=False)
    passed = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/files",
        json={"file_ids": [later["id"]]},
        headers=alpha.dispatcher.headers,
    )
    assert passed.status_code == 200, passed.text
    await desk.upload(b.client, beta, copy["id"], "report.txt", b"work report")
    await desk.upload(b.client, beta, copy["id"], "internal.txt", b"b only", public=False)
    await drain(a, b)
    await drain(a, b)

    at_b = {f["filename"]: f for f in await desk.files(b.client, beta, copy["id"])}
    assert set(at_b) == {"plan.pdf", "photo.jpg", "report.txt", "internal.txt"}
    assert at_b["photo.jpg"]["public"] is True
    at_a = {f["filename"]: f for f in await desk.files(a.client, alpha, original["id"])}
    assert set(at_a) == {"plan.pdf", "contract.pdf", "photo.jpg", "report.txt"}  # no echo, no private
    assert at_a["report.txt"]["public"] is False and at_a["report.txt"]["uploaded_by_kind"] == "partner"
    assert await desk.download(a.client, alpha, original["id"], at_a["report.txt"]["id"]) == b"work report"

    again = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/transfer",
        json={"connection_id": a_conn},
        headers=alpha.dispatcher.headers,
    )
    assert again.status_code == 409 and again.json()["code"] == "ticket_already_transferred"


async def test_files_not_on_the_ticket_are_refused(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-4, EX-5: a chosen file that is not on the ticket (unknown, or another ticket's) is refused
    with problem JSON 422 file_not_found, and nothing is sent."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    other = await desk.new_ticket(a.client, alpha)
    elsewhere = await desk.upload(a.client, alpha, other["id"], "other.pdf", b"%PDF other ticket")
    for file_ids in ([999999], [elsewhere["id"]]):
        refused = await a.client.post(
            f"/api/exchange/tickets/{original['id']}/transfer",
            json={"connection_id": a_conn, "file_ids": file_ids},
            headers=alpha.dispatcher.headers,
        )
        assert refused.status_code == 422 and refused.json()["code"] == "file_not_found"
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert await desk.partner_link(a.client, alpha, original["id"]) == []
    await desk.transfer(a.client, alpha, original["id"], a_conn)
    refused = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/files",
        json={"file_ids": [elsewhere["id"]]},
        headers=alpha.dispatcher.headers,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "file_not_found"
    await drain(a, b)
    copy = await _partner_ticket(b, beta)
    assert await desk.files(b.client, beta, copy["id"]) == []


async def test_long_author_and_partner_names_fit(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-6: a partner comment is marked "author (partner)"; with a 200-character author and a
    200-character partner name it still fits the desk's author column (a 500 on PostgreSQL before),
    keeping the partner's name whole."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    partner_name, author = "Beta " + "L" * 195, "Engineer " + "E" * 191
    renamed = await b.client.patch("/api/account", json={"name": partner_name}, headers=beta.admin.headers)
    assert renamed.status_code == 200, renamed.text
    renamed = await b.client.patch(
        f"/api/employees/{beta.dispatcher.id}", json={"name": author}, headers=beta.admin.headers
    )
    assert renamed.status_code == 200, renamed.text
    login = await b.client.post(
        "/api/auth/login",
        json={"account": beta.slug, "login": beta.dispatcher.email, "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    original, copy, _, _ = await _transferred(a, alpha, b, beta)
    commented = await b.client.post(
        f"/api/tickets/{copy['id']}/comments",
        json={"body": "long names", "public": True},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert commented.status_code == 201, commented.text
    await drain(a, b)
    mirrored = [c for c in await desk.comments(a.client, alpha, original["id"]) if c["body"] == "long names"]
    assert len(mirrored) == 1
    name = mirrored[0]["author_name"]
    assert len(name) <= 300 and name.endswith(f" ({partner_name})") and name.startswith("Engineer EEE")


async def test_many_large_files_travel_in_several_messages(two_hubs: tuple[Hub, Hub], router: Router) -> None:
    """EX-4, EX-6, EX-10: files over one message's budget travel in several messages, each under the
    partner's 16 MiB inbox limit, in order after the transfer; a file that can never fit a message
    is refused at the API with problem JSON (413 file_too_large_for_partner), and a partner file
    too large to mirror back is named in the partner ticket's history instead of blocking the job."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    big = [
        await desk.upload(a.client, alpha, original["id"], f"scan{n}.bin", bytes([n]) * (5 * 1024 * 1024))
        for n in range(3)
    ]
    huge = await desk.upload(a.client, alpha, original["id"], "huge.bin", b"h" * (MAX_FILE_BYTES + 1))
    refused = await a.client.post(
        f"/api/exchange/tickets/{original['id']}/transfer",
        json={"connection_id": a_conn, "file_ids": [big[0]["id"], huge["id"]]},
        headers=alpha.dispatcher.headers,
    )
    assert refused.status_code == 413 and refused.json()["code"] == "file_too_large_for_partner"
    assert refused.headers["content-type"].startswith("application/problem+json")
    await desk.transfer(a.client, alpha, original["id"], a_conn, file_ids=[f["id"] for f in big])
    await drain(a, b)
    copy = await _partner_ticket(b, beta)
    at_b = await desk.files(b.client, beta, copy["id"])
    assert sorted(f["filename"] for f in at_b) == ["scan0.bin", "scan1.bin", "scan2.bin"]
    assert await desk.download(b.client, beta, copy["id"], at_b[2]["id"]) == bytes([2]) * (5 * 1024 * 1024)

    await desk.upload(b.client, beta, copy["id"], "act1.bin", b"1" * (5 * 1024 * 1024))
    await desk.upload(b.client, beta, copy["id"], "act2.bin", b"2" * (5 * 1024 * 1024))
    await desk.upload(b.client, beta, copy["id"], "video.bin", b"v" * (MAX_FILE_BYTES + 1))
    await drain(a, b)
    at_a = {f["filename"] for f in await desk.files(a.client, alpha, original["id"])}
    assert {"act1.bin", "act2.bin"} <= at_a and "video.bin" not in at_a
    history = await b.client.get(f"/api/tickets/{copy['id']}/history", headers=beta.dispatcher.headers)
    assert "partner_file_not_sent" in history.text and "video.bin" in history.text

    inbox = [r for r in router.requests if r.url.path == "/api/exchange/inbox"]
    with_files = [r for r in inbox if len(r.content) > 1024 * 1024]
    assert len(with_files) == 5  # three files with the transfer, two back: one message each
    assert all(len(r.content) <= MAX_INBOX_BYTES for r in inbox)


async def test_files_of_a_comment_passed_to_the_partner_follow_it(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-5: files attached to a comment passed to the partner reach the partner ticket (public
    there); files of A's other comments stay home, and nothing travels back."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    original, copy, _, _ = await _transferred(a, alpha, b, beta)
    passed = await desk.comment(
        a.client, alpha, original["id"], "photos attached", public=False, pass_to_partner=True
    )
    kept = await desk.comment(a.client, alpha, original["id"], "our notes", public=False)
    for comment_id, name in ((passed["id"], "door.jpg"), (kept["id"], "invoice.pdf")):
        uploaded = await a.client.post(
            f"/api/tickets/{original['id']}/files",
            files={"file": (name, f"bytes of {name}".encode(), "application/octet-stream")},
            data={"public": "false", "comment_id": str(comment_id)},
            headers=alpha.dispatcher.headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    await drain(a, b)
    await drain(a, b)
    at_b = await desk.files(b.client, beta, copy["id"])
    assert [(f["filename"], f["public"]) for f in at_b] == [("door.jpg", True)]
    assert await desk.download(b.client, beta, copy["id"], at_b[0]["id"]) == b"bytes of door.jpg"
    assert "photos attached" in [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    at_a = [f["filename"] for f in await desk.files(a.client, alpha, original["id"])]
    assert sorted(at_a) == ["door.jpg", "invoice.pdf"]  # no echo
