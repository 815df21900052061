"""How Stripe events map to payment changes (pure): card vs ACH, later settlement, intents,
refunds and disputes, and what a refunded or disputed payment still counts for."""

from __future__ import annotations

from decimal import Decimal

from portico.invoices import (
    counted_cents,
    interpret_adjustment,
    interpret_event,
    pay_token,
    settled_status,
    totals,
)
from portico.models import Payment


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


# the fields of Stripe's example `charge` and `dispute` objects that Portico reads
CHARGE = {
    "id": "ch_1",
    "object": "charge",
    "amount": 120000,
    "amount_refunded": 30000,
    "currency": "usd",
    "payment_intent": "pi_1",
    "refunded": False,
    "metadata": {},
}
DISPUTE = {
    "id": "dp_1",
    "object": "dispute",
    "amount": 120000,
    "charge": "ch_1",
    "currency": "usd",
    "payment_intent": "pi_1",
    "status": "needs_response",
    "evidence_details": {"due_by": 1723679999},
}


def test_refund_and_dispute_events():
    refund = interpret_adjustment(event("charge.refunded", **CHARGE))
    assert refund and (refund.kind, refund.payment_intent_id, refund.charge_id) == (
        "refund",
        "pi_1",
        "ch_1",
    )
    assert (refund.amount_cents, refund.refunded_cents, refund.currency) == (120000, 30000, "USD")
    # an old-style charge without amount_refunded, fully refunded
    legacy = {k: v for k, v in CHARGE.items() if k != "amount_refunded"}
    full = interpret_adjustment(event("charge.refunded", **{**legacy, "refunded": True}))
    assert full and full.refunded_cents == 120000

    for kind in ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"):
        dispute = interpret_adjustment(event(kind, **DISPUTE))
        assert dispute and (dispute.kind, dispute.dispute_status, dispute.amount_cents) == (
            "dispute",
            "needs_response",
            120000,
        )
        assert dispute.dispute_id == "dp_1" and dispute.evidence_due_by == 1723679999
    # expanded ids work too; a dispute without a payment intent still names its charge
    expanded = {**DISPUTE, "payment_intent": None, "charge": {"id": "ch_9", "object": "charge"}}
    dispute = interpret_adjustment(event("charge.dispute.created", **expanded))
    assert dispute and (dispute.payment_intent_id, dispute.charge_id) == (None, "ch_9")

    assert interpret_event(event("charge.refunded", **CHARGE)) is None  # not a new payment
    assert interpret_adjustment(event("charge.succeeded", **CHARGE)) is None
    assert interpret_adjustment(event("refund.created", id="re_1", object="refund")) is None
    orphan = {**CHARGE, "id": None, "payment_intent": None}
    assert interpret_adjustment(event("charge.refunded", **orphan)) is None
    no_status = {**DISPUTE, "status": ""}
    assert interpret_adjustment(event("charge.dispute.created", **no_status)) is None


def payment(**kw) -> Payment:
    base = {
        "amount_cents": 100000,
        "status": "succeeded",
        "refunded_cents": 0,
        "disputed_cents": 0,
        "dispute_status": None,
    }
    return Payment(**{**base, **kw})


def test_what_refunded_and_disputed_payments_count_for():
    assert (counted_cents(payment()), settled_status(payment())) == (100000, "succeeded")
    part = payment(refunded_cents=25000)
    assert (counted_cents(part), settled_status(part)) == (75000, "succeeded")
    full = payment(refunded_cents=100000)
    assert (counted_cents(full), settled_status(full)) == (0, "refunded")
    opened = payment(disputed_cents=100000, dispute_status="warning_needs_response")
    assert (counted_cents(opened), settled_status(opened)) == (100000, "disputed")
    lost = payment(disputed_cents=40000, dispute_status="lost")
    assert (counted_cents(lost), settled_status(lost)) == (60000, "dispute_lost")
    won = payment(disputed_cents=100000, dispute_status="won")
    assert (counted_cents(won), settled_status(won)) == (100000, "succeeded")
    closed = payment(disputed_cents=100000, dispute_status="warning_closed")
    assert settled_status(closed) == "succeeded"
    both = payment(refunded_cents=30000, disputed_cents=70000, dispute_status="lost")
    assert counted_cents(both) == 0
    assert counted_cents(payment(status="pending")) == 0
    assert counted_cents(payment(status="failed", refunded_cents=5)) == 0
