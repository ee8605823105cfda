"""Exact money: Decimal amounts in a currency's minor units, rounded once, half up.

A line total is ``unit_price * quantity * (100 - discount) / 100`` computed exactly and rounded to
the currency's minor unit ONCE (never the intermediate steps); an invoice total is the sum of its
rounded line totals, so the lines the client sees always add up to the total they pay.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = [
    "HUNDRED",
    "ZERO",
    "exponent",
    "from_minor",
    "in_units",
    "line_total",
    "parse_amount",
    "plain",
    "quantize",
    "to_minor",
]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# ISO 4217 minor-unit exponents that differ from 2 (the providers' APIs follow the same table).
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "ISK": 0, "UGX": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (the way receipts and banks round)."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form: 2260.0000 -> 2260, 0.5000 -> 0.5.

    (``Decimal.normalize`` alone gives ``2.26E+3``, which JSON readers take for a float.)
    """
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]


def in_units(amount: Decimal, currency: str) -> Decimal:
    """An amount as shown: at least the currency's minor units (2260 -> 2260.00 RUB, 1500 JPY),
    more places only where the value has them (a unit price of 12.3456)."""
    places = max(exponent(currency), -plain(amount).as_tuple().exponent)  # type: ignore[operator]
    return amount.quantize(Decimal(1).scaleb(-places))


def line_total(unit_price: Decimal, quantity: Decimal, discount_percent: Decimal, currency: str) -> Decimal:
    """The line's amount after discount, rounded once."""
    exact = unit_price * quantity * (HUNDRED - discount_percent) / HUNDRED
    return quantize(exact, currency)


def to_minor(amount: Decimal, currency: str) -> int:
    """12.34 RUB -> 1234 kopecks. The amount must already be in whole minor units."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more precision than {currency} allows")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return quantize(Decimal(minor).scaleb(-exponent(currency)), currency)


def parse_amount(raw: object) -> Decimal | None:
    """A provider's decimal amount (string or number) as Decimal; None when it is not a number."""
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None
