"""``notify``: turn one event into outbox messages, one per (recipient, channel, address), in the
caller's transaction (DESK-10). Plus the administrators' channel settings and switches."""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import structlog
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import after_commit, dialect_insert, utcnow
from hub.errors import BadRequest, NotFound, Unprocessable
from hub.notifications.models import ContactPoint, DeviceToken, NotificationChannel, NotificationRule
from hub.notifications.render import render
from hub.notifications.schemas import (
    CHANNEL_CONFIGS,
    CHANNELS,
    EVENTS,
    SECRET_FIELDS,
    ChannelRead,
    ChannelWrite,
    ContactPointCreate,
)
from hub.outbox import Outgoing, enqueue_many
from hub.paging import Rows, by_id, fetch_page

__all__ = [
    "TOPIC_PREFIX",
    "Notice",
    "active_channels",
    "add_contact_point",
    "channel_config",
    "delete_contact_point",
    "list_channels",
    "list_contact_points",
    "notify",
    "notify_all",
    "put_channel",
    "read_rules",
    "register_device",
    "remove_device_token",
    "set_rules",
    "unregister_device",
]

log = structlog.get_logger("hub.notifications")
TOPIC_PREFIX = "notify."
Recipient = tuple[str, int]


# --- notify ------------------------------------------------------------------------------------


async def notify(
    session: AsyncSession,
    *,
    account_id: int,
    event: str,
    ticket: Any = None,
    recipients: Iterable[Recipient] = (),
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> int:
    """Queue ``event`` for every recipient on every channel the account has on for it.

    Returns how many outbox messages were queued. ``key`` makes a repeated call for the same
    effect a no-op (it defaults to a fresh one: each call is its own effect). Delivery happens
    after commit, through the outbox, so a failing channel never blocks or undoes the change.
    """
    return await notify_all(
        session, account_id=account_id, ticket=ticket, notices=[Notice(event, recipients, data, key)]
    )


@dataclass(frozen=True)
class Notice:
    """One event for :func:`notify_all`: its recipients, data and (optional) idempotency key."""

    event: str
    recipients: Iterable[Recipient] = ()
    data: dict[str, Any] | None = None
    key: str | None = None


async def notify_all(
    session: AsyncSession, *, account_id: int, ticket: Any, notices: Sequence[Notice]
) -> int:
    """:func:`notify` for several events of one ticket action, with one address-book round trip
    and one outbox insert (ticket creation tells staff and the client, DESK-10)."""
    for notice in notices:
        if notice.event not in EVENTS:
            raise ValueError(f"unknown notification event {notice.event!r}")
    wanted = [(n, list(dict.fromkeys((str(k), int(i)) for k, i in n.recipients))) for n in notices]
    everyone = list(dict.fromkeys(r for _, unique in wanted for r in unique))
    channels, addresses = await _channels_and_addresses(
        session, account_id, [n.event for n in notices], everyone
    )
    outgoing = [
        message
        for notice, unique in wanted
        if channels.get(notice.event)
        for message in _messages(account_id, ticket, notice, unique, channels[notice.event], addresses)
    ]
    if outgoing:
        await enqueue_many(session, account_id, outgoing)
    return len(outgoing)


def _messages(
    account_id: int,
    ticket: Any,
    notice: Notice,
    unique: list[Recipient],
    channels: set[str],
    addresses: dict[Recipient, list[tuple[str, str]]],
) -> list[Outgoing]:
    event = notice.event
    # JSON-safe copy (Decimal, datetime, ... become strings) so the outbox row can hold it.
    safe_data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(notice.data or {}))
    batch = notice.key or uuid.uuid4().hex
    message = render(event, ticket, safe_data)
    outgoing = [
        Outgoing(
            topic=TOPIC_PREFIX + channel,
            payload={**message, "recipient": [kind, recipient_id], "to": address},
            idempotency_key=f"notify:{account_id}:{event}:{batch}:{kind}:{recipient_id}:{channel}:"
            + hashlib.sha256(address.encode()).hexdigest()[:16],
        )
        for kind, recipient_id in unique
        for channel, address in addresses.get((kind, recipient_id), [])
        if channel in channels
    ]
    if "webhook" in channels:
        # One signed call per event, naming the recipients: the far side routes it itself.
        outgoing.append(
            Outgoing(
                topic=TOPIC_PREFIX + "webhook",
                payload={**message, "recipients": [list(r) for r in unique], "webhook_id": f"msg_{batch}"},
                idempotency_key=f"notify:{account_id}:{event}:{batch}:webhook",
            )
        )
    return outgoing


