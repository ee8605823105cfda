"""Phone number normalisation and the last-N-digits lookup used for caller matching."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.people.models import Company, Contact, PhoneIndex

__all__ = [
    "MIN_CALLER_DIGITS",
    "PhoneMatch",
    "digits_of",
    "find_by_suffix",
    "normalise",
    "reindex_owner",
    "suffix_bounds",
]

_NON_DIGITS = re.compile(r"\D")
# A number shorter than this (and than the account's match length) is not matched at all.
MIN_CALLER_DIGITS = 7


def digits_of(raw: str) -> str:
    return _NON_DIGITS.sub("", raw)


def normalise(raw: str, region: str) -> str | None:
    """E.164 form of ``raw`` for the account's default region; ``None`` when it holds no digits.

    Numbers ``phonenumbers`` cannot parse (short internal numbers, odd trunk formats) are kept as
    their bare digits so they can still be matched by suffix.
    """
    digits = digits_of(raw)
    if not digits:
        return None
    try:
        parsed = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException:
        return digits
    if not phonenumbers.is_possible_number(parsed):
        return digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def suffix_bounds(raw: str, match_digits: int) -> tuple[str, str] | None:
    """The half-open range of ``reversed_digits`` whose last ``match_digits`` digits equal ``raw``'s."""
    digits = digits_of(raw)
    if not digits:
        return None
    prefix = digits[::-1][:match_digits]
    # ':' sorts right after '9', so [prefix, prefix + ':') is every string starting with prefix.
    return prefix, prefix + ":"


@dataclass(frozen=True, slots=True)
class PhoneMatch:
    owner_kind: str
    owner_id: int
    field: str
    e164: str
    # Filled only when asked for (``with_names``): the owner's name, and the company it belongs to
    # (a company is its own company).
    name: str | None = None
    company_id: int | None = None
    company_name: str | None = None


def _owner_is(owner: Any, kind: str) -> Any:
    """The join of an index row to its owner (same account, as a second guard)."""
    return and_(
        PhoneIndex.owner_kind == kind,
        owner.id == PhoneIndex.owner_id,
        owner.account_id == PhoneIndex.account_id,
    )


_CONTACT = aliased(Contact)
_CONTACTS_COMPANY = aliased(Company)
_COMPANY = aliased(Company)
_WITH_NAMES = (
    select(
        PhoneIndex.owner_kind,
        PhoneIndex.owner_id,
        PhoneIndex.field,
        PhoneIndex.e164,
        PhoneIndex.reversed_digits,
        func.coalesce(_CONTACT.name, _COMPANY.name),
        case((PhoneIndex.owner_kind == "contact", _CONTACT.company_id), else_=_COMPANY.id),
        func.coalesce(_CONTACTS_COMPANY.name, _COMPANY.name),
    )
    .outerjoin(_CONTACT, _owner_is(_CONTACT, "contact"))
    .outerjoin(_CONTACTS_COMPANY, _CONTACTS_COMPANY.id == _CONTACT.company_id)
    .outerjoin(_COMPANY, _owner_is(_COMPANY, "company"))
)
_BARE = select(
    PhoneIndex.owner_kind, PhoneIndex.owner_id, PhoneIndex.field, PhoneIndex.e164, PhoneIndex.reversed_digits
)


async def find_by_suffix(
    session: AsyncSession,
    account_id: int,
    raw: str,
    match_digits: int,
    limit: int = 50,
    *,
    with_names: bool = False,
) -> list[PhoneMatch]:
    """Every company or contact phone in the account ending in the same ``match_digits`` digits;
    with ``with_names`` the owners' names come in the same round trip (the caller pop-up's path)."""
    bounds = suffix_bounds(raw, match_digits)
    if bounds is None:
        return []
    low, high = bounds
    if len(low) < min(match_digits, MIN_CALLER_DIGITS):
        # An internal extension (101) or a short service number would match the tail of
        # unrelated clients' numbers; too few digits identify nobody.
        return []
    digits_needed = min(match_digits, len(low))
    rows = await session.execute(
        (_WITH_NAMES if with_names else _BARE)
        .where(
            PhoneIndex.account_id == account_id,
            PhoneIndex.reversed_digits >= low,
            PhoneIndex.reversed_digits < high,
        )
        .limit(limit)
    )
    # A short stored number (an internal 3-digit one) must not match a long caller's suffix.
    return [
        PhoneMatch(kind, owner_id, field, e164, *names)
        for kind, owner_id, field, e164, reversed_digits, *names in rows
        if len(reversed_digits) >= digits_needed
    ]


async def reindex_owner(
    session: AsyncSession,
    account_id: int,
    owner_kind: str,
    owner_id: int,
    numbers: Iterable[tuple[str, str | None]],
    region: str,
) -> None:
    """Replace the index rows of one company or contact with its current ``(field, number)`` pairs."""
    await session.execute(
        delete(PhoneIndex).where(PhoneIndex.owner_kind == owner_kind, PhoneIndex.owner_id == owner_id)
    )
    for field, raw in numbers:
        if not raw:
            continue
        e164 = normalise(raw, region)
        if e164 is None:
            continue
        session.add(
            PhoneIndex(
                account_id=account_id,
                reversed_digits=digits_of(e164)[::-1],
                e164=e164,
                owner_kind=owner_kind,
                owner_id=owner_id,
                field=field,
            )
        )
