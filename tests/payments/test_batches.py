"""PAY-6 through the intake worker's batches: callbacks acknowledged first and applied together
(most of them in sets, the rest one by one) end exactly as one-by-one application would."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from hub.intake.worker import drain_intake
from tests.payments.conftest import World
from tests.payments.providers import FakeStandard, Signed
from tests.statements import counting_statements


async def _post(world: World, account: dict[str, Any], signed: Signed) -> None:
    """Acknowledged (stored for the worker), not applied yet."""
    answer = await world.client.post(
        urlsplit(account["webhook_url"]).path, content=signed.body, headers=signed.headers
    )
    assert answer.status_code == 204, answer.text


def _paid(sw: FakeStandard, invoice: dict[str, Any], amount: str = "1500.00", **extra: Any) -> Signed:
    data = {"invoice_ref": invoice["payment_ref"], "amount": amount, "currency": "RUB", **extra}
    return sw.event("payment.succeeded", {"payment_id": f"gw-{invoice['id']}", **data})


async def _outcomes(world: World) -> list[tuple[str, str | None]]:
    log = await world.get("/api/intake/events?source=payments", headers=world.tenant.admin.headers)
    return sorted((entry["outcome"], entry["error_code"]) for entry in log["items"])


async def test_a_mixed_batch_ends_as_one_by_one_would(world: World) -> None:
    """PAY-6: plain payments, a fact told twice in other bytes, a wrong amount, and a payment and
    its refund on one invoice, all applied in one batch: each fact once, the refund after its
    payment, the mismatch refused with nothing applied, each ticket's flag on its latest invoice."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    item = await world.price("SVC", "1500.00")
    tickets = [await world.ticket(), await world.ticket()]
    plain = [await world.issued(tickets[i % 2], [{"price_item_id": item["id"]}]) for i in range(4)]
    told_twice = await world.issued(tickets[0], [{"price_item_id": item["id"]}])
    wrong = await world.issued(tickets[0], [{"price_item_id": item["id"]}])
    story = await world.issued(tickets[0], [{"price_item_id": item["id"]}])
    for invoice in plain:
        await _post(world, account, _paid(sw, invoice))
    await _post(world, account, _paid(sw, told_twice))
    await _post(world, account, _paid(sw, told_twice, note="the same fact in other bytes"))
    await _post(world, account, _paid(sw, wrong, amount="15.00"))
    await _post(world, account, _paid(sw, story))
    refund = {"invoice_ref": story["payment_ref"], "amount": "500.00", "currency": "RUB", "refund_id": "r-1"}
    await _post(world, account, sw.event("refund.succeeded", {"payment_id": f"gw-{story['id']}", **refund}))

    assert await drain_intake(world.app.state.jobs) == 9

    for invoice in [*plain, told_twice]:
        now = await world.get(f"/api/invoices/{invoice['id']}")
        assert (now["status"], Decimal(now["paid_amount"])) == ("paid", Decimal("1500")), now
        history = await world.history_kinds(invoice["ticket_id"])
        assert history.count("invoice_paid") == len(
            [i for i in [*plain, told_twice, story] if i["ticket_id"] == invoice["ticket_id"]]
        )
    unchanged = await world.get(f"/api/invoices/{wrong['id']}")
    assert (unchanged["status"], Decimal(unchanged["paid_amount"])) == ("issued", Decimal("0"))
    after = await world.get(f"/api/invoices/{story['id']}")
    assert (after["status"], Decimal(after["refunded_amount"])) == ("paid", Decimal("500"))
    assert await _outcomes(world) == sorted(
        [("applied", None)] * 7 + [("duplicate", None), ("rejected", "amount_mismatch")]
    )
    # PAY-8: each ticket's list flag names its latest invoice, as one-by-one refreshing leaves it
    for ticket_id in tickets:
        latest = max(i["id"] for i in [*plain, told_twice, wrong, story] if i["ticket_id"] == ticket_id)
        flags = await world.flags(ticket_id)
        assert flags is not None and flags["invoice_id"] == latest, flags


async def test_plain_payments_apply_in_a_few_statements_whatever_their_number(world: World) -> None:
    """Issue 11: a batch of plain "paid" callbacks is applied in a fixed number of statements
    (lock the invoices, claim the keys, update, history, activity, flags), not several per event."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    item = await world.price("SVC", "1500.00")
    ticket_id = await world.ticket()
    counts = []
    for size in (5, 25):
        invoices = [await world.issued(ticket_id, [{"price_item_id": item["id"]}]) for _ in range(size)]
        for invoice in invoices:
            await _post(world, account, _paid(sw, invoice))
        with counting_statements(world.db) as statements:
            assert await drain_intake(world.app.state.jobs) == size
        counts.append(len(statements))
        for invoice in invoices:
            assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"
    # the same statements for 25 as for 5 (give or take the payment account's cached read)
    assert abs(counts[1] - counts[0]) <= 1 and counts[1] <= 20, counts