async def active_channels(session: AsyncSession, account_id: int, event: str) -> set[str]:
    """Channels configured, enabled, and not switched off for ``event`` (one query)."""
    return set(await session.scalars(_ACTIVE_CHANNELS, {"account_id": account_id, "event": event}))


def _part(order: int, kind: Any, owner: Any, channel: Any, address: Any, row_id: Any) -> Any:
    """One branch of the address book query: (part, kind, owner id, channel, address, row id)."""
    return select(
        literal_column(str(order), Integer).label("part"),
        cast(kind, String).label("kind"),
        cast(owner, BigInteger).label("owner_id"),
        cast(channel, String).label("channel"),
        cast(address, String).label("address"),
        cast(row_id, BigInteger).label("row_id"),
    )


@functools.cache
def _address_book(events: int) -> Any:
    """The account's active channels for each of ``events`` events (``event_0``, ...; part 0,
    the event in ``kind``) and every address of the recipients, in one round trip (a UNION ALL,
    ordered in Python by part and row): notify is on every ticket action's path. Built once per
    number of events."""
    from hub.accounts.models import Employee
    from hub.people.models import Contact

    account = bindparam("account_id", type_=BigInteger)
    employees = bindparam("employee_ids", expanding=True, type_=BigInteger)
    contacts = bindparam("contact_ids", expanding=True, type_=BigInteger)
    staff = (Employee.account_id == account, Employee.id.in_(employees), Employee.active.is_(True))
    clients = (Contact.account_id == account, Contact.id.in_(contacts))
    word: dict[str, Any] = {
        w: literal_column(f"'{w}'") for w in ("employee", "contact", "email", "sms", "push")
    }
    nothing: Any = literal_column("NULL")
    sms = func.coalesce(func.nullif(Contact.mobile, ""), Contact.phone)
    point_owner = or_(
        and_(ContactPoint.owner_kind == "employee", ContactPoint.owner_id.in_(employees)),
        and_(ContactPoint.owner_kind == "contact", ContactPoint.owner_id.in_(contacts)),
    )
    channel = NotificationChannel.channel
    device = DeviceToken
    point = ContactPoint
    return union_all(
        *(
            _part(0, bindparam(f"event_{n}", type_=String), nothing, channel, nothing, nothing).where(
                *_channel_on(account, bindparam(f"event_{n}", type_=String))
            )
            for n in range(events)
        ),
        _part(1, word["employee"], Employee.id, word["email"], Employee.email, Employee.id).where(*staff),
        _part(2, word["employee"], Employee.id, word["sms"], Employee.phone, Employee.id).where(*staff),
        _part(3, word["contact"], Contact.id, word["email"], Contact.email, Contact.id).where(*clients),
        _part(4, word["contact"], Contact.id, word["sms"], sms, Contact.id).where(*clients),
        _part(5, word["contact"], device.contact_id, word["push"], device.token, device.id).where(
            device.account_id == account, device.contact_id.in_(contacts)
        ),
        _part(6, point.owner_kind, point.owner_id, point.channel, point.address, point.id).where(
            point.account_id == account, point_owner
        ),
    )


def _channel_on(account: Any, event: Any) -> tuple[Any, ...]:
    """Configured, enabled, and not switched off for ``event``."""
    switched_off = (
        select(NotificationRule.id)
        .where(
            NotificationRule.account_id == account,
            NotificationRule.event == event,
            NotificationRule.channel == NotificationChannel.channel,
            NotificationRule.enabled.is_(False),
        )
        .exists()
    )
    return (NotificationChannel.account_id == account, NotificationChannel.enabled.is_(True), ~switched_off)


_ACTIVE_CHANNELS = select(NotificationChannel.channel).where(
    *_channel_on(bindparam("account_id", type_=BigInteger), bindparam("event"))
)


