"""MON-2..7: the client app's API for object users, with seed 000's rules."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database
from hub.desk import service as desk
from hub.desk.models import Ticket, TicketEvent
from hub.outbox.models import OutboxMessage
from tests.conftest import Tenant
from tests.monitoring.helpers import (
    Site,
    app_ticket,
    dispatcher_ticket,
    make_site,
    monitoring_ticket,
    resolve,
    set_status,
    update,
)
from tests.notifications.helpers import AppUser, configure, make_app_user, service_account


async def _list(client: httpx.AsyncClient, site: Site, who: AppUser, **params: int) -> dict:
    response = await client.get(
        f"/api/app/objects/{site.object_id}/tickets", params=params, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _row(listing: dict, ticket_id: int) -> dict:
    return next(t for t in listing["tickets"] if t["id"] == ticket_id)


async def _rate(
    client: httpx.AsyncClient, who: AppUser, ticket_id: int, score: int = 5, comment: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/api/app/tickets/{ticket_id}/rating", json={"score": score, "comment": comment}, headers=who.headers
    )


# --- MON-2 -------------------------------------------------------------------------------------


async def test_object_list_last_20_from_any_source_with_header(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-2: the user's objects; per object the last 20 tickets from any source (app, dispatcher,
    monitoring), newest first, with status, engineer, repair date and rating; internal tickets
    never; the header shows the company's name and phone and the object number."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    objects = await client.get("/api/app/objects", headers=site.user.headers)
    assert [(o["id"], o["number"], o["role"]) for o in objects.json()] == [
        (site.object_id, site.number, "user")
    ]
    ids = [await dispatcher_ticket(db, tenant, site, title=f"Ticket {n}") for n in range(22)]
    await dispatcher_ticket(db, tenant, site, title="Staff only", type="internal")
    monitoring = await monitoring_ticket(client, site)
    mine = await app_ticket(client, site, site.user)
    await update(
        db, tenant, ids[-1], {"responsible_id": tenant.engineer.id, "repair_date": date(2026, 12, 5)}
    )

    listing = await _list(client, site, site.user)
    assert listing["header"] == {
        "company_name": "Alpha Security",
        "company_phone": "+7 495 700-00-01",
        "object_number": site.number,
    }
    shown = [t["id"] for t in listing["tickets"]]
    assert len(shown) == 20 and shown[:3] == [mine, monitoring, ids[-1]]
    assert shown[3:] == list(reversed(ids))[1:18]
    row = _row(listing, ids[-1])
    assert (row["engineer"], row["repair_date"], row["rating_score"]) == (
        tenant.engineer.name,
        "2026-12-05",
        None,
    )
    assert {t["source"] for t in listing["tickets"]} == {"client_app", "monitoring", "incoming_call"}
    assert "Staff only" not in str(listing)


async def test_header_absent_until_the_company_sets_its_phone(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-2: the header is shown only when the security company has set its name and phone."""
    site = await make_site(client, tenant, phone=None)
    assert (await _list(client, site, site.admin))["header"] is None


async def test_only_users_of_the_object_see_it(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """MON-2: an app user who is not a user of the object gets 404, as for a non-existent one."""
    site = await make_site(client, tenant)
    stranger = await make_app_user(client, tenant, "Stranger")
    response = await client.get(f"/api/app/objects/{site.object_id}/tickets", headers=stranger.headers)
    assert response.status_code == 404 and response.json()["code"] == "object_not_found"
    made = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": "x"}, headers=stranger.headers
    )
    assert made.status_code == 404
    staff = await client.get(f"/api/app/objects/{site.object_id}/tickets", headers=tenant.dispatcher.headers)
    assert staff.status_code == 403


# --- MON-3 -------------------------------------------------------------------------------------


