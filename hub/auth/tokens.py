"""Short-lived signed access tokens (JWS via authlib) and hashed opaque secrets."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from authlib.jose import JsonWebToken
from authlib.jose.errors import JoseError

from hub.auth.principal import Principal
from hub.errors import Unauthorized

__all__ = ["decode_access_token", "issue_access_token", "new_secret", "secret_hash"]

_jwt = JsonWebToken(["HS256"])
_ISSUER = "hub"


def issue_access_token(principal: Principal, secret_key: str, lifetime_seconds: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": _ISSUER,
        "sub": str(principal.subject_id),
        "acc": principal.account_id,
        "knd": principal.kind,
        "nam": principal.name,
        "iat": now,
        "exp": now + lifetime_seconds,
        "typ": "access",
    }
    if principal.role:
        claims["rol"] = principal.role
    if principal.contact_id is not None:
        claims["cid"] = principal.contact_id
    token: bytes = _jwt.encode({"alg": "HS256"}, claims, secret_key)
    return token.decode()


def decode_access_token(token: str, secret_key: str) -> Principal:
    try:
        claims = _jwt.decode(token, secret_key, claims_options={"iss": {"essential": True, "value": _ISSUER}})
        claims.validate(now=int(time.time()), leeway=5)
        if claims.get("typ") != "access" or claims.get("knd") not in {"employee", "app_user"}:
            raise Unauthorized("Not an access token", code="invalid_token")
        return Principal(
            kind=claims["knd"],
            account_id=int(claims["acc"]),
            subject_id=int(claims["sub"]),
            name=str(claims.get("nam", "")),
            role=claims.get("rol"),
            contact_id=claims.get("cid"),
        )
    except (JoseError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("The access token is invalid or expired", code="invalid_token") from exc


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def secret_hash(secret: str) -> str:
    """Hash of a high-entropy random secret (API keys, refresh tokens, pairing keys).

    Such secrets cannot be guessed, so a fast hash suffices; passwords use scrypt instead.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
