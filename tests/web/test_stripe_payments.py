"""Stripe through the official client against a local fake (CONTRACT §4, §6): the Pay button
opens a Checkout Session (card + ACH, idempotency key on every create, balance or a partial
amount), and signed webhook events move the invoice exactly once, ACH settling later; refunds
and disputes (chargebacks) of a payment move it back, idempotently and in any order."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update
from temporalio.client import WorkflowExecutionStatus

from portico import cli
from portico.ledger import overdue_at
from portico.models import InvoiceAuditEvent, Payment, StripeEvent
from portico.services.invoice_audit import verify_invoice
from tests.conftest import start_stack
from tests.support.fake_stripe import FakeStripe, signed, wrap
from tests.support.helpers import wait_until
from tests.support.portal_support import (
    CSRF,
    Browser,
    FlakyRelay,
    create_invoice,
    flaky_relay,
    payments_announced,
    seed_client,
    sign_in,
    temporal_unreachable,
)
from tests.support.portal_support import mails_to as sent_to
from workflows.invoice import InvoiceWorkflow
from workflows.types import InvoiceState

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = await FakeStripe().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def stripe_stack(settings, sessions, dev_env, fake_stripe) -> AsyncIterator[Any]:
    configured = settings.model_copy(
        update={
            "stripe_secret_key": "sk_test_fake_key",
            "stripe_webhook_secret": SECRET,
            "stripe_api_base": fake_stripe.base_url,
        }
    )
    async for s in start_stack(configured, sessions, dev_env.client):
        yield s


async def mails_to(stack, address: str) -> list:
    """The mail to `address` once the invoice workflows have made every payment announcement
    committed so far (receipts and notices leave from the worker, after the webhook's 200)."""
    await payments_announced(stack)
    return await sent_to(stack, address)


def local(url: str) -> str:
    return url.removeprefix("http://portico.test")


async def pay(browser: Browser, pay_path: str, amount: str = "", attempt: str | None = None):
    status, html, _ = await browser.get(pay_path)
    assert status == 200
    fields = {"csrf": CSRF.search(html).group(1), "amount": amount}
    fields["attempt"] = attempt or re.search(r'name="attempt" value="([^"]+)"', html).group(1)
    return await browser.post(pay_path + "/checkout", fields, allow_redirects=False)


async def webhook(stack, event: dict, secret: str = SECRET, **kw) -> tuple[int, dict]:
    payload, headers = signed(event, secret, **kw)
    response = await stack.http.post("/webhooks/stripe", data=payload, headers=headers)
    return response.status, await response.json()


async def setup_invoice(stack, **kw) -> tuple[dict, str]:
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"], **kw)
    return invoice, local(invoice["pay_url"])


async def test_pay_opens_checkout_with_card_and_ach_and_idempotency_keys(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        status, html, response = await browser.get(path)
        assert '<label for="amount">Amount (USD)</label>' in html and 'value="1200.00"' in html
        assert ">Pay</button>" in html
        assert fake_stripe.base_url in response.headers["Content-Security-Policy"]

        status, _, response = await pay(browser, path, attempt="attempt-one-1")
        assert status == 303
        session = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        request = fake_stripe.requests[0]
        assert request["mode"] == "payment"
        assert [request["payment_method_types[0]"], request["payment_method_types[1]"]] == [
            "card",
            "us_bank_account",
        ]
        assert request["line_items[0][price_data][unit_amount]"] == "120000"
        assert request["metadata[invoice_id]"] == str(invoice["id"])
        assert request["customer_email"] == "dana@client.test"
        assert fake_stripe.authorizations[0] == "Bearer sk_test_fake_key"
        assert fake_stripe.idempotency_keys[0].startswith(f"portico-checkout-{invoice['id']}-")
        assert session["amount_total"] == 120000

        # the same form sent twice (a double click) is the same Checkout Session
        status, _, again = await pay(browser, path, attempt="attempt-one-1")
        assert again.headers["Location"] == response.headers["Location"]
        assert fake_stripe.idempotency_keys[1] == fake_stripe.idempotency_keys[0]

        # a part of the balance
        status, _, partial = await pay(browser, path, amount="250.00")
        assert status == 303
        assert fake_stripe.requests[-1]["line_items[0][price_data][unit_amount]"] == "25000"
        assert all(fake_stripe.idempotency_keys)
        assert len(set(fake_stripe.idempotency_keys)) == 2

        status, html, _ = await pay(browser, path, amount="1200.01")
        assert status == 422 and "at most $1,200.00" in html
        status, html, _ = await pay(browser, path, amount="0.10")
        assert status == 422
        status, html, _ = await pay(browser, path, amount="12,0x")
        assert status == 422
        assert len(fake_stripe.requests) == 3
    finally:
        await browser.close()


async def test_card_payments_partial_then_full(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path, amount="250.00")
        first = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        status, answer = await webhook(
            stack, fake_stripe.event("checkout.session.completed", first, payment_status="paid")
        )
        assert status == 200 and answer["result"] == "applied"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert shown["status"] == "partially_paid" and shown["paid_cents"] == 25000
        assert shown["payments"][0]["method"] == "card"
        assert shown["payments"][0]["status"] == "succeeded"

        status, html, _ = await browser.get(path)
        assert 'value="950.00"' in html  # the rest is filled in next time
        _, _, response = await pay(browser, path)
        rest = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        assert rest["amount_total"] == 95000
        await webhook(
            stack, fake_stripe.event("checkout.session.completed", rest, payment_status="paid")
        )
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert shown["status"] == "paid" and shown["paid_cents"] == 120000
        status, html, _ = await browser.get(path)
        assert ">Pay</button>" not in html and "Paid" in html

        receipts = [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
        assert [r.subject.split(":")[1].split(" for")[0].strip() for r in receipts] == [
            "$250.00",
            "$950.00",
        ]
        staff = await mails_to(stack, "office@firm.test")
        assert len([m for m in staff if "Payment received" in m.subject]) == 2
        handle = stack.temporal.get_workflow_handle_for(InvoiceWorkflow.run, invoice["workflow_id"])
        await wait_until(lambda: state_is(handle, "paid"))
    finally:
        await browser.close()


async def test_checkout_asks_for_the_due_part_of_a_retainage_invoice(stripe_stack, fake_stripe):
    """Retainage (CONTRACT §12): Checkout asks for total − retainage, and paying that is paid."""
    stack = stripe_stack
    invoice, path = await setup_invoice(stack, retainage_percent="7.5")
    assert (invoice["retainage_cents"], invoice["due_cents"]) == (9000, 111000)
    browser = Browser(stack)
    try:
        status, html, _ = await browser.get(path)
        assert 'value="1110.00"' in html and "Retainage held (7.5%)" in html
        status, html, _ = await pay(browser, path, amount="1200.00")  # the total is too much
        assert status == 422 and "at most $1,110.00" in html
        _, _, response = await pay(browser, path)
        session = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        assert fake_stripe.requests[-1]["line_items[0][price_data][unit_amount]"] == "111000"
        assert session["amount_total"] == 111000
        status, answer = await webhook(
            stack, fake_stripe.event("checkout.session.completed", session, payment_status="paid")
        )
        assert status == 200 and answer["result"] == "applied"
        assert "flagged" not in answer  # not an overpayment
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert shown["status"] == "paid" and shown["paid_cents"] == 111000
        assert shown["balance_cents"] == 0 and shown["retainage_status"] == "held"
        status, html, _ = await browser.get(path)
        assert ">Pay</button>" not in html
    finally:
        await browser.close()


async def test_webhook_signatures_are_checked(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path)
        session = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
    finally:
        await browser.close()
    event = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    status, answer = await webhook(stack, event, secret="whsec_forged")
    assert status == 400 and answer["error"]["code"] == "bad_signature"
    status, answer = await webhook(stack, event, timestamp=int(time.time()) - 3600)
    assert status == 400 and answer["error"]["code"] == "bad_signature"
    response = await stack.http.post("/webhooks/stripe", data=b"{}")
    assert response.status == 400
    payload, headers = signed(event, SECRET)
    tampered = payload.replace('"amount_total": 120000', '"amount_total": 1')
    response = await stack.http.post("/webhooks/stripe", data=tampered, headers=headers)
    assert response.status == 400
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["payments"] == [] and shown["status"] == "open"
    status, answer = await webhook(stack, event)
    assert status == 200 and answer["result"] == "applied"
    status, answer = await webhook(stack, {**event, "id": "evt_other", "type": "customer.created"})
    assert status == 200 and answer["result"] == "ignored"


async def test_duplicate_deliveries_change_nothing_even_concurrently(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path, amount="100.00")
        one = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        _, _, response = await pay(browser, path, amount="200.00")
        two = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
    finally:
        await browser.close()
    event = fake_stripe.event("checkout.session.completed", one, payment_status="paid")
    assert (await webhook(stack, event))[1]["result"] == "applied"
    assert (await webhook(stack, event))[1]["result"] == "duplicate"

    event = fake_stripe.event("checkout.session.completed", two, payment_status="paid")
    answers = await asyncio.gather(*(webhook(stack, event) for _ in range(6)))
    assert all(status == 200 for status, _ in answers)
    results = sorted(answer["result"] for _, answer in answers)
    assert results == ["applied"] + ["duplicate"] * 5

    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["paid_cents"] == 30000 and len(shown["payments"]) == 2
    receipts = [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
    assert len(receipts) == 2


async def test_ach_is_pending_until_it_settles_or_fails(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    other, other_path = await setup_invoice(stack, number="INV-2002")
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path)
        ach = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
        _, _, response = await pay(browser, other_path)
        failing = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]

        completed = fake_stripe.event("checkout.session.completed", ach, payment_status="unpaid")
        assert (await webhook(stack, completed))[1]["result"] == "applied"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert shown["status"] == "open" and shown["paid_cents"] == 0
        assert shown["pending_cents"] == 120000 and shown["balance_cents"] == 0
        assert shown["payments"][0]["status"] == "pending"
        assert shown["payments"][0]["method"] == "us_bank_account"
        status, html, _ = await browser.get(path)
        assert "is processing" in html and ">Pay</button>" not in html
        processing = await mails_to(stack, "dana@client.test")
        assert any("Payment processing" in m.subject for m in processing)

        settled = fake_stripe.event(
            "checkout.session.async_payment_succeeded", ach, payment_status="paid"
        )
        assert (await webhook(stack, settled))[1]["result"] == "applied"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert shown["status"] == "paid" and shown["paid_cents"] == 120000
        assert [p["status"] for p in shown["payments"]] == ["succeeded"]

        await webhook(
            stack, fake_stripe.event("checkout.session.completed", failing, payment_status="unpaid")
        )
        await webhook(stack, fake_stripe.event("checkout.session.async_payment_failed", failing))
        shown = await stack.api("GET", f"/invoices/{other['id']}", 200)
        assert shown["status"] == "open" and shown["paid_cents"] == 0
        assert shown["pending_cents"] == 0 and shown["balance_cents"] == 120000
        assert shown["payments"][0]["status"] == "failed"
        failed = await wait_until(lambda: _subjects(stack, "dana@client.test", "Payment failed"))
        assert "INV-2002" in failed[0]
        status, html, _ = await browser.get(other_path)
        assert ">Pay</button>" in html  # the client can try again
    finally:
        await browser.close()


async def _subjects(stack, to: str, prefix: str) -> list[str]:
    return [m.subject for m in await mails_to(stack, to) if m.subject.startswith(prefix)]


# --- refunds and disputes -------------------------------------------------------------------


async def paid_by_card(stack, fake: FakeStripe, browser: Browser, path: str, amount: str = ""):
    """Pay through Checkout (the whole balance, or `amount`) and deliver the completed event."""
    _, _, response = await pay(browser, path, amount=amount)
    session = fake.sessions[response.headers["Location"].rsplit("/", 1)[1]]
    event = fake.event("checkout.session.completed", session, payment_status="paid")
    assert (await webhook(stack, event))[1]["result"] == "applied"
    return session


async def state_is(handle, status: str) -> InvoiceState | None:
    """The invoice workflow's state once it has seen `status`."""
    state = await handle.query(InvoiceWorkflow.state)
    return state if state.status == status else None


async def staff_mail(stack, *prefixes: str) -> list:
    mails = await mails_to(stack, "office@firm.test")
    return [m for m in mails if m.subject.startswith(prefixes)]


async def test_full_refund_reopens_a_paid_invoice(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
        handle = stack.temporal.get_workflow_handle_for(InvoiceWorkflow.run, invoice["workflow_id"])
        paid = await wait_until(lambda: state_is(handle, "paid"))
        assert paid.next_reminder_at is None

        refund = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=120000))
        status, answer = await webhook(stack, refund)
        assert status == 200 and answer["result"] == "applied"
        assert (await webhook(stack, refund))[1]["result"] == "duplicate"

        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"], shown["balance_cents"]) == ("open", 0, 120000)
        assert shown["refunded_cents"] == 120000 and shown["paid_at"] is None
        [payment] = shown["payments"]
        assert payment["status"] == "refunded" and payment["amount_cents"] == 120000
        assert payment["refunded_cents"] == 120000 and payment["net_cents"] == 0
        assert payment["stripe_charge_id"] == fake_stripe.charge_id(session)
        assert payment["stripe_payment_intent_id"] == session["payment_intent"]

        [notice] = await staff_mail(stack, "Refund")
        assert notice.subject == "Refund: $1,200.00 on invoice INV-1001 (Dana Client)"
        assert "refunded in full" in notice.body and "Balance: $1,200.00" in notice.body
        assert "is open again" in notice.body and "reminders start again" in notice.body
        # the invoice's workflow kept running while it was paid: its reminders are back
        reopened = await wait_until(lambda: state_is(handle, "open"))
        assert reopened.next_reminder_at == overdue_at(date.fromisoformat(invoice["due_date"]))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert not any("Refund" in m.subject for m in await mails_to(stack, "dana@client.test"))

        status, html, _ = await browser.get(path)
        assert '<span class="badge badge-refunded">Refunded</span>' in html
        assert "<dt>Refunded</dt><dd>$1,200.00</dd>" in html and ">Pay</button>" in html
        # nothing is counted as paid any more, so the invoice can be voided
        voided = await stack.api(
            "POST", f"/invoices/{invoice['id']}/void", 200, json={"reason": "Job cancelled"}
        )
        assert voided["status"] == "void"

        async def ended() -> bool:
            return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

        await wait_until(ended, 60)
    finally:
        await browser.close()


async def test_partial_refund_then_full_duplicates_and_late_events(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    portal = await sign_in(stack, "dana@client.test")
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
        partial = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=30000))
        assert (await webhook(stack, partial))[1]["result"] == "applied"
        assert (await webhook(stack, partial))[1]["result"] == "duplicate"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"], shown["balance_cents"]) == (
            "partially_paid",
            90000,
            30000,
        )
        [payment] = shown["payments"]
        assert (payment["status"], payment["refunded_cents"], payment["net_cents"]) == (
            "succeeded",
            30000,
            90000,
        )

        # the pay page, the portal's invoice page and its payments list show the refund
        status, html, _ = await browser.get(path)
        assert '<span class="badge badge-succeeded">Succeeded</span>' in html
        assert '<span class="small">$300.00 refunded</span>' in html
        assert "<dt>Paid</dt><dd>$900.00</dd>" in html and 'value="300.00"' in html
        status, html, _ = await portal.get(f"/portal/invoices/{invoice['id']}")
        assert status == 200 and '<span class="small">$300.00 refunded</span>' in html
        status, html, _ = await portal.get("/portal")
        assert status == 200 and "$300.00 refunded" in html and "Partially paid" in html

        full = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=120000))
        assert (await webhook(stack, full))[1]["result"] == "applied"
        # a late delivery of an older state (another event id) changes nothing
        late = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=30000))
        status, answer = await webhook(stack, late)
        assert status == 200 and answer["result"] == "ignored"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"]) == ("open", 0)
        assert [(p["status"], p["refunded_cents"]) for p in shown["payments"]] == [
            ("refunded", 120000)
        ]
        status, html, _ = await portal.get("/portal")
        assert '<span class="badge badge-refunded">Refunded</span>' in html

        subjects = [m.subject for m in await staff_mail(stack, "Refund")]
        assert subjects == [
            "Refund (partial): $300.00 on invoice INV-1001 (Dana Client)",
            "Refund: $900.00 on invoice INV-1001 (Dana Client)",
        ]

        # out of order on a part payment: the full refund arrives before the partial one;
        # the invoice was never paid, so its reminder workflow keeps running
        other, other_path = await setup_invoice(stack, number="INV-2002")
        part = await paid_by_card(stack, fake_stripe, browser, other_path, amount="500.00")
        first = wrap("charge.refunded", fake_stripe.charge(part, amount_refunded=50000))
        second = wrap("charge.refunded", fake_stripe.charge(part, amount_refunded=20000))
        assert (await webhook(stack, first))[1]["result"] == "applied"
        assert (await webhook(stack, second))[1]["result"] == "ignored"
        shown = await stack.api("GET", f"/invoices/{other['id']}", 200)
        assert (shown["status"], shown["paid_cents"], shown["balance_cents"]) == ("open", 0, 120000)
        assert [(p["status"], p["refunded_cents"]) for p in shown["payments"]] == [
            ("refunded", 50000)
        ]
        [notice] = await staff_mail(stack, "Refund: $500.00 on invoice INV-2002")
        assert "Overdue reminders continue" in notice.body and "open again" not in notice.body
        handle = stack.temporal.get_workflow_handle(other["workflow_id"])
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    finally:
        await browser.close()
        await portal.close()