async def test_create_from_app_processing_one_active_per_user_and_object(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-3: the app creates a ticket with a description (source client_app, in the dispatchers'
    list, shown as processing); a second active one of the same user and object is refused with a
    clear problem until the first is resolved; other users of the object are not blocked."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    made = await client.post(
        f"/api/app/objects/{site.object_id}/tickets",
        json={"description": "Key fob lost"},
        headers=site.user.headers,
    )
    assert made.status_code == 201
    first = made.json()
    assert (first["status"], first["status_label"], first["source"], first["mine"]) == (
        "open",
        "processing",
        "client_app",
        True,
    )
    async with db.sessionmaker() as session:
        rows = await desk.list_tickets(session, tenant.id, desk.TicketFilters(source=["client_app"]))
        listed = rows[0] if isinstance(rows, tuple) else rows
    assert [t.id for t in listed] == [first["id"]]

    second = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": "Again"}, headers=site.user.headers
    )
    assert second.status_code == 409 and second.json()["code"] == "active_ticket_exists"
    assert "once it is done" in second.json()["detail"]
    assert (
        await client.post(
            f"/api/app/objects/{site.object_id}/tickets",
            json={"description": "Mine"},
            headers=site.admin.headers,
        )
    ).status_code == 201

    await update(db, tenant, first["id"], {"responsible_id": tenant.engineer.id})
    await set_status(db, tenant, first["id"], "in_progress")
    still = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": "Again"}, headers=site.user.headers
    )
    assert still.status_code == 409
    await set_status(db, tenant, first["id"], "resolved")
    assert (
        await client.post(
            f"/api/app/objects/{site.object_id}/tickets",
            json={"description": "New problem"},
            headers=site.user.headers,
        )
    ).status_code == 201
    empty = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": ""}, headers=site.admin2.headers
    )
    assert empty.status_code == 400 and "code" in empty.json()


async def test_two_parallel_creates_by_one_user_yield_one_ticket(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-3: two concurrent creates by one user for one object: one ticket, one clear refusal."""
    site = await make_site(client, tenant)
    answers = await asyncio.gather(
        *(
            client.post(
                f"/api/app/objects/{site.object_id}/tickets",
                json={"description": f"Try {n}"},
                headers=site.user.headers,
            )
            for n in range(2)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    async with app.state.db.sessionmaker() as session:
        assert len(list(await session.scalars(select(Ticket.id).where(Ticket.source == "client_app")))) == 1


# --- MON-4 (seed 000: «Кто видит заявку…») -----------------------------------------------------


async def test_seed_app_ticket_description_seen_by_author_and_admins_only(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-4, seed 000 Q&A "Who sees a ticket from MyAlarm?": all users of the object, but only the
    author and the object's admins see its description."""
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user, "The back door contact is loose")
    for who in (site.user, site.admin, site.admin2):
        assert (
            _row(await _list(client, site, who), ticket_id)["description"] == "The back door contact is loose"
        )
    other = await make_app_user(client, tenant, "Plain user 2")
    await client.post(
        f"/api/objects/{site.object_id}/users",
        json={"contact_id": other.contact_id, "role": "user"},
        headers=tenant.admin.headers,
    )
    row = _row(await _list(client, site, other), ticket_id)
    assert row["description"] is None and row["status"] == "open"
    assert "back door" not in str(await _list(client, site, other))