async def _channels_and_addresses(
    session: AsyncSession, account_id: int, events: list[str], recipients: list[Recipient]
) -> tuple[dict[str, set[str]], dict[Recipient, list[tuple[str, str]]]]:
    """The channels on per event and the (channel, address) pairs per recipient on any of them:
    profile fields, app devices, extra contact points. One query, whatever the recipients."""
    unknown = {k for k, _ in recipients} - {"employee", "contact"}
    if unknown:
        raise ValueError(f"unknown recipient kind {unknown.pop()!r}")
    params = {
        "account_id": account_id,
        **{f"event_{n}": event for n, event in enumerate(events)},
        "employee_ids": [i for k, i in recipients if k == "employee"],
        "contact_ids": [i for k, i in recipients if k == "contact"],
    }
    statement = _address_book(len(events))
    rows = sorted((await session.execute(statement, params)).all(), key=lambda r: (r[0], r[5] or 0))
    channels: dict[str, set[str]] = {}
    for row in rows:
        if row.part == 0:
            channels.setdefault(row.kind, set()).add(row.channel)
    on_any = set().union(*channels.values())
    found: dict[Recipient, list[tuple[str, str]]] = {r: [] for r in recipients}
    for row in rows:
        if row.part and (row.kind, row.owner_id) in found:
            found[(row.kind, row.owner_id)].append((row.channel, row.address or ""))
    addresses = {
        r: list(dict.fromkeys((c, a.strip()) for c, a in pairs if a and a.strip() and c in on_any))
        for r, pairs in found.items()
    }
    return channels, addresses


# --- channel settings and switches ---------------------------------------------------------------


_Row = TypeVar("_Row")


async def _upserted(session: AsyncSession, statement: Any, model: type[_Row]) -> _Row:
    """Run an upsert and return its row as an object, from the RETURNING (no second read).

    ``populate_existing``: the session may hold that row from before the upsert; refresh it."""
    rows = await session.scalars(statement.returning(model), execution_options={"populate_existing": True})
    return rows.one()


def _read(channel: str, row: NotificationChannel | None) -> ChannelRead:
    config = row.config if row else {}
    return ChannelRead(
        channel=channel,
        enabled=bool(row and row.enabled),
        configured=row is not None,
        settings={k: v for k, v in config.items() if k not in SECRET_FIELDS},
        secrets_set=sorted(k for k, v in config.items() if k in SECRET_FIELDS and v),
    )


async def list_channels(session: AsyncSession, account_id: int) -> list[ChannelRead]:
    rows = {
        row.channel: row
        for row in await session.scalars(
            select(NotificationChannel).where(NotificationChannel.account_id == account_id)
        )
    }
    return [_read(channel, rows.get(channel)) for channel in CHANNELS]


async def put_channel(session: AsyncSession, account_id: int, data: ChannelWrite) -> ChannelRead:
    """Set a channel's settings. Secrets left out keep their stored value (the API never shows them)."""
    channel = data.channel
    row = await session.scalar(
        select(NotificationChannel).where(
            NotificationChannel.account_id == account_id, NotificationChannel.channel == channel
        )
    )
    merged = dict(data.config)
    if row is not None:
        for name in SECRET_FIELDS:
            if name in row.config and name not in merged:
                merged[name] = row.config[name]
    try:
        config = msgspec.convert(merged, CHANNEL_CONFIGS[channel])
    except msgspec.ValidationError as exc:
        raise Unprocessable(f"Invalid {channel} settings: {exc}", code="invalid_channel_config") from exc
    values = {"config": msgspec.to_builtins(config), "enabled": data.enabled, "updated_at": utcnow()}
    # An upsert: two administrators saving the same channel at once both succeed (last one wins).
    statement = dialect_insert(session, NotificationChannel).values(
        account_id=account_id, channel=channel, **values
    )
    statement = statement.on_conflict_do_update(index_elements=["account_id", "channel"], set_=values)
    row = await _upserted(session, statement, NotificationChannel)
    from hub.notifications.delivery import forget_config

    after_commit(session, forget_config)
    return _read(channel, row)


async def channel_config(session: AsyncSession, account_id: int | None, channel: str) -> Any | None:
    """The typed settings of an enabled channel, or None (used by the delivery handlers)."""
    row = await session.scalar(
        select(NotificationChannel).where(
            NotificationChannel.account_id == account_id,
            NotificationChannel.channel == channel,
            NotificationChannel.enabled.is_(True),
        )
    )
    return None if row is None else msgspec.convert(row.config, CHANNEL_CONFIGS[channel])


