"""How Stripe events map to payment changes (pure): card vs ACH, later settlement, intents,
refunds and disputes, what a refunded or disputed payment still counts for, malformed objects
(ignored with a reason, never an exception), and the money checks of a payment against the
Checkout Session Portico created."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico.ledger import counted_cents, settled_status
from portico.models import Payment, StripeCheckout
from portico.money import totals
from portico.services.billing.links import pay_token
from portico.services.billing.stripe_webhook import checkout_mismatch, overpayment
from portico.stripe_events import (
    MAX_STRIPE_CENTS,
    EventEnvelope,
    Ignored,
    StripeAdjustment,
    StripeChange,
    interpret,
)


def event(kind: str, **obj) -> EventEnvelope:
    return EventEnvelope(id="evt_1", type=kind, data={"object": obj})


def interpret_event(envelope: EventEnvelope) -> StripeChange | None:
    meaning = interpret(envelope)
    return meaning if isinstance(meaning, StripeChange) else None


def interpret_adjustment(envelope: EventEnvelope) -> StripeAdjustment | None:
    meaning = interpret(envelope)
    return meaning if isinstance(meaning, StripeAdjustment) else None


SESSION = {
    "id": "cs_test_1",
    "object": "checkout.session",
    "amount_total": 25000,
    "currency": "usd",
    "metadata": {"invoice_id": "12", "portico_checkout": "12-25000-attempt1"},
    "payment_intent": "pi_1",
}


def test_checkout_session_events():
    card = interpret_event(event("checkout.session.completed", **SESSION, payment_status="paid"))
    assert card and (card.invoice_id, card.status, card.method) == (12, "succeeded", "card")
    assert (card.amount_cents, card.currency, card.session_id) == (25000, "USD", "cs_test_1")
    assert card.checkout_ref == "12-25000-attempt1"
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
    orphan = {**DISPUTE, "charge": None, "payment_intent": None}
    assert interpret(event("charge.dispute.created", **orphan)) == Ignored(
        "not_portico", "The dispute names no charge or payment intent."
    )
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


# --- malformed objects: ignored with the field at fault, never an exception ------------------

PAID = {**SESSION, "payment_status": "paid"}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([1], "data"),
        ("not an object", "data"),
        ({"object": "cs_test_1"}, "data.object"),
        ({"object": {**PAID, "amount_total": 2**63}}, "data.object.amount_total"),
        ({"object": {**PAID, "amount_total": "abc"}}, "data.object.amount_total"),
        ({"object": {**PAID, "amount_total": "25000"}}, "data.object.amount_total"),
        ({"object": {**PAID, "amount_total": True}}, "data.object.amount_total"),
        ({"object": {**PAID, "amount_total": 250.5}}, "data.object.amount_total"),
        ({"object": {**PAID, "amount_total": -50000}}, "data.object.amount_total"),
        ({"object": {**PAID, "metadata": ["invoice_id", "12"]}}, "data.object.metadata"),
        ({"object": {**PAID, "metadata": {"invoice_id": 12}}}, "data.object.metadata.invoice_id"),
        ({"object": {**PAID, "currency": "dollars"}}, "data.object.currency"),
        ({"object": {**PAID, "object": "charge"}}, "data.object.object"),
        ({"object": {**PAID, "id": None}}, "data.object.id"),
    ],
)
def test_malformed_checkout_sessions_are_ignored_with_the_field_at_fault(data, where):
    meaning = interpret(EventEnvelope(id="evt_1", type="checkout.session.completed", data=data))
    assert isinstance(meaning, Ignored) and meaning.reason == "malformed"
    assert meaning.detail.startswith(where + ":")


def test_a_malformed_intent_is_described_without_its_values():
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": "lots",
        "currency": "usd",
        "client_secret": "pi_1_secret_do_not_log",
        "metadata": {"invoice_id": "3"},
    }
    meaning = interpret(event("payment_intent.succeeded", **intent))
    assert isinstance(meaning, Ignored) and meaning.reason == "malformed"
    assert "amount" in meaning.detail and "lots" not in meaning.detail
    assert "secret" not in meaning.detail


def test_events_portico_does_not_act_on_are_not_parsed():
    for data in (None, [1], {"object": "x"}):
        meaning = interpret(EventEnvelope(id="evt_1", type="customer.created", data=data))
        assert isinstance(meaning, Ignored) and meaning.reason == "not_handled"
    no_invoice = {**PAID, "metadata": {"invoice_id": "abc"}}
    assert interpret(event("checkout.session.completed", **no_invoice)).reason == "not_portico"
    huge = {**PAID, "metadata": {"invoice_id": "9" * 30}}
    assert interpret(event("checkout.session.completed", **huge)).reason == "not_portico"


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_any_json_amount_is_taken_exactly_or_ignored(amount):
    payload = json.dumps(
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {"object": {**PAID, "amount_total": amount}},
        }
    )
    meaning = interpret(EventEnvelope.model_validate_json(payload))
    if 0 <= amount <= MAX_STRIPE_CENTS:
        assert isinstance(meaning, StripeChange) and meaning.amount_cents == amount
    else:
        assert isinstance(meaning, Ignored) and meaning.reason == "malformed"


# --- the money checks ------------------------------------------------------------------------


def checkout(**kw) -> StripeCheckout:
    base = {
        "invoice_id": 12,
        "ref": "12-25000-attempt1",
        "session_id": "cs_test_1",
        "amount_cents": 25000,
        "currency": "USD",
        "due_cents": 120000,
    }
    return StripeCheckout(**{**base, **kw})


def change(**kw) -> StripeChange:
    base = {
        "invoice_id": 12,
        "status": "succeeded",
        "method": "card",
        "amount_cents": 25000,
        "currency": "USD",
        "session_id": "cs_test_1",
        "payment_intent_id": "pi_1",
        "checkout_ref": "12-25000-attempt1",
    }
    return StripeChange(**{**base, **kw})


def test_a_payment_must_match_its_checkout_session():
    assert checkout_mismatch(change(), checkout()) is None
    assert checkout_mismatch(change(session_id=None), checkout()) is None  # a PaymentIntent
    assert checkout_mismatch(change(), checkout(session_id=None)) is None  # not linked yet
    reasons = {
        "currency_mismatch": change(currency="JPY"),
        "amount_mismatch": change(amount_cents=250000),
        "invoice_mismatch": change(invoice_id=13),
        "session_mismatch": change(session_id="cs_test_other"),
    }
    for reason, wrong in reasons.items():
        flag = checkout_mismatch(wrong, checkout())
        assert flag is not None and flag.reason == reason, reason
    flag = checkout_mismatch(change(amount_cents=0), checkout())
    assert flag and flag.detail == "The event is for $0.00; the Checkout Session is for $250.00."
    # a failed payment moved no money: only its currency must match
    assert checkout_mismatch(change(status="failed", amount_cents=0), checkout()) is None


@given(
    amount=st.integers(min_value=0, max_value=MAX_STRIPE_CENTS),
    asked=st.integers(min_value=1, max_value=MAX_STRIPE_CENTS),
    currency=st.sampled_from(["USD", "EUR", "JPY"]),
)
def test_only_the_amount_and_currency_asked_for_pass(amount, asked, currency):
    flag = checkout_mismatch(
        change(amount_cents=amount, currency=currency), checkout(amount_cents=asked)
    )
    assert (flag is None) == (amount == asked and currency == "USD")


@given(
    amount=st.integers(min_value=1, max_value=MAX_STRIPE_CENTS),
    due=st.integers(min_value=-MAX_STRIPE_CENTS, max_value=MAX_STRIPE_CENTS),
)
def test_an_overpayment_is_flagged_with_its_excess(amount, due):
    flag = overpayment(amount, due, "USD")
    assert (flag is not None) == (amount > max(0, due))
    if flag is not None:
        excess = Decimal(amount - max(0, due)) / 100
        assert flag.reason == "overpaid" and f"refund ${excess:,.2f}" in flag.detail


@given(
    amount=st.integers(min_value=0, max_value=MAX_STRIPE_CENTS),
    refunded=st.integers(min_value=0, max_value=MAX_STRIPE_CENTS),
    disputed=st.integers(min_value=0, max_value=MAX_STRIPE_CENTS),
    dispute=st.sampled_from([None, "needs_response", "under_review", "won", "lost"]),
)
def test_a_payment_counts_between_nothing_and_its_amount(amount, refunded, disputed, dispute):
    paid = payment(
        amount_cents=amount,
        refunded_cents=min(refunded, amount),
        disputed_cents=min(disputed, amount),
        dispute_status=dispute,
    )
    counted = counted_cents(paid)
    assert 0 <= counted <= amount
    more = payment(
        amount_cents=amount,
        refunded_cents=min(refunded + 1, amount),
        disputed_cents=min(disputed, amount),
        dispute_status=dispute,
    )
    assert counted_cents(more) <= counted  # a larger refund never counts for more
    if dispute != "lost":
        assert counted == amount - min(refunded, amount)