async def test_dispute_opened_then_lost(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
        opened = wrap("charge.dispute.created", fake_stripe.dispute(session, "needs_response"))
        assert (await webhook(stack, opened))[1]["result"] == "applied"
        assert (await webhook(stack, opened))[1]["result"] == "duplicate"
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"]) == ("paid", 120000)  # counts until lost
        [payment] = shown["payments"]
        assert (payment["status"], payment["dispute_status"], payment["disputed_cents"]) == (
            "disputed",
            "needs_response",
            120000,
        )
        [notice] = await staff_mail(stack, "Dispute")
        assert notice.subject == "Dispute opened: $1,200.00 on invoice INV-1001 (Dana Client)"
        assert "by Aug 14, 2024" in notice.body and "needs a response" in notice.body
        status, html, _ = await browser.get(path)
        assert '<span class="badge badge-disputed">Disputed</span>' in html
        assert "is disputed with the bank" in html

        review = wrap("charge.dispute.updated", fake_stripe.dispute(session, "under_review"))
        assert (await webhook(stack, review))[1]["result"] == "applied"
        lost = wrap("charge.dispute.closed", fake_stripe.dispute(session, "lost"))
        assert (await webhook(stack, lost))[1]["result"] == "applied"
        # a late update of the open dispute does not reopen it
        stale = wrap("charge.dispute.updated", fake_stripe.dispute(session, "needs_response"))
        assert (await webhook(stack, stale))[1]["result"] == "ignored"

        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"], shown["balance_cents"]) == ("open", 0, 120000)
        [payment] = shown["payments"]
        assert (payment["status"], payment["dispute_status"], payment["net_cents"]) == (
            "dispute_lost",
            "lost",
            0,
        )
        subjects = [m.subject for m in await staff_mail(stack, "Dispute")]
        assert subjects == [
            "Dispute opened: $1,200.00 on invoice INV-1001 (Dana Client)",
            "Dispute lost: $1,200.00 on invoice INV-1001 (Dana Client)",
        ]
        status, html, _ = await browser.get(path)
        assert '<span class="badge badge-dispute_lost">Charged back</span>' in html
    finally:
        await browser.close()


async def test_dispute_opened_then_won(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
        inquiry = fake_stripe.dispute(session, "warning_needs_response", amount=50000)
        opened = wrap("charge.dispute.created", inquiry)
        assert (await webhook(stack, opened))[1]["result"] == "applied"
        won = wrap("charge.dispute.closed", {**inquiry, "status": "won"})
        assert (await webhook(stack, won))[1]["result"] == "applied"
        assert (await webhook(stack, won))[1]["result"] == "duplicate"
        # Stripe also reports the funds coming back: same state, nothing new
        back = wrap("charge.dispute.funds_reinstated", {**inquiry, "status": "won"})
        assert (await webhook(stack, back))[1]["result"] == "ignored"

        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"], shown["balance_cents"]) == ("paid", 120000, 0)
        [payment] = shown["payments"]
        assert (payment["status"], payment["dispute_status"], payment["disputed_cents"]) == (
            "succeeded",
            "won",
            50000,
        )
        assert payment["net_cents"] == 120000
        subjects = [m.subject for m in await staff_mail(stack, "Dispute")]
        assert subjects == [
            "Dispute opened: $500.00 on invoice INV-1001 (Dana Client)",
            "Dispute won: $500.00 on invoice INV-1001 (Dana Client)",
        ]
        status, html, _ = await browser.get(path)
        assert '<span class="badge badge-succeeded">Succeeded</span>' in html
        assert ">Pay</button>" not in html
    finally:
        await browser.close()


async def test_refunds_and_disputes_of_unknown_payments_are_recorded(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, _ = await setup_invoice(stack)
    stranger = {"payment_intent": "pi_not_portico", "amount_total": 5000, "currency": "usd"}
    refund = wrap("charge.refunded", fake_stripe.charge(stranger, amount_refunded=5000))
    dispute = wrap("charge.dispute.created", fake_stripe.dispute(stranger, "needs_response"))
    for event in (refund, dispute):
        status, answer = await webhook(stack, event)
        assert status == 200 and answer["result"] == "ignored"  # Stripe does not retry it
        assert (await webhook(stack, event))[1]["result"] == "duplicate"
    async with stack.sessions() as session:
        rows = list(await session.scalars(select(StripeEvent).order_by(StripeEvent.id)))
    assert [(r.event_id, r.type, r.invoice_id) for r in rows] == [
        (refund["id"], "charge.refunded", None),
        (dispute["id"], "charge.dispute.created", None),
    ]
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["payments"] == [] and shown["status"] == "open"
    assert not await staff_mail(stack, "Refund", "Dispute")


# --- money trust: a signed event must match the Checkout Session Portico created ------------


async def checkout_session(stack, fake: FakeStripe, path: str, amount: str = "") -> dict:
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path, amount=amount)
    finally:
        await browser.close()
    return fake.sessions[response.headers["Location"].rsplit("/", 1)[1]]


async def nothing_booked(stack, invoice: dict) -> dict:
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["payments"] == [] and shown["status"] == "open" and shown["paid_cents"] == 0
    assert not [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
    return shown


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        (
            {"currency": "jpy"},
            "currency_mismatch",
            "The event is in JPY; the Checkout Session is in USD.",
        ),
        (
            {"amount_total": 0},
            "amount_mismatch",
            "The event is for $0.00; the Checkout Session is for $1,200.00.",
        ),
        (
            {"amount_total": 1200000},
            "amount_mismatch",
            "The event is for $12,000.00; the Checkout Session is for $1,200.00.",
        ),
    ],
)
async def test_a_payment_unlike_its_checkout_session_is_flagged_not_booked(
    stripe_stack, fake_stripe, changes, reason, message
):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    session = await checkout_session(stack, fake_stripe, path)
    event = fake_stripe.event(
        "checkout.session.completed", session, payment_status="paid", **changes
    )
    status, answer = await webhook(stack, event)
    assert (status, answer["result"], answer["flagged"]) == (200, "flagged", reason)
    assert (await webhook(stack, event))[1]["result"] == "duplicate"
    shown = await nothing_booked(stack, invoice)
    [review] = shown["payment_reviews"]
    assert (review["event_id"], review["reason"], review["message"]) == (
        event["id"],
        reason,
        message,
    )
    listed = await stack.api("GET", "/payment-reviews", 200)
    assert [r["event_id"] for r in listed["items"]] == [event["id"]]
    [notice] = await staff_mail(stack, "Stripe payment to review")
    assert "INV-1001" in notice.subject and message in notice.body
    assert "Nothing was booked" in notice.body
    # the real payment of that session still books normally
    real = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    assert (await webhook(stack, real))[1]["result"] == "applied"
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["status"], shown["paid_cents"]) == ("paid", 120000)


