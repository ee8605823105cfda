"""notify() costs the same few statements whatever the number of recipients and devices."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from litestar import Litestar
from sqlalchemy import event, func, select

from hub.db import Database
from hub.notifications import notify
from hub.notifications.models import DeviceToken
from hub.outbox.models import OutboxMessage
from hub.people.models import Contact
from tests.conftest import Tenant
from tests.notifications.helpers import FCM_BASE, configure, service_account

TICKET = SimpleNamespace(id=7, number=42, status="resolved", object_id=None, account_id=0)


async def _contacts_with_devices(db: Database, account_id: int, count: int) -> list[tuple[str, int]]:
    async with db.sessionmaker() as session, session.begin():
        contacts = [Contact(account_id=account_id, name=f"Admin {n}") for n in range(count)]
        session.add_all(contacts)
        await session.flush()
        for contact in contacts:
            for phone in ("a", "b"):
                session.add(
                    DeviceToken(
                        account_id=account_id,
                        contact_id=contact.id,
                        token=f"device-{contact.id}-{phone}",
                        platform="android",
                    )
                )
        return [("contact", contact.id) for contact in contacts]


async def _statements_for_notify(db: Database, account_id: int, recipients: list[tuple[str, int]]) -> int:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    async with db.sessionmaker() as session, session.begin():
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            queued = await notify(
                session, account_id=account_id, event="rating_request", ticket=TICKET, recipients=recipients
            )
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert queued == 2 * len(recipients)  # two devices each
    return len(statements)


async def test_fan_out_to_many_recipients_costs_no_statements_per_message(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10 (fan-out throughput): a push to 6 admins with 2 devices each (12 outbox messages)
    takes as many statements as a push to one admin: recipients, their devices and the outbox rows
    are read and written together, not one by one."""
    db: Database = app.state.db
    await configure(client, tenant, "push", {"service_account": service_account(), "base_url": FCM_BASE})
    one = await _statements_for_notify(db, tenant.id, await _contacts_with_devices(db, tenant.id, 1))
    six = await _statements_for_notify(db, tenant.id, await _contacts_with_devices(db, tenant.id, 6))
    assert six == one
    async with db.sessionmaker() as session:
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert queued == 14
