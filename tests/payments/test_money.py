"""PAY-2, PAY-3: exact decimal money rounded once, and the one transition table."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from hub.errors import Conflict
from hub.payments.money import from_minor, line_total, quantize, to_minor
from hub.payments.service import (
    INVOICE_TRANSITIONS,
    REFUND_TRANSITIONS,
    invoice_transition,
    refund_transition,
)

D = Decimal


@pytest.mark.parametrize(
    ("price", "qty", "discount", "currency", "expected"),
    [
        ("0.01", "1", "50", "RUB", "0.01"),  # 0.005 rounds half up, once
        ("0.01", "1", "51", "RUB", "0.00"),  # 0.0049 rounds down
        ("10.00", "3", "33.333", "RUB", "20.00"),  # 20.0001 -> 20.00 (not 3 x rounded 6.67)
        ("0.10", "0.333", "0", "RUB", "0.03"),  # 0.0333
        ("1.005", "1", "0", "RUB", "1.01"),  # float would say 1.00
        ("2.675", "1", "0", "USD", "2.68"),  # the classic float trap, exact here
        ("100", "1", "100", "RUB", "0.00"),
        ("999999999.99", "1000", "0", "RUB", "999999999990.00"),
        ("1234.5", "1", "0", "JPY", "1235"),  # no minor unit
        ("1.0005", "1", "0", "KWD", "1.001"),  # three decimals
    ],
)
def test_line_totals_round_once_half_up(
    price: str, qty: str, discount: str, currency: str, expected: str
) -> None:
    """PAY-2: the line amount is price x quantity x (100 - discount) / 100, rounded to minor units once."""
    assert line_total(D(price), D(qty), D(discount), currency) == D(expected)


def test_minor_units_round_trip() -> None:
    """PAY-2: amounts sent to providers in minor units and back are exact."""
    assert to_minor(D("2260.00"), "RUB") == 226000
    assert to_minor(D("1235"), "JPY") == 1235
    assert from_minor(126000, "RUB") == D("1260.00")
    assert quantize(D("0.005"), "RUB") == D("0.01")
    with pytest.raises(ValueError):
        to_minor(D("0.001"), "RUB")


def _invoice(status: str) -> SimpleNamespace:
    return SimpleNamespace(status=status)


def test_invoice_transition_table() -> None:
    """PAY-3: draft -> issued -> paid (provider) / marked_paid (employee); make unpaid -> draft;
    a provider-paid invoice goes nowhere."""
    assert INVOICE_TRANSITIONS == {
        ("draft", "issue"): "issued",
        ("issued", "provider_paid"): "paid",
        ("marked_paid", "provider_paid"): "paid",
        ("issued", "mark_paid"): "marked_paid",
        ("issued", "make_unpaid"): "draft",
        ("marked_paid", "make_unpaid"): "draft",
    }
    for action in ("issue", "mark_paid", "make_unpaid", "provider_paid"):
        with pytest.raises(Conflict) as refused:
            invoice_transition(_invoice("paid"), action)  # type: ignore[arg-type]
        assert refused.value.code == "invoice_transition_not_allowed"
    with pytest.raises(Conflict):
        invoice_transition(_invoice("draft"), "mark_paid")  # type: ignore[arg-type]
    invoice = _invoice("issued")
    assert invoice_transition(invoice, "make_unpaid") == "draft" and invoice.status == "draft"  # type: ignore[arg-type]


def test_refund_transition_table() -> None:
    """PAY-7: requested -> approved -> refunded, or rejected, or failed; nothing else."""
    assert set(REFUND_TRANSITIONS.values()) == {"approved", "rejected", "refunded", "failed"}
    refund = SimpleNamespace(status="requested")
    with pytest.raises(Conflict):
        refund_transition(refund, "provider_succeeded")  # type: ignore[arg-type]
    assert refund_transition(refund, "approve") == "approved"  # type: ignore[arg-type]
    assert refund_transition(refund, "provider_succeeded") == "refunded"  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        refund_transition(refund, "reject")  # type: ignore[arg-type]
