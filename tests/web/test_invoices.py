"""Invoices through the staff API (CONTRACT §3): totals and PDF, manual payments (partial, full,
overpayment refused), void, receipts and staff notices, the invoice workflow told when paid,
and the pay page without Stripe (bank-transfer details revealed by "Pay")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus

from portico import pdf
from portico.models import PaymentAnnouncement
from portico.services.billing.announcements import PaymentHandOff
from tests.conftest import start_stack
from tests.support.helpers import wait_until
from tests.support.portal_support import (
    Browser,
    create_invoice,
    flaky_relay,
    mails_to,
    payments_announced,
    seed_client,
    temporal_unreachable,
)
from web.http.portal_keys import BILLING
from workflows.invoice import InvoiceWorkflow

BANK = "Acme Builders Ltd\nIBAN GB00 TEST 0000 0000 0000 00\nBIC TESTGB00"


async def test_create_invoice_totals_pdf_and_pay_url(stack):
    _, project = await seed_client(stack)
    created = await create_invoice(stack, project["id"], tax_rate_percent="8.25")
    assert created["subtotal_cents"] == 120000
    assert created["tax_cents"] == 9900
    assert created["total_cents"] == 129900
    assert created["status"] == "open" and created["paid_cents"] == 0
    assert created["pay_url"].startswith("http://portico.test/pay/")
    assert created["workflow_id"] == f"invoice-{created['id']}"
    shown = await stack.api("GET", f"/invoices/{created['id']}", 200)
    assert shown["pay_url"] == created["pay_url"]  # shown again, from the secret
    assert shown["payments"] == [] and shown["status"] == "open"
    response = await stack.http.get(
        f"/api/v1/invoices/{created['id']}/invoice.pdf", headers=stack.auth
    )
    data = await response.read()
    assert response.content_type == "application/pdf"
    assert pdf.sha256_hex(data) == created["pdf_sha256"]
    text = pdf.pdf_text(data)
    assert "INV-1001" in text and "$1,299.00" in text and "Tax (8.25%)" in text
    # the client gets the invoice by email, from the invoice workflow
    mail = await wait_until(lambda: mails_to(stack, "dana@client.test"))
    assert "INV-1001" in mail[0].subject and created["pay_url"] in mail[0].body
    # the same number twice, an unknown project, bad input
    await stack.api("POST", "/invoices", 409, json=invoice_body(project["id"]))
    await stack.api("POST", "/invoices", 404, json=invoice_body(999999, number="X-1"))
    await stack.api(
        "POST", "/invoices", 422, json={**invoice_body(project["id"]), "line_items": []}
    )
    await stack.api("GET", "/invoices/999999", 404)


async def test_invoice_pdf_is_in_the_clients_language(stack):
    client = await stack.api(
        "POST",
        "/clients",
        201,
        json={"name": "Élise Tremblay", "email": "elise@client.test", "locale": "fr"},
    )
    project = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Cuisine"}
    )
    created = await create_invoice(
        stack,
        project["id"],
        number="F-2001",
        currency="CAD",
        due_date="2031-01-31",
        tax_rate_percent="14.975",
        retainage_percent="10",
        line_items=[{"description": "Armoires", "quantity": 1, "unit_price_cents": 125000}],
    )
    response = await stack.http.get(
        f"/api/v1/invoices/{created['id']}/invoice.pdf", headers=stack.auth
    )
    text = " ".join(pdf.pdf_text(await response.read()).split())
    assert "Facture F-2001" in text and "Prix unitaire" in text
    assert "Armoires 1 1 250,00 $ 1 250,00 $" in text
    assert "Taxes (14,975 %) 1 187,19 $ 187,19 $" in text
    assert "Total 1 437,19 $" in text
    assert "Payable au plus tard le 31 janv. 2031." in text
    assert "Retenue de garantie (10 %) : 143,72 $" in text and "1 293,47 $" in text
    assert "Invoice" not in text and "Due by" not in text


def invoice_body(project_id: int, number: str = "INV-1001") -> dict:
    return {
        "project_id": project_id,
        "number": number,
        "currency": "USD",
        "due_date": "2031-01-31",
        "line_items": [{"description": "Work", "quantity": 1, "unit_price_cents": 1000}],
    }


async def test_manual_payments_partial_full_and_overpayment(stack):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    path = f"/invoices/{invoice['id']}/payments"
    first = await stack.api(
        "POST", path, 201, json={"amount_cents": 50000, "method": "check", "reference": "#1042"}
    )
    assert first["status"] == "succeeded" and first["method"] == "check"
    assert first["invoice"] == {
        "id": invoice["id"],
        "status": "partially_paid",
        "total_cents": 120000,
        "paid_cents": 50000,
        "balance_cents": 70000,
    }
    # A valid amount the balance does not allow: 409 (the state), not 422 (the input).
    error = await stack.api(
        "POST", path, 409, json={"amount_cents": 70001, "method": "cash", "reference": "x"}
    )
    assert error["error"]["code"] == "overpayment"
    await stack.api("POST", path, 422, json={"amount_cents": 100, "method": "bitcoin"})
    await stack.api("POST", path, 422, json={"amount_cents": 0, "method": "cash"})
    await stack.api(
        "POST",
        path,
        201,
        json={"amount_cents": 70000, "method": "bank_transfer", "reference": "T9"},
    )
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["status"] == "paid" and shown["paid_cents"] == 120000
    assert [p["amount_cents"] for p in shown["payments"]] == [50000, 70000]
    assert [p["method"] for p in shown["payments"]] == ["check", "bank_transfer"]
    await stack.api("POST", path, 409, json={"amount_cents": 1, "method": "cash"})  # paid
    # receipts for each payment; staff told of each, by the invoice's workflow
    await payments_announced(stack)
    receipts = [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
    assert len(receipts) == 2 and "$500.00" in receipts[0].subject
    staff = [
        m for m in await mails_to(stack, "office@firm.test") if "Payment received" in m.subject
    ]
    assert len(staff) == 2
    # the invoice workflow knows it is paid, and keeps running in case of a refund
    handle = stack.temporal.get_workflow_handle_for(InvoiceWorkflow.run, invoice["workflow_id"])

    async def paid() -> bool:
        state = await handle.query(InvoiceWorkflow.state)
        return state.status == "paid" and state.next_reminder_at is None

    await wait_until(paid)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_void_ends_the_workflow_and_refuses_payments(stack):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    voided = await stack.api(
        "POST", f"/invoices/{invoice['id']}/void", 200, json={"reason": "Issued twice"}
    )
    assert voided["status"] == "void" and voided["void_reason"] == "Issued twice"
    await stack.api("POST", f"/invoices/{invoice['id']}/void", 409)
    await stack.api(
        "POST",
        f"/invoices/{invoice['id']}/payments",
        409,
        json={"amount_cents": 5, "method": "cash"},
    )
    handle = stack.temporal.get_workflow_handle(invoice["workflow_id"])

    async def closed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await wait_until(closed, 60)
    paid = await create_invoice(stack, project["id"], number="INV-2")
    await stack.api(
        "POST", f"/invoices/{paid['id']}/payments", 201, json={"amount_cents": 5, "method": "cash"}
    )
    error = await stack.api("POST", f"/invoices/{paid['id']}/void", 409)
    assert error["error"]["code"] == "has_payments"


@pytest.fixture
async def bank_stack(settings, sessions, dev_env) -> AsyncIterator:
    async for s in start_stack(
        settings.model_copy(update={"bank_details": BANK}), sessions, dev_env.client
    ):
        yield s


async def test_pay_page_without_stripe_reveals_bank_details(bank_stack):
    stack = bank_stack
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    path = invoice["pay_url"].removeprefix("http://portico.test")
    browser = Browser(stack)
    try:
        status, html, response = await browser.get(path)
        assert status == 200
        assert "Invoice INV-1001" in html and "$1,200.00" in html
        assert ">Pay</button>" in html and "IBAN" not in html
        assert "no-store" in response.headers["Cache-Control"]
        status, html, _ = await browser.get(path + "?show=bank")
        assert "IBAN GB00 TEST" in html and "Reference: <strong>INV-1001</strong>" in html
        status, body, response = await browser.get(path + "/invoice.pdf")
        assert response.content_type == "application/pdf"
        # no Stripe: no checkout
        status, _, _ = await browser.post(path + "/checkout", {"csrf": "x"})
        assert status == 400
        status, _, _ = await browser.get("/pay/" + "A" * 32)
        assert status == 404
    finally:
        await browser.close()


async def test_deposit_invoice_must_belong_to_the_same_client(stack):
    from tests.support.helpers import create_approval, seed_document

    document = await seed_document(stack)
    approval = await create_approval(stack, document["id"])
    _, other_project = await seed_client(stack, "Other", "other@client.test", "Garage")
    body = {**invoice_body(other_project["id"], "DEP-1"), "approval_id": approval["id"]}
    await stack.api("POST", "/invoices", 422, json=body)


async def test_a_manual_payment_retried_with_its_idempotency_key_is_booked_and_announced_once(
    stack,
):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    path = f"/invoices/{invoice['id']}/payments"
    check = {"amount_cents": 50000, "method": "check", "reference": "Check 1042"}
    key = {"Idempotency-Key": "check-1042-2026-12-08"}
    async with temporal_unreachable(stack):  # booked, then the hand-off fails
        error = await stack.api("POST", path, 503, json=check, headers=key)
        assert "Idempotency-Key" in error["error"]["message"]
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["paid_cents"] == 50000 and len(shown["payments"]) == 1
    assert not [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]

    first = await stack.api("POST", path, 201, json=check, headers=key)  # the retry
    again = await stack.api("POST", path, 201, json=check, headers=key)
    assert first["id"] == again["id"] == shown["payments"][0]["id"]
    assert first["invoice"]["paid_cents"] == 50000
    await payments_announced(stack)
    receipts = [m for m in await mails_to(stack, "dana@client.test") if "Receipt" in m.subject]
    assert len(receipts) == 1 and "$500.00" in receipts[0].subject
    staff = [
        m for m in await mails_to(stack, "office@firm.test") if "Payment received" in m.subject
    ]
    assert len(staff) == 1

    # the key names that payment only; a malformed key is refused; neither books anything
    error = await stack.api("POST", path, 409, json={**check, "amount_cents": 100}, headers=key)
    assert error["error"]["code"] == "idempotency_key_reused"
    error = await stack.api("POST", path, 400, json=check, headers={"Idempotency-Key": "x y"})
    assert error["error"]["code"] == "bad_idempotency_key"
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["paid_cents"] == 50000 and len(shown["payments"]) == 1


async def test_a_manual_payment_is_announced_once_while_the_relay_is_down(
    settings, sessions, dev_env
):
    async with flaky_relay() as relay:
        configured = settings.model_copy(update={"smtp_host": relay.host, "smtp_port": relay.port})
        async for stack in start_stack(configured, sessions, dev_env.client):
            _, project = await seed_client(stack)
            invoice = await create_invoice(stack, project["id"])

            async def issued() -> bool:
                return bool(relay.to("dana@client.test", "Invoice INV-1001"))

            await wait_until(issued)
            relay.down_for = 3
            await stack.api(
                "POST",
                f"/invoices/{invoice['id']}/payments",
                201,
                json={"amount_cents": 120000, "method": "cash"},
            )
            await payments_announced(stack)
            assert relay.refused == 3
            [receipt] = relay.to("dana@client.test", "Receipt")
            assert "$1,200.00" in receipt["Subject"]
            assert len(relay.to("office@firm.test", "Payment received")) == 1


async def receipts_to(stack, address: str = "dana@client.test") -> list:
    return [m for m in await mails_to(stack, address) if "Receipt" in m.subject]


async def test_a_manual_payment_without_key_is_swept_once_temporal_is_back(stack):
    """No Idempotency-Key, and the hand-off fails (503): the payment is booked, its
    announcement waits. A sweep while Temporal is still down hands off nothing; once it is
    back one sweep sends the receipt, and later sweeps (the worker's too) send nothing more."""
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    path = f"/invoices/{invoice['id']}/payments"
    check = {"amount_cents": 30000, "method": "check", "reference": "#77"}
    async with temporal_unreachable(stack):
        error = await stack.api("POST", path, 503, json=check)
        assert "do not book it again" in error["error"]["message"]
        down = PaymentHandOff(stack.settings, stack.sessions, stack.http.app[BILLING].temporal)
        assert await down.sweep(timedelta(0)) == 0  # Temporal still down: nothing handed off
    async with stack.sessions() as session:
        [note] = list(await session.scalars(select(PaymentAnnouncement)))
    assert note.handed_off_at is None and note.announced_at is None
    assert not await receipts_to(stack)

    back = PaymentHandOff(stack.settings, stack.sessions, stack.http.app[BILLING].temporal)
    assert await back.sweep(timedelta(0)) == 1
    assert await back.sweep(timedelta(0)) == 0  # handed off: not again
    await payments_announced(stack)
    [receipt] = await receipts_to(stack)
    assert "$300.00" in receipt.subject
    await asyncio.sleep(stack.settings.outbox_sweep_seconds * 2 + 1)  # the worker's sweeps ran
    assert len(await receipts_to(stack)) == 1
    shown = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
    assert shown["paid_cents"] == 30000 and len(shown["payments"]) == 1


async def test_the_workers_sweep_sends_a_receipt_whose_hand_off_failed(settings, sessions, dev_env):
    fast = settings.model_copy(update={"outbox_sweep_seconds": 0.3})
    async for stack in start_stack(fast, sessions, dev_env.client):
        _, project = await seed_client(stack)
        invoice = await create_invoice(stack, project["id"])
        async with temporal_unreachable(stack):  # web's Temporal connection only
            await stack.api(
                "POST",
                f"/invoices/{invoice['id']}/payments",
                503,
                json={"amount_cents": 120000, "method": "cash"},
            )
        receipts = await wait_until(partial(receipts_to, stack))
        await payments_announced(stack)
        await asyncio.sleep(1)  # a few more sweeps
        assert len(await receipts_to(stack)) == len(receipts) == 1
        async with stack.sessions() as session:
            [note] = list(await session.scalars(select(PaymentAnnouncement)))
        assert note.handed_off_at is not None and note.announced_at is not None
