"""The ticket floors shared by ``bench.desk`` and ``bench.monitoring``: a ticket stored the way the
hub stores one, in plain asyncpg on scratch copies of the tables (no foreign keys).

* store: the ticket number taken race-free by one ``UPDATE ... RETURNING`` on the account row, as
  ``hub.desk.numbering`` does, + the ticket INSERT, one transaction;
* lean: the same + the 'created' history row + the live event, one transaction.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

__all__ = ["TICKET_TABLES", "distinct_numbers", "store_ticket"]

# {scratch: original}, for bench._floors.scratch_tables (copy the accounts: their counters).
TICKET_TABLES = {
    "bench_floor_accounts": "accounts",
    "bench_floor_tickets": "tickets",
    "bench_floor_history": "ticket_events",
    "bench_floor_live": "live_staged",
}

NUMBER_SQL = """
UPDATE bench_floor_accounts SET next_ticket_number = next_ticket_number + 1
WHERE id = $1 RETURNING next_ticket_number - 1
"""
TICKET_SQL = """
INSERT INTO bench_floor_tickets (account_id, number, title, description, type, priority, status, source,
    contact_id, object_id, responsible_id, created_by_kind, created_by_id, created_by_name, operator_name,
    needs_reply, important, sla_reaction_breached, sla_resolution_breached, ext_flags, pending_seconds,
    search_text, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'service', 'normal', 'open', $5, $6, $7, $8, $9, $10, $11, $12,
    false, false, false, false, '{}', 0, $13, now(), now())
RETURNING id
"""
HISTORY_SQL = """
INSERT INTO bench_floor_history (account_id, ticket_id, kind, actor_kind, actor_id, actor_name, data, created_at)
VALUES ($1, $2, 'created', $3, $4, $5, $6, now())
"""
LIVE_SQL = """
INSERT INTO bench_floor_live (channel, event_type, data, created_at) VALUES ($1, 'ticket.created', $2, now())
"""


async def store_ticket(
    conn: asyncpg.Connection,
    account_id: int,
    actor: tuple[str, int | None, str],
    ticket: dict[str, Any],
    *,
    lean: bool,
) -> int:
    """One ticket (``ticket``: title, description, source, and optionally contact_id, object_id,
    responsible_id, operator_name) by ``actor`` (kind, id, name), inside the caller's transaction;
    answers its id."""
    kind, actor_id, actor_name = actor
    number = await conn.fetchval(NUMBER_SQL, account_id)
    search = f"{number} {ticket['title']} {ticket['description']}".lower()[:600]
    ticket_id: int = await conn.fetchval(
        TICKET_SQL,
        account_id,
        number,
        ticket["title"],
        ticket["description"],
        ticket["source"],
        ticket.get("contact_id"),
        ticket.get("object_id"),
        ticket.get("responsible_id"),
        kind,
        actor_id,
        None if kind == "monitoring" else actor_name,
        ticket.get("operator_name"),
        search,
    )
    if lean:
        data = json.dumps({"number": number, "source": ticket["source"]})
        await conn.execute(HISTORY_SQL, account_id, ticket_id, kind, actor_id, actor_name, data)
        await conn.execute(LIVE_SQL, f"a{account_id}.desk", json.dumps({"id": ticket_id, "number": number}))
    return ticket_id


async def distinct_numbers(conn: asyncpg.Connection, table: str, account_id: int) -> bool:
    """Every ticket of the account in ``table`` has a number of its own (numbering race-free)."""
    rows, numbers = await conn.fetchrow(
        f"SELECT count(*), count(DISTINCT number) FROM {table} WHERE account_id = $1", account_id
    )
    return bool(rows == numbers)
