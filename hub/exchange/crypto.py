"""Ed25519 keys and compact JWS (``alg: EdDSA``) for the hub-to-hub protocol (EX-2, EX-10)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from hub.errors import Unauthorized

__all__ = [
    "b64url",
    "new_keypair",
    "pairing_keypair",
    "peek_kid",
    "sign",
    "verify",
]

PAIRING_CONTEXT = b"hub-exchange-pairing-v1"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _keypair(private: Ed25519PrivateKey) -> tuple[str, str]:
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return b64url(raw_private), b64url(raw_public)


def new_keypair() -> tuple[str, str]:
    """A fresh (private, public) Ed25519 pair, each base64url of 32 raw bytes."""
    return _keypair(Ed25519PrivateKey.generate())


def pairing_keypair(secret: str) -> tuple[str, str]:
    """The Ed25519 pair derived from a pairing secret. The issuer keeps only the public half."""
    seed = hashlib.sha256(PAIRING_CONTEXT + secret.encode()).digest()
    return _keypair(Ed25519PrivateKey.from_private_bytes(seed))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(private: str, kid: str, payload: bytes) -> str:
    """Compact JWS (RFC 7515) with ``alg`` ``EdDSA`` (RFC 8037). Written here rather than with a JOSE
    library: those cap a token at 256 kB, and messages carry files of up to 8 MiB."""
    header = b64url(json.dumps({"alg": "EdDSA", "kid": kid}, separators=(",", ":")).encode())
    signing_input = f"{header}.{b64url(payload)}"
    key = Ed25519PrivateKey.from_private_bytes(_unb64url(private))
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


_COMPACT = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)$")


def _header(segment: str) -> dict[str, object]:
    try:
        header = json.loads(_unb64url(segment))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Not a compact JWS", code="bad_signature") from exc
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or not isinstance(header.get("kid"), str):
        raise Unauthorized("The JWS must name its key (kid) and use EdDSA", code="bad_signature")
    if "crit" in header:  # no extensions are understood (RFC 7515 section 4.1.11)
        raise Unauthorized("The JWS uses an unknown extension", code="bad_signature")
    return header


def peek_kid(token: str) -> str:
    """The ``kid`` of a compact JWS before verification (to choose the key); never trusted alone."""
    return str(_header(token.split(".", 1)[0])["kid"])


def verify(token: str, public: str) -> bytes:
    """The payload of ``token`` if it was signed by ``public``'s private key; else 401."""
    match = _COMPACT.match(token)
    if match is None:
        raise Unauthorized("Not a compact JWS", code="bad_signature")
    header, payload, signature = match.groups()
    _header(header)
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64url(public))
        key.verify(_unb64url(signature), f"{header}.{payload}".encode())
        return _unb64url(payload)
    except (InvalidSignature, ValueError, binascii.Error) as exc:
        raise Unauthorized("Signature does not verify", code="bad_signature") from exc
