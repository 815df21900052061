"""What a payment change tells people: the client's receipt (or failure notice) and the staff
notices of payments, refunds, disputes and flagged Stripe events, as EmailMessages with their
send_email dedupe keys. Built in the change's own transaction and stored on its
PaymentAnnouncement row; the invoice's workflow sends them (activities/payments.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portico.i18n import N_
from portico.ledger import PAYABLE, balance_cents, due_cents
from portico.models import Client, Invoice, Payment, Project
from portico.money import format_money as money
from portico.services.billing.links import pay_url
from portico.services.billing.outcomes import AdjustmentOutcome, PaymentOutcome, Review
from portico.settings import Settings
from portico.stripe_events import EventEnvelope
from workflows.types import EmailMessage


def invoice_email_context(
    settings: Settings, invoice: Invoice, client: Client, project: Project, payments: list[Payment]
) -> dict[str, Any]:
    """The facts invoice emails show, in English; the raw values (`invoice_currency`, `*_cents`,
    `due_date_iso`) let the notify activity rewrite them in the client's language."""
    balance = balance_cents(invoice, payments)
    due = due_cents(invoice)
    return {
        "company_name": settings.company_name,
        "client_name": client.name,
        "project_name": project.name,
        "invoice_number": invoice.number,
        "total": money(invoice.total_cents, invoice.currency, "en"),
        "retainage": (
            money(invoice.retainage_cents, invoice.currency, "en")
            if invoice.retainage_cents
            else None
        ),
        "due": money(due, invoice.currency, "en"),
        "paid": money(invoice.paid_cents, invoice.currency, "en"),
        "balance": money(balance, invoice.currency, "en"),
        "due_date": invoice.due_date.strftime("%b %d, %Y"),
        "status": invoice.status,
        "pay_url": pay_url(settings, invoice),
        "invoice_currency": invoice.currency,
        "total_cents": invoice.total_cents,
        "retainage_cents": invoice.retainage_cents or None,
        "due_cents": due,
        "paid_cents": invoice.paid_cents,
        "balance_cents": balance,
        "due_date_iso": invoice.due_date.isoformat(),
    }


FLAG_LABELS = {
    "unknown_invoice": "names an invoice that does not exist",
    "unknown_checkout": "is not from a Checkout Session Portico created",
    "invoice_mismatch": "names another invoice than its Checkout Session",
    "session_mismatch": "names another Checkout Session than Portico recorded",
    "payment_intent_mismatch": "names another PaymentIntent than the payment recorded",
    "currency_mismatch": "is in another currency than the invoice",
    "amount_mismatch": "is for another amount than Portico asked for",
    "overpaid": "is more than was still due",
}


DISPUTE_LABELS = {
    "warning_needs_response": "inquiry, needs a response",
    "warning_under_review": "inquiry under review",
    "warning_closed": "inquiry closed",
    "needs_response": "needs a response",
    "under_review": "under review",
    "won": "won",
    "lost": "lost",
    "prevented": "prevented",
}


def staff_emails(
    settings: Settings, key: str, template: str, context: dict[str, Any]
) -> list[EmailMessage]:
    """One notice per PORTICO_STAFF_EMAILS address (dedupe keys `{key}:staff:{n}`)."""
    return [
        EmailMessage(dedupe_key=f"{key}:staff:{n}", to=address, template=template, context=context)
        for n, address in enumerate(settings.staff_emails)
    ]


def payment_context(
    settings: Settings,
    invoice: Invoice,
    payment: Payment,
    client: Client,
    project: Project,
    payments: list[Payment],
) -> dict[str, Any]:
    return {
        **invoice_email_context(settings, invoice, client, project, payments),
        "amount": money(payment.amount_cents, payment.currency, "en"),
        "payment_cents": payment.amount_cents,
        "method": METHOD_LABELS.get(payment.method, payment.method),
        "reference": payment.reference,
    }


