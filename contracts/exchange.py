"""The hub-to-hub ticket exchange protocol, version 1 (EX-2, EX-4..8, EX-10).

Two accounts that work together (on one hub or on two hubs) pair once and then exchange signed
messages about the tickets they share. ``contracts/EXCHANGE.md`` explains the handshake and every
message for another vendor; the JSON Schema exported from these Structs lives in
``contracts/schemas/`` (a test keeps the files and the code equal; regenerate with
``python -m contracts.exchange``).

Wire forms (all JSON, UTF-8):

* the pairing key an administrator copies: ``hubpair1.`` + base64url(JSON :class:`PairingKey`);
* ``POST {issuer hub}/api/exchange/handshake`` with :class:`SignedToken` whose ``jws`` is a compact
  JWS (``alg: EdDSA``) of a :class:`ConnectRequest`, answered with a :class:`SignedToken` of a
  :class:`ConnectAccepted`;
* ``POST {partner hub}/api/exchange/inbox`` with :class:`SignedToken` whose ``jws`` carries one
  :class:`Envelope`, answered with :class:`InboxResult` or problem JSON (RFC 9457) with a ``code``.

Members a receiver does not know are ignored (so a version can gain optional information); an
unknown ``kind`` or version is refused. Times carry an offset: a time without one is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from contracts._schema import SCHEMA_DIR, json_schema, write_schema_files

__all__ = [
    "MAX_FILES_PER_MESSAGE",
    "MAX_FILE_BYTES",
    "MAX_INBOX_BYTES",
    "PROTOCOL_VERSION",
    "SCHEMA_DIR",
    "SUPPORTED_VERSIONS",
    "Body",
    "CommentPosted",
    "ConnectAccepted",
    "ConnectRequest",
    "ConnectionEnded",
    "EndClient",
    "Envelope",
    "FileBlob",
    "FilesPosted",
    "InboxResult",
    "PairingKey",
    "Side",
    "SignedToken",
    "StatusUpdate",
    "TicketRated",
    "TicketSentBack",
    "TicketTransfer",
    "schemas",
    "write_schemas",
]

PROTOCOL_VERSION = 1
# The protocol versions this implementation speaks; the handshake picks the highest one both do.
SUPPORTED_VERSIONS = (1,)

Uuid = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="A lower-case RFC 9562 UUID",
    ),
]
HubUrl = Annotated[
    str,
    msgspec.Meta(max_length=500, pattern=r"^https?://[^\s/?#]+(:\d+)?(/[^\s?#]*)?$", description="Base URL"),
]
PublicKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{43}$",
        description="Ed25519 public key: 32 raw bytes, base64url without padding",
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# A time without an offset is ambiguous between two hubs: refused (400), never guessed.
Instant = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 date-time with an offset (Z or +hh:mm)")
]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Versions = Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(min_length=1, max_length=32)]
Side = Literal["issuer", "acceptor"]
Status = Literal["open", "in_progress", "pending", "resolved", "reopened", "closed", "cancelled"]
# Files travel inside the signed message (base64 in JSON, inside a base64url JWS payload: about
# 1.8 times their size); the inbox accepts bodies up to 16 MiB. So one file, and all the files of
# one message together, have at most 8 MiB; a sender splits more files over several messages.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILES_PER_MESSAGE = 15
MAX_INBOX_BYTES = 16 * 1024 * 1024


class PairingKey(msgspec.Struct, kw_only=True):
    """What the pairing key encodes. The issuing hub stores only a one-way verifier of ``secret``."""

    v: Literal[1] = 1
    hub: HubUrl  # the issuing hub's public address: the acceptor's hub posts the handshake there
    kid: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
    secret: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]


class SignedToken(msgspec.Struct):
    """A compact JWS (RFC 7515), ``alg`` ``EdDSA`` (Ed25519, RFC 8037)."""

    jws: Annotated[str, msgspec.Meta(max_length=24 * 1024 * 1024)]


class ConnectRequest(msgspec.Struct, kw_only=True):
    """Acceptor -> issuer. JWS header ``kid`` = the pairing key's ``kid``; signed with the Ed25519
    key whose 32-byte seed is SHA-256("hub-exchange-pairing-v1" || secret): the signature proves
    possession of the secret, which itself never travels."""

    v: Literal[1] = 1
    kid: str
    conn: Uuid  # chosen by the acceptor; names the connection on both sides from now on
    hub: HubUrl  # the acceptor hub's public address (its inbox receives the issuer's messages)
    name: Name  # the acceptor account's name, shown to the issuer
    public_key: PublicKey  # the acceptor's Ed25519 key for this connection
    nonce: Annotated[str, msgspec.Meta(min_length=16, max_length=64)]
    iat: Instant
    # The protocol versions the acceptor speaks (absent: [1]); the issuer answers with its choice.
    versions: Versions = msgspec.field(default_factory=lambda: [PROTOCOL_VERSION])


class ConnectAccepted(msgspec.Struct, kw_only=True):
    """Issuer -> acceptor, the handshake's answer. JWS header ``kid`` = ``{conn}/issuer``; signed
    with the issuer's new connection key, whose public half is in the payload."""

    v: Literal[1] = 1
    conn: Uuid
    hub: HubUrl
    name: Name  # the issuer account's name, shown to the acceptor
    public_key: PublicKey
    nonce: str  # the request's nonce, binding answer to request
    iat: Instant