async def test_a_session_portico_did_not_create_is_flagged(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, _ = await setup_invoice(stack)
    forged = {
        "id": "cs_test_not_portico",
        "object": "checkout.session",
        "amount_total": 120000,
        "currency": "usd",
        "metadata": {"invoice_id": str(invoice["id"])},
        "payment_intent": "pi_not_portico",
        "payment_status": "paid",
    }
    status, answer = await webhook(stack, wrap("checkout.session.completed", forged))
    assert (status, answer["result"], answer["flagged"]) == (200, "flagged", "unknown_checkout")
    shown = await nothing_booked(stack, invoice)
    assert [r["reason"] for r in shown["payment_reviews"]] == ["unknown_checkout"]
    # a PaymentIntent naming the invoice but no Checkout Session of Portico's: the same
    intent = fake_stripe.payment_intent(
        {**forged, "id": "cs_unknown"}, metadata={"invoice_id": str(invoice["id"])}
    )
    status, answer = await webhook(stack, wrap("payment_intent.succeeded", intent))
    assert (answer["result"], answer["flagged"]) == ("flagged", "unknown_checkout")
    await nothing_booked(stack, invoice)
    # and one naming an invoice that does not exist
    ghost = {**forged, "id": "cs_ghost", "metadata": {"invoice_id": "999999"}}
    status, answer = await webhook(stack, wrap("checkout.session.completed", ghost))
    assert (answer["result"], answer["flagged"]) == ("flagged", "unknown_invoice")
    listed = await stack.api("GET", "/payment-reviews", 200)
    assert [(r["reason"], r["invoice_id"]) for r in listed["items"]] == [
        ("unknown_invoice", 999999),
        ("unknown_checkout", invoice["id"]),
        ("unknown_checkout", invoice["id"]),
    ]
    assert len(await staff_mail(stack, "Stripe payment to review")) == 3


async def test_a_session_for_another_invoice_is_flagged(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    other, _ = await setup_invoice(stack, number="INV-2002")
    session = await checkout_session(stack, fake_stripe, path)
    moved = {**session["metadata"], "invoice_id": str(other["id"])}
    event = fake_stripe.event(
        "checkout.session.completed",
        session,
        payment_status="paid",
        metadata=moved,
        client_reference_id=str(other["id"]),
    )
    status, answer = await webhook(stack, event)
    assert (answer["result"], answer["flagged"]) == ("flagged", "invoice_mismatch")
    await nothing_booked(stack, invoice)
    await nothing_booked(stack, other)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("negative", "data.object.amount_total"),
        ("huge", "data.object.amount_total"),
        ("text", "data.object.amount_total"),
        ("list_data", "data"),
        ("string_object", "data.object"),
        ("list_metadata", "data.object.metadata"),
    ],
)
async def test_malformed_signed_events_are_ignored_never_a_500(
    stripe_stack, fake_stripe, caplog, data, field
):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    session = await checkout_session(stack, fake_stripe, path)
    event = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    obj = event["data"]["object"]
    event["data"] = {
        "negative": {"object": {**obj, "amount_total": -50000}},
        "huge": {"object": {**obj, "amount_total": 2**63}},
        "text": {"object": {**obj, "amount_total": "abc"}},
        "list_data": [1],
        "string_object": {"object": "cs_test_1"},
        "list_metadata": {"object": {**obj, "metadata": [str(invoice["id"])]}},
    }[data]
    with caplog.at_level("INFO", logger="portico.services.billing"):
        status, answer = await webhook(stack, event)
    assert (status, answer["result"], answer["ignored"]) == (200, "ignored", "malformed")
    assert any(field in r.getMessage() and event["id"] in r.getMessage() for r in caplog.records)
    status, answer = await webhook(stack, event)  # Stripe's redelivery
    assert (status, answer["result"]) == (200, "duplicate")
    await nothing_booked(stack, invoice)
    assert not await staff_mail(stack, "Payment received", "Stripe payment to review")
    async with stack.sessions() as db:
        row = await db.scalar(select(StripeEvent).where(StripeEvent.event_id == event["id"]))
    assert row is not None and (row.outcome, row.reason) == ("ignored", "malformed")


