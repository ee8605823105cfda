"""One phone search for the whole API (TEL-3, DESK-9, issue 12).

``/api/phones/match``, ``/api/telephony/match``, the caller pop-up, the ticket search and the
contact and company searches all find a company or contact the same way: the searched number's
last N digits (the account's telephony ``match_digits``, at least 7 of them, see
:func:`hub.people.phones.find_by_suffix`) equal a stored number's; so any suffix of a stored number
that long finds it, however it is written. Every answer names a match with the same fields
(:class:`PhoneMatchRead`). Contacts come before companies (a person is a better guess than their
company's switchboard).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account
from hub.people.phones import digits_of, find_by_suffix, normalise
from hub.telephony.models import TelephonySettings

__all__ = ["MAX_MATCHES", "PhoneMatchRead", "looks_like_phone", "match_number", "matches_for", "phone_rule"]

MAX_MATCHES = 20
# Characters a typed phone number may contain besides digits.
_PHONE_CHARS = set("0123456789+-() .")


class PhoneMatchRead(msgspec.Struct):
    """One company or contact whose stored number ends like the searched one (TEL-3)."""

    kind: Literal["company", "contact"]
    id: int
    name: str
    field: str
    number: str
    company_id: int | None = None
    company_name: str | None = None


async def phone_rule(session: AsyncSession, account_id: int) -> tuple[int, str]:
    """(digits compared, default region): the telephony settings' once they exist, else the
    account's (the telephony settings start as a copy of the account's)."""
    row = (
        await session.execute(
            select(TelephonySettings.match_digits, TelephonySettings.region).where(
                TelephonySettings.account_id == account_id
            )
        )
    ).first()
    if row is not None:
        return int(row[0]), str(row[1])
    account = await session.get_one(Account, account_id)
    return account.phone_match_digits, account.default_region


def looks_like_phone(text: str) -> bool:
    return bool(digits_of(text)) and all(ch in _PHONE_CHARS for ch in text.strip())


async def matches_for(
    session: AsyncSession,
    account_id: int,
    number: str | None,
    digits: int,
    region: str,
    limit: int = MAX_MATCHES,
) -> list[PhoneMatchRead]:
    bare = digits_of(number or "")
    if not bare:
        return []
    # A full number is read in the account's region (a trunk 8 becomes the country code); a shorter
    # one is a suffix as typed (normalising it would prefix a country code to a partial number).
    raw = (normalise(number or bare, region) or bare) if len(bare) >= digits else bare
    found = await find_by_suffix(session, account_id, raw, digits, limit, with_names=True)
    result: list[PhoneMatchRead] = []
    seen: set[tuple[str, int]] = set()
    for m in sorted(found, key=lambda m: (m.owner_kind != "contact", m.owner_id)):
        if (m.owner_kind, m.owner_id) in seen or m.name is None:
            continue
        seen.add((m.owner_kind, m.owner_id))
        kind: Literal["company", "contact"] = "contact" if m.owner_kind == "contact" else "company"
        result.append(PhoneMatchRead(kind, m.owner_id, m.name, m.field, m.e164, m.company_id, m.company_name))
    return result


async def match_number(
    session: AsyncSession, account_id: int, number: str | None, limit: int = MAX_MATCHES
) -> list[PhoneMatchRead]:
    """Every company and contact of the account whose number ends like ``number``."""
    digits, region = await phone_rule(session, account_id)
    return await matches_for(session, account_id, number, digits, region, limit)