async def test_seed_dispatcher_and_monitoring_ticket_description_seen_by_nobody(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-4, seed 000 Q&A "Who sees tickets from the dispatcher?": all users of the object, but
    nobody sees the description (also for the monitoring centre's)."""
    site = await make_site(client, tenant)
    by_dispatcher = await dispatcher_ticket(app.state.db, tenant, site)
    by_monitoring = await monitoring_ticket(client, site)
    for who in (site.user, site.admin, site.admin2):
        listing = await _list(client, site, who)
        assert {_row(listing, by_dispatcher)["description"], _row(listing, by_monitoring)["description"]} == {
            None
        }
        assert "4411" not in str(listing) and "secret code" not in str(listing)


# --- MON-7 (seed 000: «Кто может оценить…») ----------------------------------------------------


async def test_seed_app_ticket_rated_only_by_its_author_once(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-7, seed 000 Q&A "Who may rate a ticket from MyAlarm?": only the author, only once. The
    rating and its author show in the ticket's information, the comment in its history."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    early = await _rate(client, site.user, ticket_id)
    assert early.status_code == 409 and early.json()["code"] == "ticket_not_resolved"
    await resolve(db, tenant, ticket_id)
    assert _row(await _list(client, site, site.user), ticket_id)["can_rate"] is True
    assert _row(await _list(client, site, site.admin), ticket_id)["can_rate"] is False
    by_admin = await _rate(client, site.admin, ticket_id)
    assert by_admin.status_code == 403 and by_admin.json()["code"] == "rating_author_only"
    rated = await _rate(client, site.user, ticket_id, 4, "Quick and tidy")
    assert rated.status_code == 201 and rated.json()["rating_score"] == 4
    again = await _rate(client, site.user, ticket_id, 1)
    assert again.status_code == 409 and again.json()["code"] == "already_rated"
    # The dispatcher's ticket card: the rating and who gave it; the comment in the history.
    info = await client.get(f"/api/tickets/{ticket_id}", headers=tenant.dispatcher.headers)
    assert info.status_code == 200, info.text
    card = info.json()
    rater = (card["rating_score"], card["rated_by_kind"], card["rated_by_id"], card["rated_by_name"])
    assert rater == (4, "contact", site.user.contact_id, f"User of {site.number}")
    assert card["status"] == "closed"  # a rating confirms the resolution (DESK-4)
    history = await client.get(f"/api/tickets/{ticket_id}/history", headers=tenant.dispatcher.headers)
    assert history.status_code == 200, history.text
    rated = [e for e in history.json()["items"] if e["kind"] == "rated"]
    assert [e["data"] for e in rated] == [{"score": 4, "comment": "Quick and tidy"}]
    assert _row(await _list(client, site, site.admin2), ticket_id)["rating_score"] == 4


async def test_seed_staff_cannot_rate_in_place_of_the_app_users(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-7, seed 000 "only the author and only once": an employee's rating through the desk API
    would lock the app's rater out, so it is refused (403 rating_in_app_only) on an app ticket and
    on a dispatcher ticket of an object with admins; the author and an admin then rate as usual."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    from_app = await app_ticket(client, site, site.user)
    office_ticket = await dispatcher_ticket(db, tenant, site)
    for ticket_id in (from_app, office_ticket):
        await resolve(db, tenant, ticket_id)
        refused = await client.post(
            f"/api/tickets/{ticket_id}/rating", json={"score": 1}, headers=tenant.dispatcher.headers
        )
        assert refused.status_code == 403 and refused.json()["code"] == "rating_in_app_only"
    assert (await _rate(client, site.user, from_app, 5)).status_code == 201
    assert (await _rate(client, site.admin, office_ticket, 4)).status_code == 201


async def test_seed_dispatcher_ticket_rated_by_an_object_admin_first_come_first_served(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-7, seed 000 Q&A "Who may rate a ticket from the dispatcher?": for a dispatcher's and a
    monitoring-centre ticket alike, only an object admin, once; whoever is first."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    for ticket_id in (await dispatcher_ticket(db, tenant, site), await monitoring_ticket(client, site)):
        await resolve(db, tenant, ticket_id)
        by_user = await _rate(client, site.user, ticket_id)
        assert by_user.status_code == 403 and by_user.json()["code"] == "rating_admin_only"
        assert (await _rate(client, site.admin2, ticket_id, 3)).status_code == 201
        late = await _rate(client, site.admin, ticket_id, 5)
        assert late.status_code == 409 and late.json()["code"] == "already_rated"
        async with db.sessionmaker() as session:
            ticket = await session.get(Ticket, ticket_id)
            assert ticket is not None
            assert (ticket.rating_score, ticket.rated_by_id) == (3, site.admin2.contact_id)


async def test_two_admins_rating_at_once_yield_one_rating(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-7: two object admins rating the same ticket at the same moment: exactly one rating."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    ticket_id = await dispatcher_ticket(db, tenant, site)
    await resolve(db, tenant, ticket_id)
    answers = await asyncio.gather(
        _rate(client, site.admin, ticket_id, 5), _rate(client, site.admin2, ticket_id, 2, "Came late")
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    async with db.sessionmaker() as session:
        ticket = await session.get(Ticket, ticket_id)
        history = list(
            await session.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "rated")
            )
        )
    winner = next(a for a in answers if a.status_code == 201).json()["rating_score"]
    assert ticket is not None and ticket.rating_score == winner and len(history) == 1


# --- MON-6 (seed 000: «Кому приходят пуш-уведомления по оценке?») -------------------------------


async def _with_devices(client: httpx.AsyncClient, tenant: Tenant, site: Site) -> dict[int, str]:
    await configure(client, tenant, "push", {"service_account": service_account(), "link_scheme": "alarmapp"})
    tokens = {}
    for who in (site.admin, site.admin2, site.user):
        token = f"device-of-{who.contact_id}-xxxxxxxx"
        assert (
            await client.post("/api/app/devices", json={"token": token}, headers=who.headers)
        ).status_code == 201
        tokens[who.contact_id] = token
    return tokens


async def _pushes(db: Database) -> list[OutboxMessage]:
    async with db.sessionmaker() as session:
        query = select(OutboxMessage).where(OutboxMessage.topic == "notify.push").order_by(OutboxMessage.id)
        return list(await session.scalars(query))


async def _rating_pushes(db: Database) -> list[OutboxMessage]:
    return [m for m in await _pushes(db) if m.payload["event"] == "rating_request"]


async def test_seed_rating_push_to_author_of_app_ticket_only(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-6, seed 000 Q&A "Who gets the rating push?": for a ticket created in the app, only its
    author, and on resolve only that push (no second "resolved" push); it opens the list with that
    ticket first."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    tokens = await _with_devices(client, tenant, site)
    ticket_id = await app_ticket(client, site, site.user)
    for n in range(3):
        await dispatcher_ticket(db, tenant, site, title=f"Later {n}")
    await resolve(db, tenant, ticket_id)
    pushes = await _rating_pushes(db)
    assert [m.payload["to"] for m in pushes] == [tokens[site.user.contact_id]]
    # One push on resolve: the rating request, not also "your ticket is resolved".
    to_author = [m.payload for m in await _pushes(db) if m.payload["to"] == tokens[site.user.contact_id]]
    assert [(p["event"], p["data"].get("status")) for p in to_author] == [
        ("ticket_registered", None),  # DESK-10: the client is told the request was registered
        ("status_changed", "in_progress"),
        ("rating_request", None),
    ]
    link = pushes[0].payload["data"]["link"]
    assert link == f"alarmapp://objects/{site.object_id}/tickets?first={ticket_id}"
    first = int(link.rsplit("=", 1)[1])
    listing = await _list(client, site, site.user, first=first)
    assert listing["tickets"][0]["id"] == ticket_id and listing["tickets"][0]["can_rate"] is True


async def test_seed_rating_push_to_object_admins_for_dispatcher_and_monitoring_tickets(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-6, seed 000 Q&A "Who gets the rating push?": for a ticket from the dispatcher's web
    interface or the monitoring centre, only the object's admins."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    tokens = await _with_devices(client, tenant, site)
    admins = {tokens[site.admin.contact_id], tokens[site.admin2.contact_id]}
    await resolve(db, tenant, await dispatcher_ticket(db, tenant, site))
    assert {m.payload["to"] for m in await _rating_pushes(db)} == admins
    await resolve(db, tenant, await monitoring_ticket(client, site))
    pushes = await _rating_pushes(db)
    assert len(pushes) == 4 and {m.payload["to"] for m in pushes} == admins


# --- MON-5 -------------------------------------------------------------------------------------


async def test_dispatcher_assignment_and_repair_date_show_in_the_app_with_history(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-5: the dispatcher assigns an engineer and a repair date (desk update_ticket, with
    history); the app's list shows the engineer, the date and each status as it changes."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await update(
        db, tenant, ticket_id, {"responsible_id": tenant.engineer.id, "repair_date": date(2026, 12, 3)}
    )
    row = _row(await _list(client, site, site.admin), ticket_id)
    assert (row["engineer"], row["repair_date"], row["status_label"]) == (
        tenant.engineer.name,
        "2026-12-03",
        "processing",
    )
    await set_status(db, tenant, ticket_id, "in_progress")
    assert _row(await _list(client, site, site.user), ticket_id)["status"] == "in_progress"
    async with db.sessionmaker() as session:
        kinds = [
            e.kind
            for e in await session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))
        ]
    assert "assignment" in kinds and "updated" in kinds and "status_changed" in kinds


async def test_reopened_app_ticket_is_active_again_and_cancelled_frees_the_user(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-3: a resolved ticket that is reopened counts as the user's active one again; a cancelled
    one frees the user to send a new request."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    first = await app_ticket(client, site, site.user)
    await resolve(db, tenant, first)
    await set_status(db, tenant, first, "reopened")
    refused = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": "Again"}, headers=site.user.headers
    )
    assert refused.status_code == 409 and refused.json()["code"] == "active_ticket_exists"
    await set_status(db, tenant, first, "cancelled", comment="Duplicate of a call")
    assert (await app_ticket(client, site, site.user, "Now it works")) > first


async def test_mon_4_dispatcher_and_monitoring_titles_hidden_behind_a_neutral_label(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-4, seed 001 "shown only to staff": the title of a dispatcher's or the monitoring
    centre's ticket never reaches the app (list, single ticket); the app shows its type."""
    site = await make_site(client, tenant)
    secret = "Zone 3 sensor disabled, back window broken, code 1234"
    office = await dispatcher_ticket(app.state.db, tenant, site, title=secret, type="incident")
    made = await client.post(
        "/api/monitoring/tickets",
        json={"object_number": site.number, "operator_name": "Op", "title": secret, "description": "x"},
        headers=site.monitoring,
    )
    centre = made.json()["ticket_id"]
    mine = await app_ticket(client, site, site.user)
    for who in (site.user, site.admin):
        listing = await _list(client, site, who)
        assert secret not in str(listing) and "1234" not in str(listing)
        assert (_row(listing, office)["title"], _row(listing, centre)["title"]) == (
            "Incident",
            "Service visit",
        )
        one = await client.get(f"/api/app/tickets/{office}", headers=who.headers)
        assert one.status_code == 200 and secret not in one.text
    assert _row(await _list(client, site, site.user), mine)["title"] == "Service request from the client app"
    staff = await client.get(f"/api/tickets/{office}", headers=tenant.dispatcher.headers)
    assert staff.json()["title"] == secret


async def test_mon_7_a_score_below_3_needs_a_comment(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-7, seed 002 §14: a score below 3 without a comment is refused (422
    rating_comment_required) and nothing is rated; with a comment it is accepted."""
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await resolve(app.state.db, tenant, ticket_id)
    for bare in (None, "   "):
        refused = await _rate(client, site.user, ticket_id, 2, bare)
        assert refused.status_code == 422 and refused.json()["code"] == "rating_comment_required"
    assert _row(await _list(client, site, site.user), ticket_id)["rating_score"] is None
    rated = await _rate(client, site.user, ticket_id, 2, "Came a day late")
    assert rated.status_code == 201 and rated.json()["rating_score"] == 2