async def test_a_signed_payload_that_is_not_an_event_is_a_400(stripe_stack):
    for body in ({"type": "checkout.session.completed"}, {"id": 5, "type": "x"}, [1], "evt"):
        status, answer = await webhook(stripe_stack, body)
        assert (status, answer["error"]["code"]) == (400, "bad_payload")


@pytest.mark.parametrize("order", ["session_first", "intent_first"])
async def test_one_payment_per_payment_intent_whatever_event_carries_it(
    stripe_stack, fake_stripe, order
):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    session = await checkout_session(stack, fake_stripe, path)
    completed = fake_stripe.event(
        "checkout.session.completed", session, payment_status="paid", payment_intent=None
    )
    intent = wrap("payment_intent.succeeded", fake_stripe.payment_intent(session))
    assert intent["data"]["object"]["metadata"]["invoice_id"] == str(invoice["id"])
    events = [completed, intent] if order == "session_first" else [intent, completed]
    first, second = [(await webhook(stack, e))[1] for e in events]
    assert first["result"] == "applied"
    assert (second["result"], second["ignored"]) == ("ignored", "no_change")
    # the same session completed again with its PaymentIntent named: still the one payment
    named = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    assert (await webhook(stack, named))[1]["result"] == "ignored"
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["status"], shown["paid_cents"], shown["overpaid_cents"]) == ("paid", 120000, 0)
    [payment] = shown["payments"]
    assert payment["stripe_payment_intent_id"] == session["payment_intent"]
    assert shown["payment_reviews"] == []
    receipts = [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
    assert len(receipts) == 1
    # a refund of that PaymentIntent finds the one payment
    refund = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=120000))
    assert (await webhook(stack, refund))[1]["result"] == "applied"
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert [p["status"] for p in shown["payments"]] == ["refunded"]


