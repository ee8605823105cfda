"""Shared set-up for notification tests: channels configured through the API, recipients, a
service-account key for FCM, a local SMTP sink."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from hub.db import Database
from hub.devkit import TOKEN_URI, private_key_pem, service_account
from hub.outbox.models import OutboxMessage
from tests.conftest import PASSWORD, Tenant

__all__ = [
    "FCM_BASE",
    "SMS_BASE",
    "TG_BASE",
    "TG_TOKEN",
    "TOKEN_URI",
    "WEBHOOK_SECRET",
    "WEBHOOK_URL",
    "AppUser",
    "SmtpSink",
    "configure",
    "make_app_user",
    "messages",
    "service_account",
]

FCM_BASE = "https://fcm.test"
SMS_BASE = "https://sms.test"
TG_BASE = "https://telegram.test"
TG_TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678"
WEBHOOK_URL = "https://hooks.test/hub"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def public_key_pem() -> bytes:
    key = serialization.load_pem_private_key(private_key_pem().encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class SmtpSink:
    """A real SMTP server on localhost (aiosmtpd) that records mail and can refuse it."""

    received: list[Message] = field(default_factory=list)
    # Replies to give before accepting, e.g. ["451 4.3.0 try later"]; "always" keeps refusing.
    refuse: list[str] = field(default_factory=list)
    always: str | None = None
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.always:
            return self.always
        if self.refuse:
            return self.refuse.pop(0)
        self.received.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> Controller:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        controller = Controller(self, hostname="127.0.0.1", port=self.port)
        controller.start()
        return controller


async def configure(client: httpx.AsyncClient, tenant: Tenant, channel: str, config: dict[str, Any]) -> None:
    response = await client.put(
        "/api/notifications/channels",
        json={"channel": channel, "config": config},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200, response.text


@dataclass
class AppUser:
    contact_id: int
    headers: dict[str, str]


async def make_app_user(
    client: httpx.AsyncClient,
    tenant: Tenant,
    name: str = "Client",
    *,
    email: str | None = None,
    mobile: str | None = None,
) -> AppUser:
    body: dict[str, Any] = {"name": name}
    if email:
        body["email"] = email
    if mobile:
        body["mobile"] = mobile
    contact = await client.post("/api/contacts", json=body, headers=tenant.admin.headers)
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]
    login = f"app-{uuid.uuid4().hex[:8]}"
    made = await client.post(
        f"/api/contacts/{contact_id}/app-user",
        json={"login": login, "password": PASSWORD},
        headers=tenant.admin.headers,
    )
    assert made.status_code == 201, made.text
    tokens = await client.post(
        "/api/auth/login",
        json={"account": tenant.slug, "login": login, "password": PASSWORD, "kind": "app_user"},
    )
    assert tokens.status_code == 200, tokens.text
    return AppUser(contact_id, {"Authorization": f"Bearer {tokens.json()['access_token']}"})


async def messages(db: Database, topic: str | None = None) -> list[OutboxMessage]:
    async with db.sessionmaker() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if topic:
            query = query.where(OutboxMessage.topic == topic)
        return list(await session.scalars(query))