def payment_messages(settings: Settings, outcome: PaymentOutcome) -> list[EmailMessage]:
    """The client's receipt (or failure / processing notice) and the staff notice."""
    payment = outcome.payment
    context = {
        **payment_context(
            settings,
            outcome.invoice,
            payment,
            outcome.client,
            outcome.project,
            outcome.payments,
        ),
        "payment_status": outcome.became,
        "failure_reason": payment.failure_reason,
    }
    key = f"payment-{payment.id}:{outcome.became}"
    messages = []
    if outcome.client.email:
        messages.append(
            EmailMessage(
                dedupe_key=f"{key}:client",
                to=outcome.client.email,
                template="payment_failed" if outcome.became == "failed" else "payment_receipt",
                context=context,
                locale=outcome.client.locale,
                timezone=outcome.client.timezone,
            )
        )
    return messages + staff_emails(settings, key, "staff_payment", context)


def adjustment_messages(settings: Settings, outcome: AdjustmentOutcome) -> list[EmailMessage]:
    """Staff notices of a refund, or of a dispute opened / closed."""
    invoice, payment = outcome.invoice, outcome.payment
    context: dict[str, Any] = {
        **payment_context(
            settings, invoice, payment, outcome.client, outcome.project, outcome.payments
        ),
        "payment_amount": money(payment.amount_cents, payment.currency),
        "payment_status": payment.status,
        "reopened": outcome.invoice_status_before == "paid" and invoice.status in PAYABLE,
        # the invoice's workflow reminds while a balance is due, also after a reopening
        "reminders": (
            "running" if invoice.status in PAYABLE and invoice.remind_every_days else None
        ),
    }
    messages: list[EmailMessage] = []
    for notice in outcome.notices:
        if notice == "refunded":
            refunded = payment.refunded_cents or 0
            messages += staff_emails(
                settings,
                f"payment-{payment.id}:refunded:{refunded}",
                "staff_refund",
                {
                    **context,
                    "amount": money(refunded - outcome.refunded_before, payment.currency, "en"),
                    "refunded_total": money(refunded, payment.currency),
                    "full": refunded >= payment.amount_cents,
                },
            )
            continue
        dispute = outcome.adjustment
        status = dispute.dispute_status or ""
        due = (
            datetime.fromtimestamp(dispute.evidence_due_by, UTC).strftime("%b %d, %Y")
            if dispute.evidence_due_by and notice == "dispute_opened"
            else None
        )
        key = dispute.dispute_id or f"charge-{payment.stripe_charge_id}"
        phase = "opened" if notice == "dispute_opened" else status
        messages += staff_emails(
            settings,
            f"payment-{payment.id}:dispute:{key}:{phase}",
            "staff_dispute",
            {
                **context,
                "amount": money(payment.disputed_cents or 0, payment.currency, "en"),
                "phase": phase,
                "dispute_status": status,
                "dispute_label": DISPUTE_LABELS.get(status, status.replace("_", " ")),
                "evidence_due_by": due,
            },
        )
    return messages


def review_messages(settings: Settings, event: EventEnvelope, review: Review) -> list[EmailMessage]:
    """The staff notice of a flagged Stripe event (once per event)."""
    flag, invoice = review.flag, review.invoice
    context: dict[str, Any] = {"company_name": settings.company_name}
    if invoice is not None and review.client is not None and review.project is not None:
        context.update(
            invoice_email_context(settings, invoice, review.client, review.project, review.payments)
        )
    context.update(
        {
            "event_id": event.id,
            "event_type": event.type,
            "reason": flag.reason,
            "label": FLAG_LABELS.get(flag.reason, flag.reason.replace("_", " ")),
            "detail": flag.detail,
        }
    )
    return staff_emails(
        settings, f"stripe-event-{event.id}:flagged", "staff_payment_review", context
    )


METHOD_LABELS = {
    "card": N_("Card"),
    "us_bank_account": N_("Bank account (ACH)"),
    "check": N_("Check"),
    "cash": N_("Cash"),
    "bank_transfer": N_("Bank transfer"),
    "stripe": N_("Online payment"),
}
