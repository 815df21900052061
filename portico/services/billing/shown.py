"""Invoices, payments and flagged Stripe events as the API shows them: the typed `...Out`
models of portico/portal_schemas.py. `as_json` turns one into the JSON the API answers and
webhook events carry (fields left unset, such as an invoice's `payment_reviews` where they were
not loaded, are left out)."""

from __future__ import annotations

from typing import Any

from portico.ledger import balance_cents, counted_cents, due_cents, pending_cents
from portico.models import Invoice, Payment, StripeEvent
from portico.portal_schemas import (
    InvoiceBalanceOut,
    InvoiceOut,
    PaymentOut,
    PaymentRecordedOut,
    PaymentReviewOut,
)
from portico.schemas import Out
from portico.services.approvals import iso
from portico.services.billing.links import pay_url
from portico.settings import Settings


def as_json(out: Out) -> dict[str, Any]:
    return out.model_dump(mode="json", exclude_unset=True)


def payment_fields(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "method": payment.method,
        "status": payment.status,
        "source": payment.source,
        "reference": payment.reference,
        "failure_reason": payment.failure_reason,
        "created_at": payment.created_at,
        "settled_at": payment.settled_at,
        "refunded_cents": payment.refunded_cents or 0,
        "disputed_cents": payment.disputed_cents or 0,
        "dispute_status": payment.dispute_status,
        "net_cents": counted_cents(payment),
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
        "stripe_charge_id": payment.stripe_charge_id,
    }


def payment_out(payment: Payment) -> PaymentOut:
    return PaymentOut(**payment_fields(payment))


def invoice_out(
    settings: Settings,
    invoice: Invoice,
    payments: list[Payment],
    reviews: list[StripeEvent] | None = None,
) -> InvoiceOut:
    """The invoice as the API shows it; `reviews` (flagged Stripe events) only where loaded."""
    shown = InvoiceOut(
        id=invoice.id,
        number=invoice.number,
        project_id=invoice.project_id,
        approval_id=invoice.approval_id,
        document_id=invoice.document_id,
        status=invoice.status,  # type: ignore[arg-type]
        currency=invoice.currency,
        issued_on=invoice.issued_on,
        due_date=invoice.due_date,
        line_items=invoice.line_items,  # type: ignore[arg-type]
        tax_rate_percent=invoice.tax_rate_percent,
        subtotal_cents=invoice.subtotal_cents,
        tax_cents=invoice.tax_cents,
        total_cents=invoice.total_cents,
        retainage_percent=invoice.retainage_percent,
        retainage_cents=invoice.retainage_cents or 0,
        retainage_status=invoice.retainage_status,  # type: ignore[arg-type]
        retainage_released_by=invoice.retainage_released_by,
        due_cents=due_cents(invoice),
        paid_cents=invoice.paid_cents,
        pending_cents=pending_cents(payments),
        balance_cents=balance_cents(invoice, payments),
        refunded_cents=sum(p.refunded_cents or 0 for p in payments),
        pdf_sha256=invoice.pdf_sha256,
        pay_url=pay_url(settings, invoice),
        workflow_id=invoice.workflow_id,
        created_at=invoice.created_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        void_reason=invoice.void_reason,
        payments=[payment_out(p) for p in payments],
        overpaid_cents=max(0, invoice.paid_cents - due_cents(invoice)),
    )
    if reviews is not None:
        shown.payment_reviews = [review_out(r) for r in reviews]
    return shown


def review_out(row: StripeEvent) -> PaymentReviewOut:
    return PaymentReviewOut(
        event_id=row.event_id,
        type=row.type,
        invoice_id=row.invoice_id,
        reason=row.reason,
        message=row.detail,
        amount_cents=row.amount_cents,
        currency=row.currency,
        payment_intent_id=row.payment_intent_id,
        received_at=iso(row.received_at),
    )


def manual_payment_out(
    invoice: Invoice, payment: Payment, payments: list[Payment]
) -> PaymentRecordedOut:
    """The answer to a manual payment (and to its retry)."""
    return PaymentRecordedOut(
        **payment_fields(payment),
        invoice=InvoiceBalanceOut(
            id=invoice.id,
            status=invoice.status,  # type: ignore[arg-type]
            total_cents=invoice.total_cents,
            paid_cents=invoice.paid_cents,
            balance_cents=balance_cents(invoice, payments),
        ),
    )
