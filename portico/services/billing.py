"""Invoices and payments (CONTRACT §3, §4, §6): creation with a rendered PDF and an
`invoice-{id}` workflow, manual payments, Stripe Checkout, and Stripe webhook events.

Money lives in SQL. Every change to an invoice's payments starts by bumping the invoice row's
`lock_version`, which takes the row lock on PostgreSQL and the write lock on SQLite, so two
payments (or two deliveries of one Stripe event) can never both read a stale balance. Each
Stripe event id is inserted into `stripe_events` in the same transaction as its payment, so a
duplicate delivery, even a concurrent one, fails on the unique key and changes nothing.

Refunds (`charge.refunded`) and disputes (`charge.dispute.*`) adjust the Stripe payment they
belong to (found by payment intent, else charge id). Both are applied as the *state* Stripe
reports (the charge's cumulative `amount_refunded`, the dispute's `status`), never as deltas, and
that state only moves forward, so repeated or out-of-order events converge on the same result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from portico import pdf, tokens
from portico.errors import BadRequest, Conflict, Invalid, NotFound, Unavailable
from portico.files import FileStore
from portico.i18n import N_
from portico.models import (
    Approval,
    Approver,
    Client,
    Document,
    Invoice,
    Payment,
    PaymentAnnouncement,
    Project,
    SigningLink,
    StripeCheckout,
    StripeEvent,
)
from portico.money import format_money as money
from portico.money import totals
from portico.portal_schemas import InvoiceIn, PaymentIn
from portico.services import webhooks
from portico.services.approvals import iso
from portico.services.gateway import TemporalGateway
from portico.settings import Settings
from portico.stripe_events import (
    CHECKOUT_REF,
    EventEnvelope,
    Ignored,
    StripeAdjustment,
    StripeChange,
    interpret,
)
from workflows.types import (
    INVOICE_ANNOUNCE,
    INVOICE_PAID,
    INVOICE_VOID,
    INVOICE_WORKFLOW,
    PAYMENT_REVIEW_WORKFLOW,
    AnnouncePayments,
    EmailMessage,
    InvoiceInput,
    PaymentAnnounced,
)

log = logging.getLogger(__name__)

PAYABLE = ("open", "partially_paid")
# payments whose money arrived (before any refund or chargeback)
SETTLED_PAYMENT = ("succeeded", "refunded", "disputed", "dispute_lost")
# Stripe dispute statuses that end a dispute (anything else is an open dispute)
CLOSED_DISPUTE = ("won", "lost", "warning_closed", "prevented")
STRIPE_MIN_CENTS = 50  # Stripe's minimum charge in USD
ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,200}$")
# how long a payment hand-off waits for Temporal before answering 503
HAND_OFF_TIMEOUT = timedelta(seconds=10)
# Stripe keeps an idempotency key for at least 24 hours
IDEMPOTENCY_WINDOW = timedelta(hours=23)


# --- pure helpers ---------------------------------------------------------------------------


def pay_token(secret_key: str, invoice_id: int, nonce: str) -> str:
    """The invoice's pay/share token: 192 bits, derived with the server secret so the link can
    be shown again (API, reminders, the signing page) while the table keeps only its hash."""
    mac = hmac.new(
        secret_key.encode(), f"invoice-pay:{invoice_id}:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def pay_url(settings: Settings, invoice: Invoice) -> str:
    return settings.url(f"/pay/{pay_token(settings.secret_key, invoice.id, invoice.pay_nonce)}")


def sent_key(invoice: Invoice) -> str:
    """The key of an invoice's `invoice.sent` webhook event."""
    return f"invoice-{invoice.id}:sent"


def overdue_at(due_date: date) -> datetime:
    """An invoice due on a date is overdue from the start of the next day (UTC)."""
    return datetime.combine(due_date + timedelta(days=1), time(0), tzinfo=UTC)


def dispute_open(payment: Payment) -> bool:
    return payment.dispute_status is not None and payment.dispute_status not in CLOSED_DISPUTE


def lost_cents(payment: Payment) -> int:
    """What a lost dispute (chargeback) took back from the payment."""
    return (payment.disputed_cents or 0) if payment.dispute_status == "lost" else 0


def counted_cents(payment: Payment) -> int:
    """What a payment contributes to its invoice's paid total: the money that arrived, less
    refunds and a lost dispute. An open dispute still counts until it is lost."""
    if payment.status not in SETTLED_PAYMENT:
        return 0
    return max(0, payment.amount_cents - (payment.refunded_cents or 0) - lost_cents(payment))


def settled_status(payment: Payment) -> str:
    """The status of a payment whose money arrived, given its refunds and dispute."""
    if dispute_open(payment):
        return "disputed"
    if lost_cents(payment) > 0:
        return "dispute_lost"
    if payment.amount_cents > 0 and (payment.refunded_cents or 0) >= payment.amount_cents:
        return "refunded"
    return "succeeded"


def payment_json(payment: Payment) -> dict[str, Any]:
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
        "created_at": iso(payment.created_at),
        "settled_at": iso(payment.settled_at),
        "refunded_cents": payment.refunded_cents or 0,
        "disputed_cents": payment.disputed_cents or 0,
        "dispute_status": payment.dispute_status,
        "net_cents": counted_cents(payment),
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
        "stripe_charge_id": payment.stripe_charge_id,
    }


def pending_cents(payments: list[Payment]) -> int:
    return sum(p.amount_cents for p in payments if p.status == "pending")


def balance_cents(invoice: Invoice, payments: list[Payment]) -> int:
    """What can still be paid: the total less succeeded and in-flight (ACH) payments."""
    return max(0, invoice.total_cents - invoice.paid_cents - pending_cents(payments))


