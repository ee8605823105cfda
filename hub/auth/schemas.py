"""Sign-in request and token response Structs."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["LoginRequest", "Me", "RefreshRequest", "TokenPair"]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    account: Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="Account slug")]
    login: Annotated[
        str, msgspec.Meta(min_length=1, max_length=254, description="E-mail (employees) or login")
    ]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["employee", "app_user"] = "employee"


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Me(msgspec.Struct):
    kind: str
    account_id: int
    id: int
    name: str
    role: str | None = None
    contact_id: int | None = None
