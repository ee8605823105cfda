"""Ed25519 keys and compact JWS (``alg: EdDSA``) for the hub-to-hub protocol (EX-2, EX-10)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import warnings
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebSignature, OKPKey
    from authlib.jose.errors import JoseError

from hub.errors import Unauthorized

__all__ = [
    "b64url",
    "new_keypair",
    "pairing_keypair",
    "peek_kid",
    "sign",
    "verify",
]

_JWS = JsonWebSignature(algorithms=["EdDSA"])
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


def _jwk(public: str, private: str | None = None) -> Any:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": public}
    if private is not None:
        jwk["d"] = private
    return OKPKey.import_key(jwk)


def sign(private: str, public: str, kid: str, payload: bytes) -> str:
    token: bytes = _JWS.serialize_compact({"alg": "EdDSA", "kid": kid}, payload, _jwk(public, private))
    return token.decode()


def peek_kid(token: str) -> str:
    """The ``kid`` of a compact JWS before verification (to choose the key); never trusted alone."""
    try:
        header = json.loads(_unb64url(token.split(".", 1)[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Not a compact JWS", code="bad_signature") from exc
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or header.get("alg") != "EdDSA":
        raise Unauthorized("The JWS must name its key (kid) and use EdDSA", code="bad_signature")
    return kid


def verify(token: str, public: str) -> bytes:
    """The payload of ``token`` if it was signed by ``public``'s private key; else 401."""
    try:
        data = _JWS.deserialize_compact(token, _jwk(public))
    except (JoseError, ValueError, binascii.Error) as exc:
        raise Unauthorized("Signature does not verify", code="bad_signature") from exc
    payload: bytes = data["payload"]
    return payload