def invoice_json(
    settings: Settings,
    invoice: Invoice,
    payments: list[Payment],
    reviews: list[StripeEvent] | None = None,
) -> dict[str, Any]:
    """The invoice as the API shows it; `reviews` (flagged Stripe events) only where loaded."""
    shown: dict[str, Any] = {
        "id": invoice.id,
        "number": invoice.number,
        "project_id": invoice.project_id,
        "approval_id": invoice.approval_id,
        "document_id": invoice.document_id,
        "status": invoice.status,
        "currency": invoice.currency,
        "issued_on": invoice.issued_on.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "line_items": invoice.line_items,
        "tax_rate_percent": invoice.tax_rate_percent,
        "subtotal_cents": invoice.subtotal_cents,
        "tax_cents": invoice.tax_cents,
        "total_cents": invoice.total_cents,
        "paid_cents": invoice.paid_cents,
        "pending_cents": pending_cents(payments),
        "balance_cents": balance_cents(invoice, payments),
        "refunded_cents": sum(p.refunded_cents or 0 for p in payments),
        "pdf_sha256": invoice.pdf_sha256,
        "pay_url": pay_url(settings, invoice),
        "workflow_id": invoice.workflow_id,
        "created_at": iso(invoice.created_at),
        "paid_at": iso(invoice.paid_at),
        "voided_at": iso(invoice.voided_at),
        "void_reason": invoice.void_reason,
        "payments": [payment_json(p) for p in payments],
        "overpaid_cents": max(0, invoice.paid_cents - invoice.total_cents),
    }
    if reviews is not None:
        shown["payment_reviews"] = [review_json(r) for r in reviews]
    return shown


def invoice_email_context(
    settings: Settings, invoice: Invoice, client: Client, project: Project, payments: list[Payment]
) -> dict[str, Any]:
    """The facts invoice emails show, in English; the raw values (`invoice_currency`, `*_cents`,
    `due_date_iso`) let the notify activity rewrite them in the client's language."""
    balance = balance_cents(invoice, payments)
    return {
        "company_name": settings.company_name,
        "client_name": client.name,
        "project_name": project.name,
        "invoice_number": invoice.number,
        "total": money(invoice.total_cents, invoice.currency, "en"),
        "paid": money(invoice.paid_cents, invoice.currency, "en"),
        "balance": money(balance, invoice.currency, "en"),
        "due_date": invoice.due_date.strftime("%b %d, %Y"),
        "status": invoice.status,
        "pay_url": pay_url(settings, invoice),
        "invoice_currency": invoice.currency,
        "total_cents": invoice.total_cents,
        "paid_cents": invoice.paid_cents,
        "balance_cents": balance,
        "due_date_iso": invoice.due_date.isoformat(),
    }


@dataclass(frozen=True)
class Flag:
    """Why a Stripe event needs a person: it is recorded, staff are emailed, the API shows it."""

    reason: str
    detail: str


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


def still_due(invoice: Invoice, payments: list[Payment]) -> int:
    """What a new payment may still cover: nothing on a void invoice, else the balance."""
    return 0 if invoice.status == "void" else balance_cents(invoice, payments)


def terms_mismatch(
    change: StripeChange, currency: str, amount_cents: int, what: str
) -> Flag | None:
    """A payment event must be in `currency` and, unless it failed, for exactly `amount_cents`
    (what Portico asked Stripe for, or the payment already recorded)."""
    if change.currency != currency:
        return Flag(
            "currency_mismatch",
            f"The event is in {change.currency or 'no currency'}; {what} is in {currency}.",
        )
    if change.status != "failed" and change.amount_cents != amount_cents:
        return Flag(
            "amount_mismatch",
            f"The event is for {money(change.amount_cents, currency)}; "
            f"{what} is for {money(amount_cents, currency)}.",
        )
    return None


def checkout_mismatch(change: StripeChange, checkout: StripeCheckout) -> Flag | None:
    """Whether an event contradicts the Checkout Session Portico created."""
    if change.invoice_id != checkout.invoice_id:
        return Flag(
            "invoice_mismatch",
            f"The event names invoice {change.invoice_id}; its Checkout Session was made "
            f"for invoice {checkout.invoice_id}.",
        )
    if change.session_id and checkout.session_id and change.session_id != checkout.session_id:
        return Flag(
            "session_mismatch",
            f"The event's session {change.session_id} is not {checkout.session_id}.",
        )
    return terms_mismatch(change, checkout.currency, checkout.amount_cents, "the Checkout Session")


def overpayment(amount_cents: int, due_cents: int, currency: str) -> Flag | None:
    """A verified payment of more than is still due: booked (the money arrived), and flagged
    so staff refund the excess."""
    excess = amount_cents - max(0, due_cents)
    if excess <= 0:
        return None
    return Flag(
        "overpaid",
        f"{money(amount_cents, currency)} arrived when {money(max(0, due_cents), currency)} "
        f"was due: refund {money(excess, currency)} in Stripe.",
    )


def review_json(row: StripeEvent) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "type": row.type,
        "invoice_id": row.invoice_id,
        "reason": row.reason,
        "message": row.detail,
        "amount_cents": row.amount_cents,
        "currency": row.currency,
        "payment_intent_id": row.payment_intent_id,
        "received_at": iso(row.received_at),
    }


TRANSITIONS = {
    "pending": ("succeeded", "failed"),
    "failed": ("succeeded",),
    "succeeded": (),
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


@dataclass
class PaymentOutcome:
    """A payment whose status changed (`became`), with what the emails need."""

    invoice: Invoice
    payment: Payment
    became: str
    client: Client
    project: Project
    payments: list[Payment]
    flag: Flag | None = None  # booked, and staff must look at it (an overpayment)


@dataclass
class Review:
    """A Stripe event flagged for staff, with the invoice it names when there is one."""

    flag: Flag
    invoice: Invoice | None = None
    client: Client | None = None
    project: Project | None = None
    payments: list[Payment] = field(default_factory=list)


@dataclass(frozen=True)
class EventResult:
    """The webhook's answer: `result` plus the reason it was ignored or flagged."""

    result: str  # applied | duplicate | ignored | flagged
    ignored: str | None = None
    flagged: str | None = None

    def json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"received": True, "result": self.result}
        if self.ignored:
            answer["ignored"] = self.ignored
        if self.flagged:
            answer["flagged"] = self.flagged
        return answer


@dataclass
class AdjustmentOutcome:
    """A Stripe payment whose refunds or dispute changed, with what the staff notices need."""

    invoice: Invoice
    payment: Payment
    client: Client
    project: Project
    payments: list[Payment]
    adjustment: StripeAdjustment
    invoice_status_before: str
    refunded_before: int
    notices: list[str]  # refunded | dispute_opened | dispute_closed