async def read_rules(session: AsyncSession, account_id: int) -> dict[str, dict[str, bool]]:
    rules = {event: dict.fromkeys(CHANNELS, True) for event in EVENTS}
    rows = await session.scalars(select(NotificationRule).where(NotificationRule.account_id == account_id))
    for row in rows:
        if row.event in rules and row.channel in CHANNELS:
            rules[row.event][row.channel] = row.enabled
    return rules


async def set_rules(
    session: AsyncSession, account_id: int, changes: dict[str, dict[str, bool]]
) -> dict[str, dict[str, bool]]:
    """Switch channels per event type; events and channels not named keep their state."""
    for event, per_channel in changes.items():
        if event not in EVENTS:
            raise BadRequest(f"Unknown event {event!r}", code="unknown_event")
        for channel in per_channel:
            if channel not in CHANNELS:
                raise BadRequest(f"Unknown channel {channel!r}", code="unknown_channel")
    for event, per_channel in changes.items():
        for channel, enabled in per_channel.items():
            # An upsert, so concurrent saves of the same switch both succeed.
            statement = dialect_insert(session, NotificationRule).values(
                account_id=account_id, event=event, channel=channel, enabled=enabled
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["account_id", "event", "channel"], set_={"enabled": enabled}
                )
            )
    return await read_rules(session, account_id)


# --- contact points and devices ----------------------------------------------------------------


async def add_contact_point(session: AsyncSession, account_id: int, data: ContactPointCreate) -> ContactPoint:
    from hub.accounts.models import Employee
    from hub.people.models import Contact

    owner: Employee | Contact | None
    if data.owner_kind == "employee":
        owner = await session.get(Employee, data.owner_id)
    else:
        owner = await session.get(Contact, data.owner_id)
    if owner is None or owner.account_id != account_id:
        raise NotFound(f"No such {data.owner_kind}", code=f"{data.owner_kind}_not_found")
    key = {
        "account_id": account_id,
        "owner_kind": data.owner_kind,
        "owner_id": data.owner_id,
        "channel": data.channel,
        "address": data.address.strip(),
    }
    # Adding a known address (also twice at once) answers with the one already there.
    statement = dialect_insert(session, ContactPoint).values(**key, created_at=utcnow())
    await session.execute(statement.on_conflict_do_nothing(index_elements=list(key)))
    point = await session.scalar(select(ContactPoint).filter_by(**key))
    assert point is not None  # inserted just now or by the concurrent call it collided with
    return point


async def list_contact_points(
    session: AsyncSession,
    account_id: int,
    owner_kind: str | None = None,
    owner_id: int | None = None,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Rows:
    """Oldest first."""
    query = select(ContactPoint).where(ContactPoint.account_id == account_id)
    if owner_kind:
        query = query.where(ContactPoint.owner_kind == owner_kind)
    if owner_id:
        query = query.where(ContactPoint.owner_id == owner_id)
    return await fetch_page(session, query, by_id(ContactPoint.id), cursor=cursor, limit=limit)


async def delete_contact_point(session: AsyncSession, account_id: int, point_id: int) -> None:
    point = await session.get(ContactPoint, point_id)
    if point is None or point.account_id != account_id:
        raise NotFound("No such contact point", code="contact_point_not_found")
    await session.delete(point)


async def register_device(
    session: AsyncSession, account_id: int, contact_id: int, token: str, platform: str
) -> DeviceToken:
    """Register (or move to this user) an app installation's FCM token.

    One upsert on the token: the same phone signing in again, as another user or to another
    company's app account, moves the token there; concurrent registrations both succeed."""
    now = utcnow()
    owner = {"account_id": account_id, "contact_id": contact_id, "platform": platform, "last_seen_at": now}
    statement = dialect_insert(session, DeviceToken).values(token=token, created_at=now, **owner)
    statement = statement.on_conflict_do_update(index_elements=["token"], set_=owner)
    return await _upserted(session, statement, DeviceToken)


async def unregister_device(session: AsyncSession, account_id: int, contact_id: int, device_id: int) -> None:
    row = await session.get(DeviceToken, device_id)
    if row is None or row.account_id != account_id or row.contact_id != contact_id:
        raise NotFound("No such device", code="device_not_found")
    await session.delete(row)


async def remove_device_token(session: AsyncSession, account_id: int | None, token: str) -> int:
    """FCM said the token is gone (UNREGISTERED, or a malformed token): forget it."""
    result = await session.execute(
        delete(DeviceToken).where(DeviceToken.account_id == account_id, DeviceToken.token == token)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
