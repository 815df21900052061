"""How Stripe events map to payment changes (pure): card vs ACH, later settlement, intents."""

from __future__ import annotations

from decimal import Decimal

from portico.invoices import interpret_event, pay_token, totals


def event(kind: str, **obj) -> dict:
    return {"id": "evt_1", "type": kind, "data": {"object": obj}}


SESSION = {
    "id": "cs_test_1",
    "object": "checkout.session",
    "amount_total": 25000,
    "currency": "usd",
    "metadata": {"invoice_id": "12"},
    "payment_intent": "pi_1",
}


def test_checkout_session_events():
    card = interpret_event(event("checkout.session.completed", **SESSION, payment_status="paid"))
    assert card and (card.invoice_id, card.status, card.method) == (12, "succeeded", "card")
    assert (card.amount_cents, card.currency, card.session_id) == (25000, "USD", "cs_test_1")
    ach = interpret_event(event("checkout.session.completed", **SESSION, payment_status="unpaid"))
    assert ach and (ach.status, ach.method) == ("pending", "us_bank_account")
    later = interpret_event(event("checkout.session.async_payment_succeeded", **SESSION))
    assert later and later.status == "succeeded" and later.payment_intent_id == "pi_1"
    failed = interpret_event(event("checkout.session.async_payment_failed", **SESSION))
    assert failed and failed.status == "failed" and failed.failure_reason
    free = event("checkout.session.completed", **SESSION, payment_status="no_payment_required")
    assert interpret_event(free) is None
    assert interpret_event(event("checkout.session.expired", **SESSION)) is None


def test_payment_intent_events_and_foreign_objects():
    intent = {
        "id": "pi_9",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "usd",
        "metadata": {"invoice_id": "3"},
        "payment_method_types": ["us_bank_account"],
    }
    ok = interpret_event(event("payment_intent.succeeded", **intent))
    assert ok and (ok.invoice_id, ok.status, ok.method, ok.session_id) == (
        3,
        "succeeded",
        "us_bank_account",
        None,
    )
    bad = interpret_event(
        event(
            "payment_intent.payment_failed",
            **intent,
            last_payment_error={"message": "Your card was declined."},
        )
    )
    assert bad and bad.status == "failed" and bad.failure_reason == "Your card was declined."
    assert interpret_event(event("payment_intent.succeeded", **{**intent, "metadata": {}})) is None
    assert interpret_event(event("customer.created", id="cus_1")) is None


def test_totals_round_half_up_and_pay_tokens_are_stable_and_long():
    items = [{"quantity": "1.5", "unit_price_cents": 333}, {"quantity": 2, "unit_price_cents": 100}]
    assert totals(items, None) == (700, 0, 700)
    assert totals(items, Decimal("7.5")) == (700, 53, 753)
    token = pay_token("secret", 7, "nonce")
    assert token == pay_token("secret", 7, "nonce") and len(token) == 32
    assert token != pay_token("secret", 8, "nonce") != pay_token("other", 7, "nonce")