async def test_a_payment_of_more_than_is_still_due_is_booked_and_flagged(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    # two Checkout Sessions for the whole balance (two tabs), then both are paid
    one = await checkout_session(stack, fake_stripe, path)
    two = await checkout_session(stack, fake_stripe, path)
    assert one["id"] != two["id"] and one["amount_total"] == two["amount_total"] == 120000
    paid = fake_stripe.event("checkout.session.completed", one, payment_status="paid")
    assert await webhook(stack, paid) == (200, {"received": True, "result": "applied"})
    again = fake_stripe.event("checkout.session.completed", two, payment_status="paid")
    status, answer = await webhook(stack, again)
    assert (status, answer["result"], answer["flagged"]) == (200, "applied", "overpaid")
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["paid_cents"], shown["overpaid_cents"]) == (240000, 120000)
    assert len(shown["payments"]) == 2
    [review] = shown["payment_reviews"]
    assert review["reason"] == "overpaid"
    assert review["message"] == (
        "$1,200.00 arrived when $0.00 was due: refund $1,200.00 in Stripe."
    )
    [notice] = await staff_mail(stack, "Stripe payment to review")
    assert "refund $1,200.00 in Stripe" in notice.body and "The payment is recorded" in notice.body

    # a manual payment recorded while a session was open: the session's excess is flagged
    other, other_path = await setup_invoice(stack, number="INV-2002")
    session = await checkout_session(stack, fake_stripe, other_path)
    await stack.api(
        "POST",
        f"/invoices/{other['id']}/payments",
        201,
        json={"amount_cents": 100000, "method": "check", "reference": "Check 1001"},
    )
    event = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    assert (await webhook(stack, event))[1]["flagged"] == "overpaid"
    shown = await stack.api("GET", f"/invoices/{other['id']}", 200)
    assert shown["overpaid_cents"] == 100000
    assert shown["payment_reviews"][0]["message"] == (
        "$1,200.00 arrived when $200.00 was due: refund $1,000.00 in Stripe."
    )


