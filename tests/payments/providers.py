"""The far side: payment providers faked with respx, requests and answers shaped like their docs.

Each fake keeps the provider's own state (payments, refunds), checks what a real provider checks
(Basic auth, Bearer keys, T-Bank request Tokens, idempotency headers) and builds callbacks signed
exactly the way that provider signs them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import respx

from hub.connectors.payments import cloudpayments, standard, stripe, tbank

__all__ = ["FakeCloudPayments", "FakeStandard", "FakeStripe", "FakeTBank", "FakeYooKassa", "Signed"]


@dataclass
class Signed:
    body: bytes
    headers: dict[str, str]


def _basic(request: httpx.Request) -> tuple[str, str]:
    raw = request.headers.get("authorization", "")
    assert raw.startswith("Basic "), "Basic auth expected"
    user, _, password = base64.b64decode(raw[6:]).decode().partition(":")
    return user, password


@dataclass
class FakeYooKassa:
    shop_id: str = "100500"
    secret_key: str = "test_secret_key"
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotence: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_status: str = "succeeded"

    credentials = property(lambda self: {"shop_id": self.shop_id, "secret_key": self.secret_key})

    def install(self, router: respx.MockRouter) -> None:
        api = "https://api.yookassa.ru/v3"
        router.post(f"{api}/payments").mock(side_effect=self._create)
        router.get(url__regex=rf"{api}/payments/(?P<pid>[^/]+)$").mock(side_effect=self._get)
        router.post(f"{api}/refunds").mock(side_effect=self._refund)
        router.get(url__regex=rf"{api}/refunds/(?P<rid>[^/]+)$").mock(side_effect=self._get_refund)
        router.get(url__regex=rf"{api}/refunds\?").mock(side_effect=self._list_refunds)
        router.post(url__regex=rf"{api}/payments/(?P<pid>[^/]+)/cancel$").mock(side_effect=self._cancel)

    def _list_refunds(self, request: httpx.Request) -> httpx.Response:
        """GET /v3/refunds?payment_id=...: {"type": "list", "items": [...]} (newest first)."""
        if (denied := self._auth(request)) is not None:
            return denied
        payment_id = request.url.params.get("payment_id")
        items = [r for r in reversed(self.refunds.values()) if r["payment_id"] == payment_id]
        return httpx.Response(200, json={"type": "list", "items": items})

    def _cancel(self, request: httpx.Request, pid: str) -> httpx.Response:
        """Only a payment waiting_for_capture can be cancelled; otherwise 400 invalid_request."""
        if (denied := self._auth(request)) is not None:
            return denied
        assert request.headers.get("Idempotence-Key")
        payment = self.payments[pid]
        if payment["status"] != "waiting_for_capture":
            return httpx.Response(
                400,
                json={
                    "type": "error",
                    "id": str(uuid.uuid4()),
                    "code": "invalid_request",
                    "description": f"Payment in status {payment['status']} cannot be canceled",
                },
            )
        payment |= {"status": "canceled", "paid": False}
        payment["cancellation_details"] = {"party": "merchant", "reason": "canceled_by_merchant"}
        return httpx.Response(200, json=payment)

    def _auth(self, request: httpx.Request) -> httpx.Response | None:
        if _basic(request) != (self.shop_id, self.secret_key):
            return httpx.Response(401, json={"type": "error", "code": "invalid_credentials"})
        return None

    def _create(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers["Idempotence-Key"]
        if key in self.idempotence:
            return httpx.Response(200, json=self.idempotence[key])
        body = json.loads(request.content)
        pid = str(uuid.uuid4())
        payment = {
            "id": pid,
            "status": "pending",
            "paid": False,
            "amount": body["amount"],
            "confirmation": {
                "type": "redirect",
                "return_url": body["confirmation"]["return_url"],
                "confirmation_url": f"https://yoomoney.ru/api-pages/v2/payment-confirm/epl?orderId={pid}",
            },
            "created_at": "2026-11-23T00:00:00.000Z",
            "description": body.get("description"),
            "metadata": body.get("metadata", {}),
            "recipient": {"account_id": self.shop_id, "gateway_id": "100700"},
            "refundable": False,
            "test": True,
        }
        self.payments[pid] = payment
        self.idempotence[key] = payment
        return httpx.Response(200, json=payment)

    def _get(self, request: httpx.Request, pid: str) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if pid not in self.payments:
            return httpx.Response(404, json={"type": "error", "code": "not_found"})
        return httpx.Response(200, json=self.payments[pid])

    def _refund(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers["Idempotence-Key"]
        if key in self.idempotence:
            return httpx.Response(200, json=self.idempotence[key])
        body = json.loads(request.content)
        rid = str(uuid.uuid4())
        refund = {
            "id": rid,
            "payment_id": body["payment_id"],
            "status": self.refund_status,
            "amount": body["amount"],
            "created_at": "2026-11-23T00:10:00.000Z",
            "description": body.get("description"),
            "metadata": body.get("metadata", {}),
        }
        self.refunds[rid] = refund
        self.idempotence[key] = refund
        return httpx.Response(200, json=refund)

    def _get_refund(self, request: httpx.Request, rid: str) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return httpx.Response(200, json=self.refunds[rid])

    # --- the provider's side of the story
    def pay(self, pid: str) -> None:
        self.payments[pid] |= {"status": "succeeded", "paid": True, "captured_at": "2026-11-23T00:01:00Z"}
        self.payments[pid].pop("confirmation", None)

    def notification(self, event: str, obj: dict[str, Any]) -> Signed:
        body = json.dumps({"type": "notification", "event": event, "object": obj}).encode()
        return Signed(body, {"content-type": "application/json"})


@dataclass
class FakeTBank:
    terminal_key: str = "1234567890DEMO"
    password: str = "tbank-password"
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancels: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 3093639567

    credentials = property(lambda self: {"terminal_key": self.terminal_key, "password": self.password})

    def install(self, router: respx.MockRouter) -> None:
        api = "https://securepay.tinkoff.ru/v2"
        router.post(f"{api}/Init").mock(side_effect=self._init)
        router.post(f"{api}/GetState").mock(side_effect=self._state)
        router.post(f"{api}/Cancel").mock(side_effect=self._cancel)

    def _checked(self, request: httpx.Request) -> dict[str, Any] | httpx.Response:
        body = json.loads(request.content)
        if body.get("TerminalKey") != self.terminal_key or body.get("Token") != tbank.token(
            body, self.password
        ):
            return httpx.Response(
                200, json={"Success": False, "ErrorCode": "204", "Message": "Неверный токен"}
            )
        return body

    def _init(self, request: httpx.Request) -> httpx.Response:
        body = self._checked(request)
        if isinstance(body, httpx.Response):
            return body
        self.seq += 1
        pid = str(self.seq)
        self.payments[pid] = {"OrderId": body["OrderId"], "Amount": body["Amount"], "Status": "NEW"}
        return httpx.Response(
            200,
            json={
                "Success": True,
                "ErrorCode": "0",
                "TerminalKey": self.terminal_key,
                "Status": "NEW",
                "PaymentId": pid,
                "OrderId": body["OrderId"],
                "Amount": body["Amount"],
                "PaymentURL": f"https://securepayments.tinkoff.ru/{uuid.uuid4().hex[:8]}",
            },
        )

    def _state(self, request: httpx.Request) -> httpx.Response:
        body = self._checked(request)
        if isinstance(body, httpx.Response):
            return body
        payment = self.payments[str(body["PaymentId"])]
        return httpx.Response(
            200,
            json={
                "Success": True,
                "ErrorCode": "0",
                "Message": "OK",
                "TerminalKey": self.terminal_key,
                "Status": payment["Status"],
                "PaymentId": str(body["PaymentId"]),
                "OrderId": payment["OrderId"],
                "Amount": payment["Amount"],
            },
        )

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        body = self._checked(request)
        if isinstance(body, httpx.Response):
            return body
        key = body.get("ExternalRequestId")
        if key in self.cancels:
            return httpx.Response(200, json=self.cancels[key])
        payment = self.payments[str(body["PaymentId"])]
        if payment["Status"] in ("NEW", "FORM_SHOWED"):  # not paid: the whole payment is cancelled
            payment["Status"] = "CANCELED"
            return httpx.Response(
                200,
                json={
                    "Success": True,
                    "ErrorCode": "0",
                    "TerminalKey": self.terminal_key,
                    "Status": "CANCELED",
                    "PaymentId": str(body["PaymentId"]),
                    "OrderId": payment["OrderId"],
                    "OriginalAmount": payment["Amount"],
                    "NewAmount": 0,
                },
            )
        original = payment.get("Remaining", payment["Amount"])
        new = original - body["Amount"]
        payment["Remaining"] = new
        payment["Status"] = "REFUNDED" if new == 0 else "PARTIAL_REFUNDED"
        answer = {
            "Success": True,
            "ErrorCode": "0",
            "TerminalKey": self.terminal_key,
            "Status": payment["Status"],
            "PaymentId": str(body["PaymentId"]),
            "OrderId": payment["OrderId"],
            "OriginalAmount": original,
            "NewAmount": new,
        }
        self.cancels[key] = answer
        return httpx.Response(200, json=answer)

    def notification(self, pid: str, status: str, amount: int | None = None, **extra: Any) -> Signed:
        """The notification T-Bank sends when the payment reaches ``status`` (which it now has)."""
        payment = self.payments[pid]
        if status in ("AUTHORIZED", "CONFIRMED", "REJECTED"):
            payment["Status"] = status
        fields: dict[str, Any] = {
            "TerminalKey": self.terminal_key,
            "OrderId": payment["OrderId"],
            "Success": True,
            "Status": status,
            "PaymentId": int(pid),
            "ErrorCode": "0",
            "Amount": payment["Amount"] if amount is None else amount,
            "CardId": 322264,
            "Pan": "430000******0777",
            "ExpDate": "1230",
            **extra,
        }
        fields["Token"] = tbank.token(fields, self.password)
        return Signed(json.dumps(fields, ensure_ascii=False).encode(), {"content-type": "application/json"})


@dataclass
class FakeCloudPayments:
    public_id: str = "pk_0123456789abcdef"
    api_secret: str = "cp-api-secret"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[int, dict[str, Any]] = field(default_factory=dict)
    seq: int = 1000

    credentials = property(lambda self: {"public_id": self.public_id, "api_secret": self.api_secret})

    def install(self, router: respx.MockRouter) -> None:
        api = "https://api.cloudpayments.ru"
        router.post(f"{api}/orders/create").mock(side_effect=self._order)
        router.post(f"{api}/payments/refund").mock(side_effect=self._refund)
        router.post(f"{api}/v2/payments/find").mock(side_effect=self._find)
        router.post(f"{api}/orders/cancel").mock(side_effect=self._cancel_order)

    def _cancel_order(self, request: httpx.Request) -> httpx.Response:
        """POST /orders/cancel {"Id": ...} -> {"Success": true, "Message": null}."""
        if (denied := self._auth(request)) is not None:
            return denied
        order_id = json.loads(request.content)["Id"]
        order = next(o for o in self.orders.values() if o["Id"] == order_id)
        order["Status"] = "Cancelled"
        return httpx.Response(200, json={"Success": True, "Message": None})

    def _auth(self, request: httpx.Request) -> httpx.Response | None:
        if _basic(request) != (self.public_id, self.api_secret):
            return httpx.Response(401)
        return None

    def _order(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = json.loads(request.content)
        oid = uuid.uuid4().hex[:16]
        self.orders[body["InvoiceId"]] = {"Id": oid, **body}
        return httpx.Response(
            200,
            json={
                "Model": {
                    "Id": oid,
                    "Number": len(self.orders),
                    "Amount": body["Amount"],
                    "Currency": body["Currency"],
                    "CurrencyCode": 0,
                    "Email": None,
                    "Description": body["Description"],
                    "RequireConfirmation": False,
                    "Url": f"https://orders.cloudpayments.ru/d/{oid}",
                },
                "Success": True,
                "Message": None,
            },
        )

    def _refund(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = json.loads(request.content)
        self.seq += 1
        self.transactions[self.seq] = {"refund_of": body["TransactionId"], "Amount": body["Amount"]}
        return httpx.Response(
            200, json={"Model": {"TransactionId": self.seq}, "Success": True, "Message": None}
        )

    def _find(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        invoice_id = json.loads(request.content)["InvoiceId"]
        for tid, tx in self.transactions.items():
            if tx.get("InvoiceId") == invoice_id:
                return httpx.Response(
                    200, json={"Model": {**tx, "TransactionId": tid}, "Success": True, "Message": None}
                )
        return httpx.Response(200, json={"Model": None, "Success": False, "Message": "Not found"})

    def pay(self, invoice_ref: str) -> int:
        order = self.orders[invoice_ref]
        self.seq += 1
        self.transactions[self.seq] = {
            "InvoiceId": invoice_ref,
            "Amount": order["Amount"],
            "Currency": order["Currency"],
            "Status": "Completed",
        }
        return self.seq

    def notification(self, fields: dict[str, Any], *, secret: str | None = None) -> Signed:
        body = urlencode(fields).encode()
        signature = cloudpayments.sign(body, secret or self.api_secret)
        return Signed(
            body,
            {
                "content-type": "application/x-www-form-urlencoded",
                "Content-HMAC": signature,
                "X-Content-HMAC": signature,
            },
        )

    def pay_notification(self, tid: int, **override: Any) -> Signed:
        tx = self.transactions[tid]
        fields = {
            "TransactionId": tid,
            "Amount": f"{Decimal(str(tx['Amount'])):.2f}",
            "Currency": tx["Currency"],
            "PaymentAmount": f"{Decimal(str(tx['Amount'])):.2f}",
            "PaymentCurrency": tx["Currency"],
            "DateTime": "2026-11-23 00:01:00",
            "CardFirstSix": "411111",
            "CardLastFour": "1111",
            "CardType": "Visa",
            "CardExpDate": "12/30",
            "TestMode": "1",
            "Status": "Completed",
            "OperationType": "Payment",
            "InvoiceId": tx["InvoiceId"],
            "AccountId": "",
            **override,
        }
        return self.notification(fields)

    def refund_notification(self, refund_tid: int, invoice_ref: str) -> Signed:
        tx = self.transactions[refund_tid]
        return self.notification(
            {
                "TransactionId": refund_tid,
                "PaymentTransactionId": tx["refund_of"],
                "Amount": f"{Decimal(str(tx['Amount'])):.2f}",
                "DateTime": "2026-11-23 00:05:00",
                "OperationType": "Refund",
                "InvoiceId": invoice_ref,
            }
        )


@dataclass
class FakeStripe:
    secret_key: str = "sk_test_51HubFake"
    webhook_secret: str = "whsec_test_stripe_endpoint_secret"
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_status: str = "pending"

    credentials = property(
        lambda self: {"secret_key": self.secret_key, "webhook_secret": self.webhook_secret}
    )

    def install(self, router: respx.MockRouter) -> None:
        api = "https://api.stripe.com/v1"
        router.post(f"{api}/checkout/sessions").mock(side_effect=self._create)
        router.get(url__regex=rf"{api}/checkout/sessions/(?P<sid>[^/]+)$").mock(side_effect=self._get)
        router.post(f"{api}/refunds").mock(side_effect=self._refund)
        router.get(url__regex=rf"{api}/refunds/(?P<rid>[^/]+)$").mock(side_effect=self._get_refund)
        router.get(url__regex=rf"{api}/payment_intents/(?P<pi>[^/]+)$").mock(side_effect=self._intent)
        router.post(url__regex=rf"{api}/checkout/sessions/(?P<sid>[^/]+)/expire$").mock(
            side_effect=self._expire
        )
        router.get(url__regex=rf"{api}/refunds\?").mock(side_effect=self._list_refunds)

    def _list_refunds(self, request: httpx.Request) -> httpx.Response:
        """GET /v1/refunds?payment_intent=...: {"object": "list", "data": [...], "has_more": false}."""
        if (denied := self._auth(request)) is not None:
            return denied
        intent = request.url.params.get("payment_intent")
        data = [r for r in reversed(self.refunds.values()) if r["payment_intent"] == intent]
        return httpx.Response(
            200, json={"object": "list", "url": "/v1/refunds", "has_more": False, "data": data}
        )

    def _expire(self, request: httpx.Request, sid: str) -> httpx.Response:
        """Only an open session can be expired; a complete one is a 400 invalid_request_error."""
        if (denied := self._auth(request)) is not None:
            return denied
        session = self.sessions[sid]
        if session["status"] != "open":
            return httpx.Response(
                400,
                json={"error": {"type": "invalid_request_error", "message": "Session is not open"}},
            )
        session["status"] = "expired"
        return httpx.Response(200, json=session)

    def _intent(self, request: httpx.Request, pi: str) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        session = next(s for s in self.sessions.values() if s["payment_intent"] == pi)
        return httpx.Response(
            200,
            json={
                "id": pi,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "status": "succeeded",
                "metadata": session["metadata"],
            },
        )

    def _auth(self, request: httpx.Request) -> httpx.Response | None:
        if request.headers.get("authorization") != f"Bearer {self.secret_key}":
            return httpx.Response(401, json={"error": {"type": "invalid_request_error"}})
        return None

    def _create(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers["Idempotency-Key"]
        if key in self.idempotency:
            return httpx.Response(200, json=self.idempotency[key])
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        sid = f"cs_test_{uuid.uuid4().hex}"
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": form["mode"],
            "amount_total": int(form["line_items[0][price_data][unit_amount]"])
            * int(form["line_items[0][quantity]"]),
            "currency": form["line_items[0][price_data][currency]"],
            "client_reference_id": form["client_reference_id"],
            "metadata": {"invoice_ref": form["metadata[invoice_ref]"]},
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "url": f"https://checkout.stripe.com/c/pay/{sid}",
        }
        self.sessions[sid] = session
        self.idempotency[key] = session
        return httpx.Response(200, json=session)

    def _get(self, request: httpx.Request, sid: str) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return httpx.Response(200, json=self.sessions[sid])

    def _refund(self, request: httpx.Request) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers["Idempotency-Key"]
        if key in self.idempotency:
            return httpx.Response(200, json=self.idempotency[key])
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        rid = f"re_{uuid.uuid4().hex[:24]}"
        session = next(s for s in self.sessions.values() if s["payment_intent"] == form["payment_intent"])
        refund = {
            "id": rid,
            "object": "refund",
            "amount": int(form["amount"]),
            "currency": session["currency"],
            "payment_intent": form["payment_intent"],
            "status": self.refund_status,
            "metadata": {"refund_ref": form["metadata[refund_ref]"]},
        }
        self.refunds[rid] = refund
        self.idempotency[key] = refund
        return httpx.Response(200, json=refund)

    def _get_refund(self, request: httpx.Request, rid: str) -> httpx.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return httpx.Response(200, json=self.refunds[rid])

    def pay(self, sid: str) -> None:
        self.sessions[sid] |= {
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": f"pi_{uuid.uuid4().hex[:24]}",
        }

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        event_id: str | None = None,
    ) -> Signed:
        body = json.dumps(
            {
                "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "livemode": False,
                "type": event_type,
                "data": {"object": obj},
            }
        ).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        return Signed(
            body,
            {
                "content-type": "application/json",
                "Stripe-Signature": stripe.sign(body, secret or self.webhook_secret, ts),
            },
        )


@dataclass
class FakeStandard:
    secret: str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    credentials = property(
        lambda self: {
            "webhook_secret": self.secret,
            "checkout_url": "https://pay.example.test/checkout/{ref}?amount={amount}",
        }
    )

    def event(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
    ) -> Signed:
        body = json.dumps({"type": event_type, "timestamp": "2026-11-23T00:00:00Z", "data": data}).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        mid = msg_id or f"msg_{uuid.uuid4().hex}"
        return Signed(
            body,
            {
                "content-type": "application/json",
                "webhook-id": mid,
                "webhook-timestamp": str(ts),
                "webhook-signature": standard.sign(self.secret, mid, ts, body),
            },
        )


def hmac_b64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