def record_outcome(
    row: StripeEvent,
    meaning: StripeChange | StripeAdjustment | Ignored,
    result: PaymentOutcome | AdjustmentOutcome | Review | Ignored,
) -> None:
    """Write on the event's row what it reported and what became of it."""
    if isinstance(meaning, StripeChange | StripeAdjustment):
        row.amount_cents = meaning.amount_cents
        row.currency = meaning.currency[:3] or None
        row.payment_intent_id = meaning.payment_intent_id
    if isinstance(meaning, StripeChange):
        row.invoice_id = meaning.invoice_id
    flag: Flag | None = None
    if isinstance(result, Ignored):
        row.outcome, row.reason, row.detail = "ignored", result.reason, result.detail
    elif isinstance(result, Review):
        flag = result.flag
        if result.invoice is not None:
            row.invoice_id = result.invoice.id
    else:
        row.outcome = "applied"
        row.invoice_id = result.invoice.id
        flag = result.flag if isinstance(result, PaymentOutcome) else None
    if flag is not None:
        row.outcome, row.reason, row.detail = "flagged", flag.reason, flag.detail


# --- what a payment change announces --------------------------------------------------------
# Built in the change's own transaction and stored on a PaymentAnnouncement row; the invoice's
# workflow sends them (activities/payments.py) under these send_email dedupe keys.


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


def payment_facts(payment: Payment) -> dict[str, Any]:
    """What the invoice's audit chain records of a payment, and `portico audit verify`
    compares with SQL: every change to these fields is announced."""
    return {
        "id": payment.id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "method": payment.method,
        "source": payment.source,
        "reference": payment.reference,
        "status": payment.status,
        "refunded_cents": payment.refunded_cents or 0,
        "disputed_cents": payment.disputed_cents or 0,
        "dispute_status": payment.dispute_status,
    }


def invoice_facts(invoice: Invoice) -> dict[str, Any]:
    return {
        "status": invoice.status,
        "total_cents": invoice.total_cents,
        "paid_cents": invoice.paid_cents,
    }


def announcement(
    key: str,
    type: str,
    actor: str,
    invoice: Invoice | None,
    data: dict[str, Any],
    messages: list[EmailMessage],
) -> PaymentAnnouncement:
    return PaymentAnnouncement(
        invoice_id=invoice.id if invoice is not None else None,
        key=key,
        type=type,
        actor=actor,
        at=datetime.now(UTC),
        data=data,
        messages=[asdict(m) for m in messages],
    )


def event_key(event_id: str) -> str:
    """The announcement key of a Stripe event (a redelivery finds its row by it)."""
    return f"stripe-event:{event_id}"


def manual_key(payment_id: int) -> str:
    return f"manual-payment:{payment_id}"


def event_announcement(
    settings: Settings,
    event: EventEnvelope,
    result: PaymentOutcome | AdjustmentOutcome | Review,
) -> PaymentAnnouncement:
    """What an applied or flagged Stripe event announces."""
    source = {"stripe_event": event.id, "event_type": event.type}
    if isinstance(result, Review):
        return announcement(
            event_key(event.id),
            "payment_flagged",
            "stripe",
            result.invoice,
            {**source, "reason": result.flag.reason, "detail": result.flag.detail},
            review_messages(settings, event, result),
        )
    facts = {
        **source,
        "payment": payment_facts(result.payment),
        "invoice": invoice_facts(result.invoice),
    }
    if isinstance(result, AdjustmentOutcome):
        kind = result.notices[0] if result.notices else "updated"
        return announcement(
            event_key(event.id),
            f"payment_{kind}",
            "stripe",
            result.invoice,
            {**facts, "notices": result.notices},
            adjustment_messages(settings, result),
        )
    messages = payment_messages(settings, result)
    if result.flag is not None:
        facts.update(reason=result.flag.reason, detail=result.flag.detail)
        messages += review_messages(
            settings,
            event,
            Review(result.flag, result.invoice, result.client, result.project, result.payments),
        )
    return announcement(
        event_key(event.id),
        f"payment_{result.became}",
        "stripe",
        result.invoice,
        facts,
        messages,
    )


def resume_input(invoice: Invoice) -> InvoiceInput:
    """The input of a new `invoice-{id}` run started by a payment hand-off (the earlier one
    ended): no invoice email again, reminders from the schedule's next slot."""
    return InvoiceInput(
        invoice_id=invoice.id,
        number=invoice.number,
        due_at=overdue_at(invoice.due_date),
        remind_every_days=invoice.remind_every_days,
        notify_client=False,
        issued_sent=True,
        status=invoice.status,
        paid_at=invoice.paid_at,
        resumed=True,
    )


STRIPE_RETRIES = "Stripe delivers the event again, which sends them."


def manual_retry_hint(idempotency_key: str | None) -> str:
    if idempotency_key:
        return "send the same request with the same Idempotency-Key again to send them."
    return (
        "do not book it again; they go out with the invoice's next payment announcement "
        "(send an Idempotency-Key to make a retry safe)."
    )


def manual_payment_json(
    invoice: Invoice, payment: Payment, payments: list[Payment]
) -> dict[str, Any]:
    """The answer to a manual payment (and to its retry)."""
    return {
        **payment_json(payment),
        "invoice": {
            "id": invoice.id,
            "status": invoice.status,
            "total_cents": invoice.total_cents,
            "paid_cents": invoice.paid_cents,
            "balance_cents": balance_cents(invoice, payments),
        },
    }


# --- the service ----------------------------------------------------------------------------


