"""PAY-6: each provider's verification reproduces the providers' own published examples."""

from __future__ import annotations

import hashlib
import hmac
import json
from types import SimpleNamespace

import pytest

from contracts.payments import SCHEMA_DIR, schemas
from hub.connectors.payments import CallbackRejected, cloudpayments, standard, stripe, tbank


def test_standard_webhooks_reference_vector() -> None:
    """PAY-6: the Standard Webhooks specification's test vector, signed and verified."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert standard.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    account = SimpleNamespace(credentials={"webhook_secret": secret})
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": f"v1,bm9wZQ== {expected}",  # any of several signatures may match
    }
    assert standard.verify(account, body, headers, None, 1614265330 + 10)
    with pytest.raises(CallbackRejected) as stale:
        standard.verify(account, body, headers, None, 1614265330 + 301)
    assert stale.value.code == "stale_callback"
    with pytest.raises(CallbackRejected) as forged:
        standard.verify(account, body + b" ", headers, None, 1614265330)
    assert forged.value.code == "bad_signature"


def test_tbank_documented_token_example() -> None:
    """PAY-6: T-Bank's documented Token example (root values only, Password added, sorted)."""
    fields = {
        "TerminalKey": "MerchantTerminalKey",
        "Amount": 19200,
        "OrderId": "00000",
        "Description": "Подарочная карта на 1000 рублей",
        "DATA": {"Phone": "+71234567890", "Email": "a@test.com"},
        "Receipt": {"Email": "a@test.ru", "Items": [{"Amount": 10000}]},
    }
    assert tbank.token_string(fields, "11111111111111") == (
        "19200Подарочная карта на 1000 рублей0000011111111111111MerchantTerminalKey"
    )
    assert (
        tbank.token(fields, "11111111111111")
        == "72dd466f8ace0a37a1f740ce5fb78101712bc0665d91a8108c7c8a0ccd426db2"
    )


def test_tbank_notification_booleans_and_mutation() -> None:
    """PAY-6: booleans enter the Token as true/false; changing one value breaks it."""
    account = SimpleNamespace(credentials={"terminal_key": "1234567890DEMO", "password": "11111111111"})
    fields = {
        "TerminalKey": "1234567890DEMO",
        "OrderId": "000000",
        "Success": True,
        "Status": "AUTHORIZED",
        "PaymentId": "0000000",
        "ErrorCode": "0",
        "Amount": 1111,
        "CardId": "000000",
        "Pan": "200000******0000",
        "ExpDate": "1111",
        "RebillId": "000000",
    }
    assert "AUTHORIZEDtrue" in tbank.token_string(fields, "11111111111")
    body = json.dumps({**fields, "Token": tbank.token(fields, "11111111111")}).encode()
    tbank.verify(account, body, {}, None, 0)
    tampered = json.dumps({**fields, "Amount": 1112, "Token": tbank.token(fields, "11111111111")}).encode()
    with pytest.raises(CallbackRejected):
        tbank.verify(account, tampered, {}, None, 0)


def test_stripe_signature_made_the_stripe_way() -> None:
    """PAY-6: HMAC-SHA256 over "t.body", hex; several v1 values (secret rolling); 300 s tolerance."""
    secret = "whsec_test_secret"
    body = b'{"id":"evt_1","object":"event"}'
    digest = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert stripe.sign(body, secret, 1700000000) == f"t=1700000000,v1={digest}"
    account = SimpleNamespace(credentials={"webhook_secret": secret})
    rolled = {"stripe-signature": f"t=1700000000,v1={'0' * 64},v1={digest},v0=ignored"}
    assert stripe.verify(account, body, rolled, None, 1700000000 + 299)
    for now, code in ((1700000000 + 301, "stale_callback"), (1700000000 - 301, "stale_callback")):
        with pytest.raises(CallbackRejected) as refused:
            stripe.verify(account, body, rolled, None, now)
        assert refused.value.code == code
    with pytest.raises(CallbackRejected):
        stripe.verify(
            account, body, {"stripe-signature": f"t=1700000000,v1={digest[:-1]}0"}, None, 1700000000
        )


def test_cloudpayments_content_hmac() -> None:
    """PAY-6: Content-HMAC is base64 HMAC-SHA256 of the raw body with the API secret."""
    body = b"TransactionId=1&Amount=10.00&InvoiceId=inv1-1"
    account = SimpleNamespace(credentials={"api_secret": "secret"})
    signature = cloudpayments.sign(body, "secret")
    cloudpayments.verify(account, body, {"content-hmac": signature}, None, 0)
    cloudpayments.verify(account, body, {"x-content-hmac": signature}, None, 0)
    with pytest.raises(CallbackRejected) as refused:
        cloudpayments.verify(account, body + b"0", {"content-hmac": signature}, None, 0)
    assert cloudpayments.error_response(refused.value).content == {"code": 13}


def test_contract_schemas_are_current() -> None:
    """PAY-6: the exported JSON Schemas of the callback contracts match the Structs."""
    for name, schema in schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} missing: run python -m contracts.payments"
        assert json.loads(path.read_text()) == schema, f"{name} is stale: run python -m contracts.payments"