async def test_a_refund_in_another_currency_is_flagged(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
    finally:
        await browser.close()
    refund = wrap(
        "charge.refunded", fake_stripe.charge(session, amount_refunded=120000, currency="jpy")
    )
    status, answer = await webhook(stack, refund)
    assert (answer["result"], answer["flagged"]) == ("flagged", "currency_mismatch")
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["status"], shown["paid_cents"]) == ("paid", 120000)
    assert [r["reason"] for r in shown["payment_reviews"]] == ["currency_mismatch"]


async def test_a_declined_card_inside_checkout_books_nothing(stripe_stack, fake_stripe):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    session = await checkout_session(stack, fake_stripe, path)
    declined = fake_stripe.payment_intent(
        session,
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={"message": "Your card was declined."},
    )
    status, answer = await webhook(stack, wrap("payment_intent.payment_failed", declined))
    assert (status, answer["result"], answer["ignored"]) == (200, "ignored", "no_payment")
    await nothing_booked(stack, invoice)
    assert not await _subjects(stack, "dana@client.test", "Payment failed")
    # the client pays in the same session: booked once
    paid = wrap("payment_intent.succeeded", fake_stripe.payment_intent(session))
    assert (await webhook(stack, paid))[1]["result"] == "applied"
    completed = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    assert (await webhook(stack, completed))[1]["result"] == "ignored"
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["status"], len(shown["payments"])) == ("paid", 1)
    assert shown["payments"][0]["stripe_payment_intent_id"] == session["payment_intent"]


