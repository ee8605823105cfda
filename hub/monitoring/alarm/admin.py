"""Administrators' side of the receiver: account numbers on objects, the event rules, the
events of an object and the numbers nobody set up. Never commits."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import Conflict, NotFound, Unprocessable
from hub.monitoring.alarm.codes import (
    CID_LABELS,
    SIA_CODES,
    default_opens_ticket,
    kind_of,
    never_opens_ticket,
)
from hub.monitoring.alarm.models import AlarmAccount, AlarmEvent, AlarmRule, UnknownAlarmAccount
from hub.monitoring.alarm.schemas import AlarmAccountCreate, AlarmAccountRead, AlarmRuleRead
from hub.paging import Rows, by_id, fetch_page
from hub.people.service import get_object

__all__ = [
    "account_read",
    "add_account",
    "change_account",
    "get_account",
    "list_accounts",
    "list_events",
    "list_rules",
    "list_unknown",
    "remove_account",
    "set_rule",
]


def account_read(row: AlarmAccount) -> AlarmAccountRead:
    return AlarmAccountRead(
        row.id,
        row.object_id,
        row.number,
        row.receiver,
        row.line,
        row.key_hex is not None,
        row.resolve_on_restore,
        row.created_at,
    )


async def list_accounts(session: AsyncSession, account_id: int, object_id: int) -> list[AlarmAccount]:
    await get_object(session, account_id, object_id)
    rows = await session.scalars(
        select(AlarmAccount)
        .where(AlarmAccount.account_id == account_id, AlarmAccount.object_id == object_id)
        .order_by(AlarmAccount.id)
    )
    return list(rows)


async def add_account(
    session: AsyncSession, account_id: int, object_id: int, data: AlarmAccountCreate
) -> AlarmAccount:
    await get_object(session, account_id, object_id)
    row = AlarmAccount(
        account_id=account_id,
        object_id=object_id,
        number=data.number.upper(),
        receiver=data.receiver.upper(),
        line=data.line.upper(),
        key_hex=data.key.upper() if data.key else None,
        resolve_on_restore=data.resolve_on_restore,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            "This account number is taken for this receiver and line prefix", code="alarm_account_taken"
        ) from None
    await session.execute(
        delete(UnknownAlarmAccount).where(
            UnknownAlarmAccount.number == row.number,
            *([UnknownAlarmAccount.receiver == row.receiver] if row.receiver else []),
            *([UnknownAlarmAccount.line == row.line] if row.line else []),
        )
    )
    return row


async def get_account(session: AsyncSession, account_id: int, alarm_account_id: int) -> AlarmAccount:
    row = await session.get(AlarmAccount, alarm_account_id)
    if row is None or row.account_id != account_id:
        raise NotFound("No such alarm account", code="alarm_account_not_found")
    return row


async def change_account(
    session: AsyncSession, account_id: int, alarm_account_id: int, changes: dict[str, object]
) -> AlarmAccount:
    row = await get_account(session, account_id, alarm_account_id)
    if "key" in changes:
        key = changes["key"]
        row.key_hex = str(key).upper() if key else None
    if "resolve_on_restore" in changes:
        row.resolve_on_restore = bool(changes["resolve_on_restore"])
    await session.flush()
    return row


async def remove_account(session: AsyncSession, account_id: int, alarm_account_id: int) -> None:
    await session.delete(await get_account(session, account_id, alarm_account_id))
    await session.flush()


async def list_events(
    session: AsyncSession, account_id: int, object_id: int, *, cursor: str | None, limit: int
) -> Rows:
    """The object's events, newest first, one page."""
    await get_object(session, account_id, object_id)
    query = select(AlarmEvent).where(AlarmEvent.account_id == account_id, AlarmEvent.object_id == object_id)
    return await fetch_page(
        session, query, by_id(AlarmEvent.id, newest_first=True), cursor=cursor, limit=limit
    )


def _known_codes() -> dict[tuple[str, str], str]:
    codes = {("cid", code): label for code, label in CID_LABELS.items()}
    # A SIA restore is ruled by the trouble it restores: only the codes that are not restores.
    codes |= {("sia", code): label for code, (label, _, restores) in SIA_CODES.items() if not restores}
    return codes


async def list_rules(session: AsyncSession, account_id: int) -> list[AlarmRuleRead]:
    """The account's event table: every known code with the default and the account's word."""
    own = {
        (r.protocol, r.code): r.opens_ticket
        for r in await session.scalars(select(AlarmRule).where(AlarmRule.account_id == account_id))
    }
    codes = _known_codes()
    codes |= {key: "" for key in own if key not in codes}
    return [
        AlarmRuleRead(
            protocol,
            code,
            label,
            kind_of(protocol, code),
            own.get((protocol, code), default_opens_ticket(protocol, code)),
            default_opens_ticket(protocol, code),
            (protocol, code) in own,
        )
        for (protocol, code), label in sorted(codes.items())
    ]


def _check_code(protocol: str, code: str) -> str:
    code = code.upper()
    valid = (
        len(code) == 3 and all(c in "0123456789ABCDEF" for c in code)
        if protocol == "cid"
        else (len(code) == 2 and code.isalpha() and code.isascii())
    )
    if not valid:
        raise Unprocessable(
            "A Contact ID code is 3 hex digits, a SIA code 2 letters", code="alarm_code_invalid"
        )
    if protocol == "sia" and SIA_CODES.get(code, ("", "", ()))[2]:
        raise Unprocessable(
            "A SIA restore follows the rule of the trouble it restores", code="alarm_code_restore"
        )
    return code


async def set_rule(
    session: AsyncSession, account_id: int, protocol: str, code: str, opens_ticket: bool | None
) -> AlarmRuleRead:
    """The account's word on a code; ``None`` gives the code back its default."""
    code = _check_code(protocol, code)
    if opens_ticket and never_opens_ticket(protocol, code):
        raise Unprocessable(
            "Alarms, openings and closings never open service tickets", code="alarm_code_never_opens"
        )
    mine = (AlarmRule.account_id == account_id, AlarmRule.protocol == protocol, AlarmRule.code == code)
    rule = await session.scalar(select(AlarmRule).where(*mine))
    if opens_ticket is None:
        await session.execute(delete(AlarmRule).where(*mine))
    elif rule is None:
        session.add(AlarmRule(account_id=account_id, protocol=protocol, code=code, opens_ticket=opens_ticket))
    else:
        rule.opens_ticket = opens_ticket
    await session.flush()
    known = [r for r in await list_rules(session, account_id) if (r.protocol, r.code) == (protocol, code)]
    if known:
        return known[0]
    return AlarmRuleRead(protocol, code, "", kind_of(protocol, code), False, False, False)


async def list_unknown(session: AsyncSession, *, cursor: str | None, limit: int) -> Rows:
    """Account numbers the receiver was sent and answered DUH, most recently first seen first:
    they belong to no account yet, so every administrator sees them (numbers only)."""
    query = select(UnknownAlarmAccount)
    return await fetch_page(
        session, query, by_id(UnknownAlarmAccount.id, newest_first=True), cursor=cursor, limit=limit
    )
