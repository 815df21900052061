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
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy

from activities import pdf
from portico import tokens
from portico.errors import BadRequest, Conflict, Invalid, NotFound, Unavailable
from portico.files import FileStore
from portico.gateway import TemporalGateway
from portico.mailer import Mailer
from portico.models import (
    Approval,
    Approver,
    Client,
    Document,
    Invoice,
    Payment,
    Project,
    SigningLink,
    StripeEvent,
)
from portico.portal_schemas import InvoiceIn, PaymentIn
from portico.schemas import known_id, parse_id
from portico.service import iso
from portico.settings import Settings
from workflows.invoice import InvoiceWorkflow
from workflows.messages import money
from workflows.types import EmailMessage, InvoiceInput

log = logging.getLogger(__name__)

PAYABLE = ("open", "partially_paid")
# payments whose money arrived (before any refund or chargeback)
SETTLED_PAYMENT = ("succeeded", "refunded", "disputed", "dispute_lost")
# Stripe dispute statuses that end a dispute (anything else is an open dispute)
CLOSED_DISPUTE = ("won", "lost", "warning_closed", "prevented")
STRIPE_MIN_CENTS = 50  # Stripe's minimum charge in USD
ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


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


def line_total(quantity: Any, unit_price_cents: int) -> int:
    """Quantity × unit price, rounded half-up to whole cents (as the PDF renders it)."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(str(quantity)) * Decimal(unit_price_cents)
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def totals(line_items: list[dict[str, Any]], tax_rate: Decimal | None) -> tuple[int, int, int]:
    """(subtotal, tax, total) in cents; tax rounded half-up on the subtotal."""
    subtotal = sum(line_total(i["quantity"], i["unit_price_cents"]) for i in line_items)
    tax = 0
    if tax_rate:
        with localcontext() as ctx:
            ctx.prec = 60
            tax = int(
                (Decimal(subtotal) * tax_rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            )
    return subtotal, tax, subtotal + tax


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


def invoice_json(settings: Settings, invoice: Invoice, payments: list[Payment]) -> dict[str, Any]:
    return {
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
    }


def invoice_email_context(
    settings: Settings, invoice: Invoice, client: Client, project: Project, payments: list[Payment]
) -> dict[str, Any]:
    return {
        "company_name": settings.company_name,
        "client_name": client.name,
        "project_name": project.name,
        "invoice_number": invoice.number,
        "total": money(invoice.total_cents, invoice.currency),
        "paid": money(invoice.paid_cents, invoice.currency),
        "balance": money(balance_cents(invoice, payments), invoice.currency),
        "due_date": invoice.due_date.strftime("%b %d, %Y"),
        "status": invoice.status,
        "pay_url": pay_url(settings, invoice),
    }


@dataclass
class StripeChange:
    """What one Stripe event means for Portico's payments."""

    invoice_id: int
    status: str  # pending | succeeded | failed
    method: str
    amount_cents: int
    currency: str
    session_id: str | None
    payment_intent_id: str | None
    failure_reason: str | None = None


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _invoice_id(obj: dict[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("invoice_id") or obj.get("client_reference_id")
    value = parse_id(str(raw)) if isinstance(raw, str | int) else None
    return value if known_id(value) else None


def interpret_event(event: dict[str, Any]) -> StripeChange | None:
    """Map a Stripe event to a payment change; None for events Portico does not act on."""
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    invoice_id = _invoice_id(obj)
    if invoice_id is None:
        return None
    currency = str(obj.get("currency") or "usd").upper()
    if kind.startswith("checkout.session."):
        common: dict[str, Any] = {
            "invoice_id": invoice_id,
            "amount_cents": int(obj.get("amount_total") or 0),
            "currency": currency,
            "session_id": _id_of(obj.get("id")),
            "payment_intent_id": _id_of(obj.get("payment_intent")),
        }
        if kind == "checkout.session.completed":
            if obj.get("payment_status") == "paid":
                return StripeChange(status="succeeded", method="card", **common)
            if obj.get("payment_status") == "unpaid":  # ACH debit: settles days later
                return StripeChange(status="pending", method="us_bank_account", **common)
            return None
        if kind == "checkout.session.async_payment_succeeded":
            return StripeChange(status="succeeded", method="us_bank_account", **common)
        if kind == "checkout.session.async_payment_failed":
            return StripeChange(
                status="failed",
                method="us_bank_account",
                failure_reason="The bank payment failed.",
                **common,
            )
        return None
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        error = obj.get("last_payment_error") or {}
        types = obj.get("payment_method_types") or ["card"]
        return StripeChange(
            invoice_id=invoice_id,
            status="succeeded" if kind.endswith("succeeded") else "failed",
            method=str(types[0]) if len(types) == 1 else "stripe",
            amount_cents=int(obj.get("amount_received") or obj.get("amount") or 0),
            currency=currency,
            session_id=None,
            payment_intent_id=_id_of(obj.get("id")),
            failure_reason=error.get("message") if isinstance(error, dict) else None,
        )
    return None


@dataclass
class StripeAdjustment:
    """What a refund or dispute event reports about an existing Stripe payment: a state (the
    charge's cumulative refunds, the dispute's status), never a delta."""

    kind: str  # refund | dispute
    payment_intent_id: str | None
    charge_id: str | None
    amount_cents: int  # refund: the charge's amount; dispute: the disputed amount
    currency: str
    refunded_cents: int = 0  # refund: the charge's `amount_refunded`
    dispute_id: str | None = None
    dispute_status: str | None = None
    evidence_due_by: int | None = None  # dispute: unix time


def interpret_adjustment(event: dict[str, Any]) -> StripeAdjustment | None:
    """Map `charge.refunded` and `charge.dispute.*` to an adjustment; None for anything else."""
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return None
    currency = str(obj.get("currency") or "usd").upper()
    if kind == "charge.refunded" and obj.get("object", "charge") == "charge":
        amount = int(obj.get("amount") or 0)
        refunded = obj.get("amount_refunded")
        if refunded is None:
            refunded = amount if obj.get("refunded") else 0
        adjustment = StripeAdjustment(
            kind="refund",
            payment_intent_id=_id_of(obj.get("payment_intent")),
            charge_id=_id_of(obj.get("id")),
            amount_cents=amount,
            currency=currency,
            refunded_cents=max(0, int(refunded)),
        )
    elif kind.startswith("charge.dispute.") and obj.get("object", "dispute") == "dispute":
        status = str(obj.get("status") or "")
        if not status:
            return None
        details = obj.get("evidence_details") or {}
        due_by = details.get("due_by") if isinstance(details, dict) else None
        adjustment = StripeAdjustment(
            kind="dispute",
            payment_intent_id=_id_of(obj.get("payment_intent")),
            charge_id=_id_of(obj.get("charge")),
            amount_cents=max(0, int(obj.get("amount") or 0)),
            currency=currency,
            dispute_id=_id_of(obj.get("id")),
            dispute_status=status[:40],
            evidence_due_by=int(due_by) if isinstance(due_by, int) else None,
        )
    else:
        return None
    if adjustment.payment_intent_id is None and adjustment.charge_id is None:
        return None
    return adjustment


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


# --- the service ----------------------------------------------------------------------------


class Billing:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
        mailer: Mailer,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self.mailer = mailer
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
                InvoiceWorkflow.run,
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
            signal = InvoiceWorkflow.paid if name == "paid" else InvoiceWorkflow.void
            await handle.signal(signal)
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
        return invoice_json(self.settings, invoice, payments)

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
        return payments

    async def _owner(self, session: AsyncSession, invoice: Invoice) -> tuple[Project, Client]:
        project = await session.get(Project, invoice.project_id)
        assert project is not None
        client = await session.get(Client, project.client_id)
        assert client is not None
        return project, client

    async def record_manual_payment(self, invoice_id: int, data: PaymentIn) -> dict[str, Any]:
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
            )
            session.add(payment)
            payments = await self._recompute(session, invoice)
            project, client = await self._owner(session, invoice)
        await self.after_payment(
            PaymentOutcome(invoice, payment, "succeeded", client, project, payments)
        )
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

    async def after_payment(self, outcome: PaymentOutcome) -> None:
        """Receipt to the client, notice to staff, and the workflow told once fully paid."""
        invoice, payment = outcome.invoice, outcome.payment
        context = {
            **invoice_email_context(
                self.settings, invoice, outcome.client, outcome.project, outcome.payments
            ),
            "amount": money(payment.amount_cents, payment.currency),
            "method": METHOD_LABELS.get(payment.method, payment.method),
            "payment_status": outcome.became,
            "reference": payment.reference,
            "failure_reason": payment.failure_reason,
        }
        key = f"payment-{payment.id}:{outcome.became}"
        if outcome.client.email:
            template = "payment_failed" if outcome.became == "failed" else "payment_receipt"
            await self.mailer.send(
                EmailMessage(
                    dedupe_key=f"{key}:client",
                    to=outcome.client.email,
                    template=template,
                    context=context,
                )
            )
        await self.mailer.send_staff(key, "staff_payment", context)
        if invoice.status == "paid":
            await self._signal(invoice, "paid")

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
        methods = ["card", "us_bank_account"] if invoice.currency == "USD" else ["card"]
        metadata = {"invoice_id": str(invoice.id), "invoice_number": invoice.number}
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
        key = f"portico-checkout-{invoice.id}-{amount}-{attempt}"
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
        return str(session.url)

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if its Stripe-Signature is valid and recent; else BadRequest (400)."""
        import json

        import stripe

        secret = self.settings.stripe_webhook_secret
        if not secret:
            raise BadRequest("Stripe webhooks are not configured.", code="not_configured")
        try:
            text = payload.decode("utf-8")
            stripe.Webhook.construct_event(text, signature or "", secret)
            event = json.loads(text)
        except stripe.SignatureVerificationError as err:
            raise BadRequest("The Stripe signature is not valid.", code="bad_signature") from err
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest("The payload is not a Stripe event.", code="bad_payload") from err
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            raise BadRequest("The payload is not a Stripe event.", code="bad_payload")
        return event

    async def apply_event(self, event: dict[str, Any]) -> str:
        """Apply one verified event exactly once: 'applied', 'duplicate' or 'ignored' (also
        for events about payments Portico does not know: they are recorded, and Stripe gets
        its 200 so it does not retry them for days)."""
        change = interpret_event(event)
        adjustment = interpret_adjustment(event) if change is None else None
        outcome: PaymentOutcome | None = None
        adjusted: AdjustmentOutcome | None = None
        try:
            async with self.sessions() as session, session.begin():
                row = StripeEvent(
                    event_id=str(event["id"])[:255],
                    type=str(event["type"])[:100],
                    invoice_id=change.invoice_id if change else None,
                )
                session.add(row)
                await session.flush()  # a duplicate delivery stops here
                if change is not None:
                    outcome = await self._apply_change(session, change)
                elif adjustment is not None:
                    adjusted = await self._apply_adjustment(session, adjustment)
                    if adjusted is not None:
                        row.invoice_id = adjusted.invoice.id
        except IntegrityError:
            async with self.sessions() as session:
                seen = await session.scalar(
                    select(StripeEvent.id).where(StripeEvent.event_id == str(event["id"]))
                )
            if seen is not None:
                return "duplicate"
            raise
        if adjusted is not None:
            await self.after_adjustment(adjusted)
            return "applied"
        if outcome is None:
            return "ignored"
        await self.after_payment(outcome)
        return "applied"

    async def _apply_change(
        self, session: AsyncSession, change: StripeChange
    ) -> PaymentOutcome | None:
        try:
            invoice = await self._lock(session, change.invoice_id)
        except NotFound:
            log.warning("stripe event for unknown invoice %s", change.invoice_id)
            return None
        keys = []
        if change.session_id:
            keys.append(Payment.stripe_checkout_session_id == change.session_id)
        if change.payment_intent_id:
            keys.append(Payment.stripe_payment_intent_id == change.payment_intent_id)
        payment = await session.scalar(
            select(Payment).where(Payment.invoice_id == invoice.id, or_(*keys))
        )
        now = datetime.now(UTC)
        became: str | None = None
        if payment is None:
            if change.status == "failed" and change.session_id is None:
                return None  # a failed card attempt inside Checkout: nothing was recorded
            payment = Payment(
                invoice_id=invoice.id,
                amount_cents=change.amount_cents,
                currency=change.currency,
                method=change.method,
                status=change.status,
                source="stripe",
                reference=change.session_id or change.payment_intent_id,
                stripe_checkout_session_id=change.session_id,
                stripe_payment_intent_id=change.payment_intent_id,
                failure_reason=change.failure_reason,
                settled_at=now if change.status == "succeeded" else None,
            )
            session.add(payment)
            became = change.status
        else:
            payment.stripe_checkout_session_id = (
                payment.stripe_checkout_session_id or change.session_id
            )
            payment.stripe_payment_intent_id = (
                payment.stripe_payment_intent_id or change.payment_intent_id
            )
            if change.status in TRANSITIONS.get(payment.status, ()):
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
            return None
        project, client = await self._owner(session, invoice)
        return PaymentOutcome(invoice, payment, became, client, project, payments)

    async def _apply_adjustment(
        self, session: AsyncSession, adjustment: StripeAdjustment
    ) -> AdjustmentOutcome | None:
        """Record a refund or dispute on its payment; None if Portico has no such payment or
        the event changes nothing (a repeat, or older than what is recorded)."""
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
            return None
        invoice = await self._lock(session, invoice_id)  # then read the payment under the lock
        payment = await session.scalar(
            match.where(Payment.invoice_id == invoice.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        assert payment is not None
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
            return None
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

    async def after_adjustment(self, outcome: AdjustmentOutcome) -> None:
        """Tell staff of a refund or of a dispute opened/closed; keep the workflow informed."""
        invoice, payment = outcome.invoice, outcome.payment
        context: dict[str, Any] = {
            **invoice_email_context(
                self.settings, invoice, outcome.client, outcome.project, outcome.payments
            ),
            "payment_amount": money(payment.amount_cents, payment.currency),
            "method": METHOD_LABELS.get(payment.method, payment.method),
            "reference": payment.reference,
            "payment_status": payment.status,
            "reopened": outcome.invoice_status_before == "paid" and invoice.status in PAYABLE,
            "reminders": None,
        }
        if invoice.status in PAYABLE and invoice.remind_every_days:
            context["reminders"] = await self._reminders_state(invoice)
        if invoice.status == "paid" and outcome.invoice_status_before != "paid":
            await self._signal(invoice, "paid")  # a won dispute settled it again
        for notice in outcome.notices:
            if notice == "refunded":
                refunded = payment.refunded_cents or 0
                await self.mailer.send_staff(
                    f"payment-{payment.id}:refunded:{refunded}",
                    "staff_refund",
                    {
                        **context,
                        "amount": money(refunded - outcome.refunded_before, payment.currency),
                        "refunded_total": money(refunded, payment.currency),
                        "full": refunded >= payment.amount_cents,
                    },
                )
            else:
                dispute = outcome.adjustment
                status = dispute.dispute_status or ""
                due = (
                    datetime.fromtimestamp(dispute.evidence_due_by, UTC).strftime("%b %d, %Y")
                    if dispute.evidence_due_by and notice == "dispute_opened"
                    else None
                )
                key = dispute.dispute_id or f"charge-{payment.stripe_charge_id}"
                phase = "opened" if notice == "dispute_opened" else status
                await self.mailer.send_staff(
                    f"payment-{payment.id}:dispute:{key}:{phase}",
                    "staff_dispute",
                    {
                        **context,
                        "amount": money(payment.disputed_cents or 0, payment.currency),
                        "phase": phase,
                        "dispute_status": status,
                        "dispute_label": DISPUTE_LABELS.get(status, status.replace("_", " ")),
                        "evidence_due_by": due,
                    },
                )

    async def _reminders_state(self, invoice: Invoice) -> str | None:
        """'running' or 'ended' for the invoice's reminder workflow (None: unknown). A refund
        that reopens a paid invoice does not restart a workflow that ended when it was paid."""
        try:
            client = await self.temporal.client()
            handle = client.get_workflow_handle(invoice.workflow_id)
            described = await asyncio.wait_for(handle.describe(), 5)
        except Exception as err:
            log.info("could not describe %s: %s", invoice.workflow_id, err)
            return None
        running = described.status == WorkflowExecutionStatus.RUNNING
        return "running" if running else "ended"

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
    "card": "Card",
    "us_bank_account": "Bank account (ACH)",
    "check": "Check",
    "cash": "Cash",
    "bank_transfer": "Bank transfer",
    "stripe": "Online payment",
}