# --- announced durably, exactly once --------------------------------------------------------


@pytest.fixture
async def relay() -> AsyncIterator[FlakyRelay]:
    async with flaky_relay() as relay:
        yield relay


@pytest.fixture
async def relay_stack(settings, sessions, dev_env, fake_stripe, relay) -> AsyncIterator[Any]:
    """Stripe as in stripe_stack, and mail through a real SMTP relay that can be down."""
    configured = settings.model_copy(
        update={
            "stripe_secret_key": "sk_test_fake_key",
            "stripe_webhook_secret": SECRET,
            "stripe_api_base": fake_stripe.base_url,
            "smtp_host": relay.host,
            "smtp_port": relay.port,
        }
    )
    async for s in start_stack(configured, sessions, dev_env.client):
        yield s


async def test_receipt_and_staff_notice_go_out_once_while_the_relay_is_down(
    relay_stack, fake_stripe, relay
):
    stack = relay_stack
    invoice, path = await setup_invoice(stack)

    async def issued() -> bool:
        return bool(relay.to("dana@client.test", "Invoice INV-1001"))

    await wait_until(issued)
    relay.down_for = 3  # the relay answers 451 to the next three messages
    browser = Browser(stack)
    try:
        _, _, response = await pay(browser, path)
    finally:
        await browser.close()
    session = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
    event = fake_stripe.event("checkout.session.completed", session, payment_status="paid")
    status, answer = await webhook(stack, event)
    assert status == 200 and answer["result"] == "applied"

    await payments_announced(stack)  # retried by the workflow until the relay took them
    assert relay.refused == 3
    [receipt] = relay.to("dana@client.test", "Receipt")
    assert "$1,200.00" in receipt["Subject"] and "INV-1001" in receipt["Subject"]
    assert len(relay.to("office@firm.test", "Payment received")) == 1
    assert (await webhook(stack, event))[1]["result"] == "duplicate"
    await payments_announced(stack)
    assert len(relay.to("dana@client.test", "Receipt")) == 1
    assert len(relay.to("office@firm.test", "Payment received")) == 1