class FileBlob(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, msgspec.Meta(max_length=200)] = "application/octet-stream"
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_FILE_BYTES)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    data: str  # base64 (standard alphabet) of exactly ``size`` bytes hashing to ``sha256``


class EndClient(msgspec.Struct, kw_only=True):
    """The end client's details, passed only when the sender chose to (EX-4)."""

    company: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    contact: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    phones: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=20)] = []
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    object_number: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    object_address: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class _Body(msgspec.Struct, tag_field="kind", kw_only=True):
    """Message bodies, told apart by ``kind``."""


class TicketTransfer(_Body, tag="ticket.transfer", kw_only=True):
    """Original -> partner, ``seq`` 1 of a shared ticket: create the partner ticket (EX-4)."""

    number: int  # the original ticket's number in the sender's account
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    description: Text = ""
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    client: EndClient | None = None
    files: Annotated[list[FileBlob], msgspec.Meta(max_length=MAX_FILES_PER_MESSAGE)] = []


class CommentPosted(_Body, tag="comment.posted", kw_only=True):
    """A comment (and its files) crossing over. Original -> partner: added *public* (EX-5).
    Partner -> original: a public comment, added *private*, marked as the partner's (EX-6)."""

    ref: Annotated[str, msgspec.Meta(max_length=64)]  # the sender's own comment id
    author_name: Name
    body: Text = ""
    files: Annotated[list[FileBlob], msgspec.Meta(max_length=MAX_FILES_PER_MESSAGE)] = []


class FilesPosted(_Body, tag="files.posted", kw_only=True):
    """Files crossing over without a comment. Original -> partner: files the sender passed on,
    attached *public* (EX-5). Partner -> original: the partner ticket's public files, attached
    *private* (EX-6). The partner ticket's private files are never sent."""

    author_name: Name
    files: Annotated[list[FileBlob], msgspec.Meta(min_length=1, max_length=MAX_FILES_PER_MESSAGE)]


class StatusUpdate(_Body, tag="ticket.status", kw_only=True):
    """Partner -> original: the partner ticket's number, status and responsible (EX-7)."""

    number: int
    status: Status
    responsible_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    comment: Text | None = None
    changed_at: Instant


class TicketRated(_Body, tag="ticket.rated", kw_only=True):
    """Original -> partner: the resolution is confirmed with a rating; the partner ticket closes (EX-8)."""

    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Text | None = None


class TicketSentBack(_Body, tag="ticket.sent_back", kw_only=True):
    """Original -> partner: the resolution is not accepted; the partner ticket reopens (EX-8)."""

    comment: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class ConnectionEnded(_Body, tag="connection.ended", kw_only=True):
    """Either side -> the other: the connection is over; nothing more is accepted (EX-3)."""

    by_name: Name


Body = (
    TicketTransfer
    | CommentPosted
    | FilesPosted
    | StatusUpdate
    | TicketRated
    | TicketSentBack
    | ConnectionEnded
)


class Envelope(msgspec.Struct, kw_only=True):
    """One message. JWS header ``kid`` = ``{conn}/{sender}``, signed with the sender's connection key.

    ``id`` is unique per message and stays the same on every re-delivery; the receiver applies it
    once. ``ticket`` and ``seq`` (1, 2, 3, ... per shared ticket and direction) are set on every
    message about a shared ticket; ``connection.ended`` has neither."""

    v: Literal[1] = 1
    id: Uuid
    conn: Uuid
    sender: Side
    sent_at: Instant  # set at each delivery attempt; the receiver refuses it outside +-5 minutes
    ticket: Uuid | None = None
    seq: Annotated[int, msgspec.Meta(ge=1)] | None = None
    body: Body


class InboxResult(msgspec.Struct):
    id: str
    # applied: done now (with any held successors); held: waits for an earlier ``seq``;
    # rejected: a well-formed, authentic, in-order message the receiver's rules refused (e.g. a
    # second rating): recorded as received, the ticket's ``seq`` moves on, nothing else changes.
    outcome: Literal["applied", "held", "rejected"]
    code: str | None = None  # rejected only: the receiver's problem code, e.g. ``already_rated``
    detail: str | None = None  # rejected only: a human-readable reason


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema files of this contract, by file name."""
    return {
        "exchange.pairing_key.schema.json": json_schema(PairingKey),
        "exchange.signed_token.schema.json": json_schema(SignedToken),
        "exchange.connect_request.schema.json": json_schema(ConnectRequest),
        "exchange.connect_accepted.schema.json": json_schema(ConnectAccepted),
        "exchange.envelope.schema.json": json_schema(Envelope),
        "exchange.inbox_result.schema.json": json_schema(InboxResult),
    }


def write_schemas() -> None:
    write_schema_files(schemas())


if __name__ == "__main__":
    write_schemas()