class Billing:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self.files = FileStore(settings.files_dir)
        self._stripe: Any = None

    # --- invoices ---------------------------------------------------------------------------

    async def create_invoice(self, data: InvoiceIn) -> dict[str, Any]:
        async with self.sessions() as session:
            project = await session.get(Project, data.project_id)
            if project is None:
                raise NotFound(f"Project {data.project_id} does not exist.")
            client = await session.get(Client, project.client_id)
            assert client is not None
            await self._check_links(session, project, data)
            if await session.scalar(select(Invoice.id).where(Invoice.number == data.number)):
                raise Conflict(f"Invoice number {data.number} is already used.", code="duplicate")
        items = [item.model_dump(mode="json") for item in data.line_items]
        subtotal, tax, total = totals(items, data.tax_rate_percent)
        if total <= 0:
            raise Invalid("The invoice total must be more than zero.")
        pdf_items = list(items)
        if tax:
            rate = format(data.tax_rate_percent.normalize(), "f")  # type: ignore[union-attr]
            pdf_items.append(
                {"description": f"Tax ({rate}%)", "quantity": 1, "unit_price_cents": tax}
            )
        issued = datetime.now(UTC).date()
        notes = "\n".join(
            part for part in [f"Due by {data.due_date.strftime('%B %d, %Y')}.", data.notes] if part
        )
        try:
            pdf_bytes, pdf_total = pdf.render_line_items_pdf(
                company_name=self.settings.company_name,
                kind="invoice",
                title=f"Invoice {data.number}",
                number=data.number,
                client_name=client.company or client.name,
                project_name=project.name,
                currency=data.currency,
                line_items=pdf_items,
                issued_on=issued,
                notes=notes,
            )
        except ValueError as err:
            raise Invalid(str(err)) from err
        assert pdf_total == total, (pdf_total, total)
        path = self.files.save("invoices", pdf_bytes, ".pdf")
        nonce = secrets.token_hex(12)
        try:
            async with self.sessions() as session, session.begin():
                invoice = Invoice(
                    project_id=project.id,
                    approval_id=data.approval_id,
                    document_id=data.document_id,
                    number=data.number,
                    currency=data.currency,
                    issued_on=issued,
                    due_date=data.due_date,
                    line_items=items,
                    tax_rate_percent=str(data.tax_rate_percent) if tax else None,
                    subtotal_cents=subtotal,
                    tax_cents=tax,
                    total_cents=total,
                    paid_cents=0,
                    status="open",
                    notes=data.notes,
                    remind_every_days=data.remind_every_days,
                    pdf_path=path,
                    pdf_sha256=pdf.sha256_hex(pdf_bytes),
                    pay_token_hash=f"pending:{nonce}",
                    pay_nonce=nonce,
                    workflow_id=f"pending:{nonce}",
                )
                session.add(invoice)
                await session.flush()
                invoice.workflow_id = f"invoice-{invoice.id}"
                invoice.pay_token_hash = tokens.hash_token(
                    pay_token(self.settings.secret_key, invoice.id, nonce)
                )
                await webhooks.record(
                    session,
                    "invoice.sent",
                    invoice_json(self.settings, invoice, []),
                    sent_key(invoice),
                )
        except IntegrityError as err:
            raise Conflict(
                f"Invoice number {data.number} is already used.", code="duplicate"
            ) from err
        await self._start_workflow(invoice, data.notify_client)
        return invoice_json(self.settings, invoice, [])

    async def _check_links(self, session: AsyncSession, project: Project, data: InvoiceIn) -> None:
        """A deposit invoice may point at the approval/document it follows: same client only."""
        if data.approval_id is not None:
            approval = await session.get(Approval, data.approval_id)
            if approval is None:
                raise NotFound(f"Approval {data.approval_id} does not exist.")
            document = await session.get(Document, approval.document_id)
            if document is None or not await self._same_client(session, document, project):
                raise Invalid("The approval belongs to another client.")
        if data.document_id is not None:
            document = await session.get(Document, data.document_id)
            if document is None:
                raise NotFound(f"Document {data.document_id} does not exist.")
            if not await self._same_client(session, document, project):
                raise Invalid("The document belongs to another client.")

    @staticmethod
    async def _same_client(session: AsyncSession, document: Document, project: Project) -> bool:
        owner = await session.get(Project, document.project_id)
        return owner is not None and owner.client_id == project.client_id

    async def _start_workflow(self, invoice: Invoice, notify_client: bool) -> None:
        try:
            client = await self.temporal.client()
            await client.start_workflow(
                INVOICE_WORKFLOW,
                InvoiceInput(
                    invoice_id=invoice.id,
                    number=invoice.number,
                    due_at=overdue_at(invoice.due_date),
                    remind_every_days=invoice.remind_every_days,
                    notify_client=notify_client,
                ),
                id=invoice.workflow_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except Exception as err:
            async with self.sessions() as session, session.begin():
                row = await session.get(Invoice, invoice.id)
                if row is not None:
                    await session.delete(row)
                await webhooks.forget(session, sent_key(invoice))
            if isinstance(err, Unavailable):
                raise
            raise Unavailable(
                "The invoice engine is unreachable right now; no invoice was created. Try again."
            ) from err

    async def _signal(self, invoice: Invoice, name: str) -> None:
        """Tell the invoice's workflow (best effort: its reminder checks SQL anyway)."""
        try:
            client = await self.temporal.client()
            handle = client.get_workflow_handle(invoice.workflow_id)
            await handle.signal(INVOICE_PAID if name == "paid" else INVOICE_VOID)
        except Exception as err:
            log.info("could not signal %s %s: %s", invoice.workflow_id, name, err)

    async def load(self, invoice_id: int) -> tuple[Invoice, list[Payment]]:
        async with self.sessions() as session:
            invoice = await session.get(Invoice, invoice_id)
            if invoice is None:
                raise NotFound(f"Invoice {invoice_id} does not exist.")
            payments = await self._payments(session, invoice_id)
        return invoice, payments

    @staticmethod
    async def _payments(session: AsyncSession, invoice_id: int) -> list[Payment]:
        return list(
            await session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
            )
        )

    async def get_invoice(self, invoice_id: int) -> dict[str, Any]:
        invoice, payments = await self.load(invoice_id)
        return invoice_json(
            self.settings, invoice, payments, await self.payment_reviews(invoice_id)
        )

    async def payment_reviews(self, invoice_id: int | None = None) -> list[StripeEvent]:
        """Flagged Stripe events, newest first: of one invoice, or all of them."""
        query = select(StripeEvent).where(StripeEvent.outcome == "flagged")
        if invoice_id is not None:
            query = query.where(StripeEvent.invoice_id == invoice_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(StripeEvent.id.desc()).limit(500)))

    async def list_invoices(
        self, client_id: int | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(Invoice).join(Project).order_by(Invoice.id.desc())
        if client_id is not None:
            query = query.where(Project.client_id == client_id)
        if status:
            query = query.where(Invoice.status == status)
        async with self.sessions() as session:
            invoices = list(await session.scalars(query))
            result = []
            for invoice in invoices:
                result.append(
                    invoice_json(self.settings, invoice, await self._payments(session, invoice.id))
                )
        return result

    async def by_pay_token(self, token: str) -> tuple[Invoice, list[Payment], Project, Client]:
        if not 16 <= len(token) <= 64:
            raise NotFound("This payment link is not valid.")
        async with self.sessions() as session:
            invoice = await session.scalar(
                select(Invoice).where(Invoice.pay_token_hash == tokens.hash_token(token))
            )
            if invoice is None:
                raise NotFound("This payment link is not valid.")
            project = await session.get(Project, invoice.project_id)
            assert project is not None
            client = await session.get(Client, project.client_id)
            assert client is not None
            payments = await self._payments(session, invoice.id)
        return invoice, payments, project, client

    def pdf_bytes(self, invoice: Invoice) -> bytes:
        return self.files.read(invoice.pdf_path)

    async def void_invoice(self, invoice_id: int, reason: str | None) -> dict[str, Any]:
        async with self.sessions() as session, session.begin():
            invoice = await self._lock(session, invoice_id)
            if invoice.status == "void":
                raise Conflict("The invoice is already void.", code="already_void")
            if invoice.paid_cents > 0:
                raise Conflict(
                    "The invoice has payments; refund them before voiding it.", code="has_payments"
                )
            invoice.status = "void"
            invoice.voided_at = datetime.now(UTC)
            invoice.void_reason = (reason or "").strip() or None
            payments = await self._payments(session, invoice_id)
        await self._signal(invoice, "void")
        return invoice_json(self.settings, invoice, payments)

    # --- money in ---------------------------------------------------------------------------

    async def _lock(self, session: AsyncSession, invoice_id: int) -> Invoice:
        """Take the invoice's write lock (first statement of the transaction) and read it."""
        bumped = await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(lock_version=Invoice.lock_version + 1)
        )
        if bumped.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"Invoice {invoice_id} does not exist.")
        invoice = await session.scalar(
            select(Invoice)
            .where(Invoice.id == invoice_id)
            .execution_options(populate_existing=True)
        )
        assert invoice is not None
        return invoice

    async def _recompute(self, session: AsyncSession, invoice: Invoice) -> list[Payment]:
        await session.flush()
        before = invoice.status
        payments = await self._payments(session, invoice.id)
        invoice.paid_cents = sum(counted_cents(p) for p in payments)
        if invoice.status != "void":
            if invoice.paid_cents >= invoice.total_cents:
                invoice.status = "paid"
                invoice.paid_at = invoice.paid_at or datetime.now(UTC)
            else:
                invoice.status = "partially_paid" if invoice.paid_cents > 0 else "open"
                invoice.paid_at = None
        await session.flush()
        if "paid" in (before, invoice.status) and before != invoice.status:
            kind = "invoice.paid" if invoice.status == "paid" else "invoice.reopened"
            key = f"invoice-{invoice.id}:{kind}:{invoice.lock_version}"
            await webhooks.record(
                session, kind, invoice_json(self.settings, invoice, payments), key
            )
        return payments

    @staticmethod
    async def _payment_webhook(session: AsyncSession, kind: str, payment: Payment) -> None:
        """payment.succeeded / payment.refunded, in the payment's transaction."""
        key = f"payment-{payment.id}:{kind}:{payment.refunded_cents or 0}"
        await webhooks.record(session, kind, payment_json(payment), key)

    async def _owner(self, session: AsyncSession, invoice: Invoice) -> tuple[Project, Client]:
        project = await session.get(Project, invoice.project_id)
        assert project is not None
        client = await session.get(Client, project.client_id)
        assert client is not None
        return project, client

    async def record_manual_payment(
        self,
        invoice_id: int,
        data: PaymentIn,
        idempotency_key: str | None = None,
        actor: str = "api",
    ) -> dict[str, Any]:
        """Book a check, cash or bank transfer and hand its receipt and staff notice to the
        invoice's workflow. With an Idempotency-Key a retried request (say after a 503: booked,
        not yet handed off) books nothing twice and completes the hand-off."""
        if idempotency_key is not None:
            if not IDEMPOTENCY_KEY.match(idempotency_key):
                raise BadRequest(
                    "Idempotency-Key must be 8 to 200 letters, digits or -_.:",
                    code="bad_idempotency_key",
                )
            earlier = await self._manual_retry(invoice_id, data, idempotency_key)
            if earlier is not None:
                return earlier
        try:
            async with self.sessions() as session, session.begin():
                invoice = await self._lock(session, invoice_id)
                if invoice.status == "void":
                    raise Conflict("The invoice is void.", code="invoice_void")
                balance = balance_cents(invoice, await self._payments(session, invoice_id))
                if data.amount_cents > balance:
                    raise Conflict(  # the amount is fine, the invoice's balance is the obstacle
                        f"amount_cents is more than the balance due "
                        f"({money(balance, invoice.currency)}).",
                        code="overpayment",
                    )
                payment = Payment(
                    invoice_id=invoice.id,
                    amount_cents=data.amount_cents,
                    currency=invoice.currency,
                    method=data.method,
                    status="succeeded",
                    source="manual",
                    reference=data.reference,
                    settled_at=datetime.now(UTC),
                    idempotency_key=idempotency_key,
                )
                session.add(payment)
                payments = await self._recompute(session, invoice)
                await self._payment_webhook(session, "payment.succeeded", payment)
                project, client = await self._owner(session, invoice)
                outcome = PaymentOutcome(invoice, payment, "succeeded", client, project, payments)
                note = announcement(
                    manual_key(payment.id),
                    "payment_succeeded",
                    actor,
                    invoice,
                    {"payment": payment_facts(payment), "invoice": invoice_facts(invoice)},
                    payment_messages(self.settings, outcome),
                )
                session.add(note)
        except IntegrityError:
            if idempotency_key is None:
                raise
            earlier = await self._manual_retry(invoice_id, data, idempotency_key)
            if earlier is None:
                raise
            return earlier  # a concurrent request with the same key booked it
        await self._hand_off(note, invoice, manual_retry_hint(idempotency_key))
        return manual_payment_json(invoice, payment, payments)

    async def _manual_retry(
        self, invoice_id: int, data: PaymentIn, key: str
    ) -> dict[str, Any] | None:
        """The payment an earlier request with this Idempotency-Key booked (handed off again
        if it is not yet announced), or None if there is none."""
        async with self.sessions() as session:
            payment = await session.scalar(select(Payment).where(Payment.idempotency_key == key))
            if payment is None:
                return None
            if (payment.invoice_id, payment.amount_cents, payment.method, payment.reference) != (
                invoice_id,
                data.amount_cents,
                data.method,
                data.reference,
            ):
                raise Conflict(
                    "This Idempotency-Key was used for another payment.",
                    code="idempotency_key_reused",
                )
            invoice = await session.get(Invoice, invoice_id)
            assert invoice is not None
            payments = await self._payments(session, invoice_id)
            note = await session.scalar(
                select(PaymentAnnouncement).where(PaymentAnnouncement.key == manual_key(payment.id))
            )
        if note is not None and note.announced_at is None:
            await self._hand_off(note, invoice, manual_retry_hint(key))
        return manual_payment_json(invoice, payment, payments)

    async def _hand_off(
        self, note: PaymentAnnouncement, invoice: Invoice | None, retry: str = STRIPE_RETRIES
    ) -> None:
        """Give a committed announcement to its workflow: signal-with-start `invoice-{id}`
        (which starts a new run if the last one ended), or a PaymentReviewWorkflow for a
        flagged event naming no invoice. Unavailable (503) when Temporal does not answer, so
        the caller retries and the retry hands the same row off again."""
        try:
            client = await self.temporal.client()
            if invoice is None:
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await client.start_workflow(
                        PAYMENT_REVIEW_WORKFLOW,
                        AnnouncePayments(invoice_id=None, announcement_id=note.id),
                        id=f"payment-review-{note.key}",
                        task_queue=self.settings.task_queue,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        rpc_timeout=HAND_OFF_TIMEOUT,
                    )
                return
            await client.start_workflow(
                INVOICE_WORKFLOW,
                resume_input(invoice),
                id=invoice.workflow_id,
                task_queue=self.settings.task_queue,
                start_signal=INVOICE_ANNOUNCE,
                start_signal_args=[PaymentAnnounced(note.id)],
                rpc_timeout=HAND_OFF_TIMEOUT,
            )
        except Exception as err:
            log.warning("payment announcement %s not handed off: %s", note.key, err)
            raise Unavailable(
                f"The payment is recorded, but its receipt and notices are not sent yet: {retry}"
            ) from err

    # --- Stripe -----------------------------------------------------------------------------

    def stripe_client(self) -> Any:
        """The official client; PORTICO_STRIPE_API_BASE points its REST calls elsewhere."""
        if self._stripe is None:
            import stripe

            options: dict[str, Any] = {}
            if self.settings.stripe_api_base:
                options["base_addresses"] = {"api": self.settings.stripe_api_base.rstrip("/")}
            self._stripe = stripe.StripeClient(
                self.settings.stripe_secret_key or "", max_network_retries=2, **options
            )
        return self._stripe

    async def start_checkout(self, token: str, amount_cents: int | None, attempt: str) -> str:
        """A Stripe Checkout Session for the balance (or part of it); returns its URL."""
        import stripe

        if not self.settings.stripe_enabled:
            raise NotFound("Online payment is not available; see the bank details.")
        invoice, payments, _project, client = await self.by_pay_token(token)
        if invoice.status not in PAYABLE:
            raise Conflict(f"This invoice is {invoice.status.replace('_', ' ')}.")
        balance = balance_cents(invoice, payments)
        amount = balance if amount_cents is None else amount_cents
        if balance <= 0:
            raise Conflict("Nothing is left to pay (a bank payment may still be processing).")
        if amount > balance:
            raise Invalid(f"You can pay at most {money(balance, invoice.currency)}.")
        if amount < min(STRIPE_MIN_CENTS, balance):
            raise Invalid(f"The smallest payment is {money(STRIPE_MIN_CENTS, invoice.currency)}.")
        if not ATTEMPT.match(attempt):
            attempt = secrets.token_urlsafe(12)
        checkout = await self._record_checkout(invoice, amount, balance, attempt)
        methods = ["card", "us_bank_account"] if invoice.currency == "USD" else ["card"]
        metadata = {
            "invoice_id": str(invoice.id),
            "invoice_number": invoice.number,
            CHECKOUT_REF: checkout.ref,
        }
        base = f"/pay/{token}"
        params: dict[str, Any] = {
            "mode": "payment",
            "payment_method_types": methods,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": invoice.currency.lower(),
                        "unit_amount": amount,
                        "product_data": {"name": f"Invoice {invoice.number}"},
                    },
                }
            ],
            "client_reference_id": str(invoice.id),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": self.settings.url(f"{base}?checkout=success"),
            "cancel_url": self.settings.url(f"{base}?checkout=cancelled"),
        }
        if client.email:
            params["customer_email"] = client.email
        key = f"portico-checkout-{checkout.ref}"
        try:
            session = await asyncio.to_thread(
                self.stripe_client().v1.checkout.sessions.create,
                params,
                {"idempotency_key": key},
            )
        except stripe.StripeError as err:
            log.warning("stripe checkout for invoice %s failed: %s", invoice.id, err)
            raise Unavailable(
                "The payment provider did not answer; nothing was charged. Please try again."
            ) from err
        await self._link_session(checkout, str(session.id))
        return str(session.url)

    async def _record_checkout(
        self, invoice: Invoice, amount: int, balance: int, attempt: str
    ) -> StripeCheckout:
        """The StripeCheckout row of this Pay form (one per invoice, amount and attempt, so a
        double click is one Checkout Session), written before Stripe is asked. A form older
        than Stripe keeps idempotency keys gets a fresh attempt, so one row never names two
        sessions."""
        for _ in range(3):
            ref = f"{invoice.id}-{amount}-{attempt}"
            try:
                async with self.sessions() as session, session.begin():
                    row = StripeCheckout(
                        invoice_id=invoice.id,
                        ref=ref,
                        amount_cents=amount,
                        currency=invoice.currency,
                        due_cents=balance,
                    )
                    session.add(row)
                return row
            except IntegrityError:
                async with self.sessions() as session:
                    earlier = await session.scalar(
                        select(StripeCheckout).where(StripeCheckout.ref == ref)
                    )
                fresh = datetime.now(UTC) - IDEMPOTENCY_WINDOW
                if earlier is not None and earlier.created_at > fresh:
                    return earlier
                attempt = secrets.token_urlsafe(12)
        raise Unavailable("Could not start the payment; please try again.")

    async def _link_session(self, checkout: StripeCheckout, session_id: str) -> None:
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(StripeCheckout)
                    .where(StripeCheckout.id == checkout.id, StripeCheckout.session_id.is_(None))
                    .values(session_id=session_id)
                )
        except IntegrityError:  # Stripe gave one session to two forms: events will be flagged
            log.error("checkout session %s is already linked elsewhere", session_id)

    def verify_event(self, payload: bytes, signature: str | None) -> EventEnvelope:
        """The event, if its Stripe-Signature is valid and recent; else BadRequest (400)."""
        import stripe

        secret = self.settings.stripe_webhook_secret
        if not secret:
            raise BadRequest("Stripe webhooks are not configured.", code="not_configured")
        try:
            text = payload.decode("utf-8")
            # the signature only: the client's own event parsing fails on some signed JSON
            stripe.WebhookSignature.verify_header(
                text, signature or "", secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
            return EventEnvelope.model_validate_json(text)
        except stripe.SignatureVerificationError as err:
            raise BadRequest("The Stripe signature is not valid.", code="bad_signature") from err
        except (ValueError, UnicodeDecodeError) as err:  # ValidationError is a ValueError
            raise BadRequest("The payload is not a Stripe event.", code="bad_payload") from err

    async def apply_event(self, event: EventEnvelope) -> EventResult:
        """Apply one verified event exactly once. An event that is malformed or not about a
        Portico payment is recorded as ignored; one that contradicts what Portico asked Stripe
        for is recorded as flagged. Stripe gets its 200 either way, so it does not retry them
        for days. What an applied or flagged event announces (receipt, staff notices) is
        committed with it and handed to the invoice's workflow; if that hand-off fails the
        answer is a 503, and Stripe's redelivery, a duplicate, hands the same row off again."""
        meaning = interpret(event)
        try:
            async with self.sessions() as session, session.begin():
                row = StripeEvent(event_id=event.id, type=event.type)
                session.add(row)
                await session.flush()  # a duplicate delivery stops here
                result: PaymentOutcome | AdjustmentOutcome | Review | Ignored
                if isinstance(meaning, StripeChange):
                    result = await self._apply_change(session, meaning)
                elif isinstance(meaning, StripeAdjustment):
                    result = await self._apply_adjustment(session, meaning)
                else:
                    result = meaning
                record_outcome(row, meaning, result)
                note = None
                if not isinstance(result, Ignored):
                    note = event_announcement(self.settings, event, result)
                    session.add(note)
        except IntegrityError:
            async with self.sessions() as session:
                seen = await session.scalar(
                    select(StripeEvent.id).where(StripeEvent.event_id == event.id)
                )
                earlier = await session.scalar(
                    select(PaymentAnnouncement).where(
                        PaymentAnnouncement.key == event_key(event.id)
                    )
                )
                invoice = None
                if earlier is not None and earlier.invoice_id is not None:
                    invoice = await session.get(Invoice, earlier.invoice_id)
            if seen is None:
                raise
            if earlier is not None and earlier.announced_at is None:
                await self._hand_off(earlier, invoice)
            return EventResult("duplicate")
        if isinstance(result, Ignored):
            log.info("stripe event %s %s ignored: %s", event.id, event.type, result.detail)
            return EventResult("ignored", ignored=result.reason)
        assert note is not None
        await self._hand_off(note, result.invoice)
        flag = result.flag if not isinstance(result, AdjustmentOutcome) else None
        if flag is not None:
            log.warning("stripe event %s %s flagged: %s", event.id, event.type, flag.detail)
        if isinstance(result, Review):
            return EventResult("flagged", flagged=result.flag.reason)
        return EventResult("applied", flagged=flag.reason if flag else None)

    async def _review(self, session: AsyncSession, invoice: Invoice, flag: Flag) -> Review:
        project, client = await self._owner(session, invoice)
        return Review(flag, invoice, client, project, await self._payments(session, invoice.id))

    async def _checkout_for(
        self, session: AsyncSession, change: StripeChange
    ) -> StripeCheckout | None:
        """The Checkout Session Portico created that the event is about (by the reference in
        its metadata, else by session id)."""
        if change.checkout_ref:
            checkout = await session.scalar(
                select(StripeCheckout).where(StripeCheckout.ref == change.checkout_ref)
            )
            if checkout is not None:
                return checkout
        if change.session_id:
            return await session.scalar(
                select(StripeCheckout).where(StripeCheckout.session_id == change.session_id)
            )
        return None

    @staticmethod
    async def _payment_for(
        session: AsyncSession, change: StripeChange, checkout: StripeCheckout | None
    ) -> Payment | None:
        """The payment already booked for this checkout, session or PaymentIntent, if any."""
        keys = []
        if checkout is not None:
            keys.append(Payment.stripe_checkout_id == checkout.id)
        if change.session_id:
            keys.append(Payment.stripe_checkout_session_id == change.session_id)
        if change.payment_intent_id:
            keys.append(Payment.stripe_payment_intent_id == change.payment_intent_id)
        return await session.scalar(
            select(Payment)
            .where(Payment.source == "stripe", or_(*keys))
            .order_by(Payment.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )

    async def _apply_change(
        self, session: AsyncSession, change: StripeChange
    ) -> PaymentOutcome | Review | Ignored:
        """Book or move the one payment of a Checkout Session, whichever event reports it
        (checkout.session.*, with or without its PaymentIntent, or payment_intent.*)."""
        try:
            invoice = await self._lock(session, change.invoice_id)
        except NotFound:
            return Review(Flag("unknown_invoice", f"Invoice {change.invoice_id} does not exist."))
        checkout = await self._checkout_for(session, change)
        payment = await self._payment_for(session, change, checkout)
        flag: Flag | None
        if payment is not None and payment.invoice_id != invoice.id:
            flag = Flag(
                "invoice_mismatch",
                f"Its payment is booked on invoice {payment.invoice_id}, "
                f"not on invoice {invoice.id}.",
            )
        elif checkout is not None:
            flag = checkout_mismatch(change, checkout)
        elif payment is not None:  # booked before Portico recorded its Checkout Sessions
            flag = terms_mismatch(
                change, payment.currency, payment.amount_cents, "the payment recorded"
            )
        elif change.status == "failed":
            return Ignored("no_payment", "A failed attempt; Portico recorded no such payment.")
        else:
            flag = Flag(
                "unknown_checkout",
                "No Checkout Session Portico created matches its metadata or session id.",
            )
        if (
            flag is None
            and payment is not None
            and payment.stripe_payment_intent_id
            and change.payment_intent_id
            and payment.stripe_payment_intent_id != change.payment_intent_id
        ):
            flag = Flag(
                "payment_intent_mismatch",
                f"The payment was made by {payment.stripe_payment_intent_id}, "
                f"the event names {change.payment_intent_id}.",
            )
        if flag is not None:
            return await self._review(session, invoice, flag)
        due = still_due(invoice, await self._payments(session, invoice.id))
        now = datetime.now(UTC)
        became: str | None = None
        excess: Flag | None = None
        if payment is None:
            if change.status == "failed" and change.session_id is None:
                # a declined card inside Checkout: the client can still pay in that session
                return Ignored("no_payment", "A failed attempt; Portico recorded no payment.")
            payment = Payment(
                invoice_id=invoice.id,
                amount_cents=change.amount_cents,
                currency=change.currency,
                method=change.method,
                status=change.status,
                source="stripe",
                reference=change.session_id or change.payment_intent_id,
                stripe_checkout_id=checkout.id if checkout else None,
                stripe_checkout_session_id=change.session_id,
                stripe_payment_intent_id=change.payment_intent_id,
                failure_reason=change.failure_reason,
                settled_at=now if change.status == "succeeded" else None,
            )
            session.add(payment)
            became = change.status
            if change.status != "failed":
                excess = overpayment(change.amount_cents, due, invoice.currency)
        else:
            payment.stripe_checkout_id = payment.stripe_checkout_id or (
                checkout.id if checkout else None
            )
            payment.stripe_checkout_session_id = (
                payment.stripe_checkout_session_id or change.session_id
            )
            payment.stripe_payment_intent_id = (
                payment.stripe_payment_intent_id or change.payment_intent_id
            )
            if change.status in TRANSITIONS.get(payment.status, ()):
                if payment.status == "failed":  # a pending payment was counted as in flight
                    excess = overpayment(payment.amount_cents, due, invoice.currency)
                payment.status = change.status
                became = change.status
                if change.status == "succeeded":
                    payment.settled_at = now
                    payment.failure_reason = None
                    # a refund or dispute may have been recorded while it was settling
                    payment.status = settled_status(payment)
                else:
                    payment.failure_reason = change.failure_reason
        payments = await self._recompute(session, invoice)
        if became is None:
            return Ignored("no_change", "The payment is already recorded in that state.")
        if became == "succeeded":
            await self._payment_webhook(session, "payment.succeeded", payment)
        project, client = await self._owner(session, invoice)
        return PaymentOutcome(invoice, payment, became, client, project, payments, excess)

    async def _apply_adjustment(
        self, session: AsyncSession, adjustment: StripeAdjustment
    ) -> AdjustmentOutcome | Review | Ignored:
        """Record a refund or dispute on its payment; Ignored if Portico has no such payment
        or the event changes nothing (a repeat, or older than what is recorded)."""
        keys = []
        if adjustment.payment_intent_id:
            keys.append(Payment.stripe_payment_intent_id == adjustment.payment_intent_id)
        if adjustment.charge_id:
            keys.append(Payment.stripe_charge_id == adjustment.charge_id)
        match = select(Payment).where(Payment.source == "stripe", or_(*keys)).order_by(Payment.id)
        invoice_id = await session.scalar(match.with_only_columns(Payment.invoice_id).limit(1))
        if invoice_id is None:
            log.warning(
                "stripe %s for unknown payment (intent %s, charge %s)",
                adjustment.kind,
                adjustment.payment_intent_id,
                adjustment.charge_id,
            )
            return Ignored("unknown_payment", "Portico has no payment of that charge.")
        invoice = await self._lock(session, invoice_id)  # then read the payment under the lock
        payment = await session.scalar(
            match.where(Payment.invoice_id == invoice.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        assert payment is not None
        if adjustment.currency != payment.currency:
            return await self._review(
                session,
                invoice,
                Flag(
                    "currency_mismatch",
                    f"The {adjustment.kind} is in {adjustment.currency}; "
                    f"the payment is in {payment.currency}.",
                ),
            )
        refunded_before = payment.refunded_cents or 0
        dispute_before = payment.dispute_status
        status_before = invoice.status
        state_before = (payment.status, payment.dispute_status, payment.disputed_cents)
        payment.stripe_payment_intent_id = (
            payment.stripe_payment_intent_id or adjustment.payment_intent_id
        )
        payment.stripe_charge_id = payment.stripe_charge_id or adjustment.charge_id
        notices: list[str] = []
        if adjustment.kind == "refund":
            # cumulative: only ever grows, so an older event arriving late changes nothing
            refunded = min(adjustment.refunded_cents, payment.amount_cents)
            if refunded > refunded_before:
                payment.refunded_cents = refunded
                notices.append("refunded")
        else:
            status = adjustment.dispute_status
            if dispute_before not in CLOSED_DISPUTE:  # a closed dispute stays closed
                payment.dispute_status = status
                payment.disputed_cents = min(adjustment.amount_cents, payment.amount_cents)
                if status not in CLOSED_DISPUTE and dispute_before is None:
                    notices.append("dispute_opened")
                elif status in CLOSED_DISPUTE:
                    notices.append("dispute_closed")
        if payment.status in SETTLED_PAYMENT:
            payment.status = settled_status(payment)
        payments = await self._recompute(session, invoice)
        state = (payment.status, payment.dispute_status, payment.disputed_cents)
        if not notices and state == state_before:
            return Ignored("no_change", f"The {adjustment.kind} is already recorded.")
        if "refunded" in notices:
            await self._payment_webhook(session, "payment.refunded", payment)
        project, client = await self._owner(session, invoice)
        return AdjustmentOutcome(
            invoice=invoice,
            payment=payment,
            client=client,
            project=project,
            payments=payments,
            adjustment=adjustment,
            invoice_status_before=status_before,
            refunded_before=refunded_before,
            notices=notices,
        )

    # --- the signing page's "Pay deposit" ---------------------------------------------------

    async def deposit_url_for_signing_token(self, token: str) -> str | None:
        """The pay_url of an open deposit invoice linked to the request a signing link opens."""
        if not 16 <= len(token) <= 64:
            return None
        token_hash = tokens.hash_token(token)
        async with self.sessions() as session:
            approval_id = await session.scalar(
                select(Approver.approval_id).where(Approver.token_hash == token_hash)
            )
            if approval_id is None:
                approval_id = await session.scalar(
                    select(Approver.approval_id)
                    .join(SigningLink, SigningLink.approver_id == Approver.id)
                    .where(SigningLink.token_hash == token_hash)
                )
            if approval_id is None:
                return None
            approval = await session.get(Approval, approval_id)
            if approval is None or approval.status != "approved":
                return None
            invoice = await session.scalar(
                select(Invoice)
                .where(
                    or_(
                        Invoice.approval_id == approval.id,
                        Invoice.document_id == approval.document_id,
                    ),
                    Invoice.status.in_(PAYABLE),
                )
                .order_by(Invoice.id)
                .limit(1)
            )
        return pay_url(self.settings, invoice) if invoice is not None else None

    async def count_payments(self, invoice_id: int) -> int:
        async with self.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(Payment)
                    .where(Payment.invoice_id == invoice_id)
                )
                or 0
            )


METHOD_LABELS = {
    "card": N_("Card"),
    "us_bank_account": N_("Bank account (ACH)"),
    "check": N_("Check"),
    "cash": N_("Cash"),
    "bank_transfer": N_("Bank transfer"),
    "stripe": N_("Online payment"),
}