async def test_a_hand_off_cut_after_the_commit_is_completed_by_stripes_redelivery(
    stripe_stack, fake_stripe
):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path, amount="200.00")
        _, _, response = await pay(browser, path)
    finally:
        await browser.close()
    rest = fake_stripe.sessions[response.headers["Location"].rsplit("/", 1)[1]]
    event = fake_stripe.event("checkout.session.completed", rest, payment_status="paid")
    refund = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=5000))
    await payments_announced(stack)

    async with temporal_unreachable(stack):
        status, answer = await webhook(stack, event)
        assert status == 503 and answer["error"]["code"] == "unavailable"
        assert "recorded" in answer["error"]["message"]
        assert (await webhook(stack, refund))[0] == 503
        # both are booked (in their own transactions), neither is announced yet
        shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert (shown["status"], shown["paid_cents"]) == ("partially_paid", 115000)
        assert [p["refunded_cents"] for p in shown["payments"]] == [5000, 0]
        receipts = [m for m in await sent_to(stack, "dana@client.test") if "Receipt" in m.subject]
        assert len(receipts) == 1  # the first payment's
        assert (await webhook(stack, event))[0] == 503  # a redelivery meanwhile: still not

    # Stripe delivers again: a duplicate, whose hand-off is made this time
    status, answer = await webhook(stack, event)
    assert status == 200 and answer["result"] == "duplicate"
    assert (await webhook(stack, refund))[1]["result"] == "duplicate"
    receipts = [
        m.subject for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject
    ]
    assert len(receipts) == 2 and "$1,000.00" in receipts[1]
    assert len(await staff_mail(stack, "Payment received")) == 2
    assert len(await staff_mail(stack, "Refund (partial): $50.00")) == 1
    assert (await webhook(stack, event))[1]["result"] == "duplicate"
    assert len(await _subjects(stack, "dana@client.test", "Receipt")) == 2
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert (shown["status"], shown["paid_cents"]) == ("partially_paid", 115000)


async def test_payments_and_refunds_are_in_the_invoice_audit_trail(
    stripe_stack, fake_stripe, monkeypatch, tmp_path
):
    stack = stripe_stack
    invoice, path = await setup_invoice(stack)
    await stack.api(
        "POST",
        f"/invoices/{invoice['id']}/payments",
        201,
        json={"amount_cents": 20000, "method": "check", "reference": "Check 1042"},
    )
    browser = Browser(stack)
    try:
        session = await paid_by_card(stack, fake_stripe, browser, path)
    finally:
        await browser.close()
    refund = wrap("charge.refunded", fake_stripe.charge(session, amount_refunded=30000))
    assert (await webhook(stack, refund))[1]["result"] == "applied"
    await payments_announced(stack)

    async with stack.sessions() as db:
        events = list(
            await db.scalars(
                select(InvoiceAuditEvent)
                .where(InvoiceAuditEvent.invoice_id == invoice["id"])
                .order_by(InvoiceAuditEvent.seq)
            )
        )
    assert [(e.type, e.actor) for e in events] == [
        ("payment_succeeded", "api"),
        ("payment_succeeded", "stripe"),
        ("payment_refunded", "stripe"),
    ]
    assert events[0].data["payment"]["reference"] == "Check 1042"
    assert events[2].data["stripe_event"] == refund["id"]
    assert events[2].data["payment"]["refunded_cents"] == 30000
    assert events[2].data["invoice"] == {
        "status": "partially_paid",
        "total_cents": 120000,
        "paid_cents": 90000,
    }
    assert (await verify_invoice(stack.sessions, invoice["id"])).problems == []

    monkeypatch.setenv("PORTICO_DATABASE_URL", stack.settings.database_url)
    monkeypatch.setenv("PORTICO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    verify = ["audit", "verify", f"invoice:{invoice['id']}"]
    out = await asyncio.to_thread(_run_cli, verify)
    assert out == (
        0,
        f"invoice {invoice['id']}: audit trail intact (3 events); 2 payments match it",
    )

    # the refund quietly taken out of SQL
    card = events[1].data["payment"]["id"]
    async with stack.sessions() as db, db.begin():
        await db.execute(update(Payment).where(Payment.id == card).values(refunded_cents=0))
    code, text = await asyncio.to_thread(_run_cli, verify)
    assert code == 1 and "TAMPERED" in text
    assert f"payment {card} differs from its last audit event" in text
    async with stack.sessions() as db, db.begin():
        await db.execute(update(Payment).where(Payment.id == card).values(refunded_cents=30000))
        # an audit event edited
        await db.execute(
            update(InvoiceAuditEvent)
            .where(InvoiceAuditEvent.id == events[0].id)
            .values(
                data={**events[0].data, "payment": {**events[0].data["payment"], "amount_cents": 1}}
            )
        )
    problems = (await verify_invoice(stack.sessions, invoice["id"])).problems
    assert "event #1: content does not match its hash" in problems
    assert (
        f"payment {events[0].data['payment']['id']} differs from its last audit event" in problems
    )


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """`portico …` in this thread, its stdout captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue().strip()
