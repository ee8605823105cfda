"""Notification settings for administrators, and device registration for client-app users."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import administrators, app_users
from hub.auth.principal import Principal
from hub.notifications import service
from hub.notifications.schemas import (
    ChannelRead,
    ChannelWrite,
    ContactPointCreate,
    ContactPointRead,
    DeviceRead,
    DeviceRegister,
    RulesRead,
)
from hub.paging import DEFAULT_LIMIT, Cursor, Key, Limit, Order, Page, page_of
from hub.schemas import to_read

__all__ = ["AppDeviceController", "NotificationController"]


# Channels are a fixed short set, listed in the hub's order; the key only finds a page's place.
_CHANNEL_ORDER = Order("channel", (Key(None, lambda read: read.channel),))


class NotificationController(Controller):
    path = "/api/notifications"
    tags = ["notifications"]

    @get(
        "/channels",
        guards=[administrators],
        summary="Every channel and its settings (secrets hidden), one page",
    )
    async def list_channels(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ChannelRead]:
        channels = await service.list_channels(db_session, principal.account_id)
        rows, next_cursor = page_of(channels, _CHANNEL_ORDER, cursor=cursor, limit=limit)
        return Page(rows, next_cursor)

    @put("/channels", guards=[administrators], summary="Configure one channel (omitted secrets are kept)")
    async def put_channel(
        self, data: ChannelWrite, db_session: AsyncSession, principal: Principal
    ) -> ChannelRead:
        return await service.put_channel(db_session, principal.account_id, data)

    @get("/rules", guards=[administrators], summary="Per event type: which channels are on")
    async def get_rules(self, db_session: AsyncSession, principal: Principal) -> RulesRead:
        return RulesRead(await service.read_rules(db_session, principal.account_id))

    @put("/rules", guards=[administrators], summary="Switch channels on or off per event type")
    async def put_rules(self, data: RulesRead, db_session: AsyncSession, principal: Principal) -> RulesRead:
        return RulesRead(await service.set_rules(db_session, principal.account_id, data.rules))

    @get(
        "/contact-points",
        guards=[administrators],
        summary="Extra addresses (Telegram chats, e-mails, phones), oldest first",
    )
    async def list_points(
        self,
        db_session: AsyncSession,
        principal: Principal,
        owner_kind: Literal["employee", "contact"] | None = None,
        owner_id: Annotated[int | None, Parameter(ge=1, le=2**62)] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ContactPointRead]:
        rows, next_cursor = await service.list_contact_points(
            db_session, principal.account_id, owner_kind, owner_id, cursor=cursor, limit=limit
        )
        return Page([to_read(ContactPointRead, row) for row in rows], next_cursor)

    @post("/contact-points", guards=[administrators], summary="Add an address for an employee or contact")
    async def add_point(
        self, data: ContactPointCreate, db_session: AsyncSession, principal: Principal
    ) -> ContactPointRead:
        return to_read(
            ContactPointRead, await service.add_contact_point(db_session, principal.account_id, data)
        )

    @delete("/contact-points/{point_id:int}", guards=[administrators], summary="Remove an address")
    async def delete_point(self, point_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await service.delete_contact_point(db_session, principal.account_id, point_id)


class AppDeviceController(Controller):
    path = "/api/app/devices"
    tags = ["client app"]

    @post("/", guards=[app_users], summary="Register this installation's FCM token for push")
    async def register(
        self, data: DeviceRegister, db_session: AsyncSession, principal: Principal
    ) -> DeviceRead:
        row = await service.register_device(
            db_session, principal.account_id, principal.contact_id or 0, data.token, data.platform
        )
        return to_read(DeviceRead, row)

    @delete("/{device_id:int}", guards=[app_users], summary="Unregister a device (sign-out)")
    async def unregister(self, device_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await service.unregister_device(
            db_session, principal.account_id, principal.contact_id or 0, device_id
        )
