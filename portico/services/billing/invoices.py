"""Invoices: creation (rendered PDF, `invoice.sent` webhook event, the `invoice-{id}`
workflow that emails and reminds), reading, listing and voiding."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_decimal
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import WorkflowIDReusePolicy

from portico import i18n, pdf_values, tokens
from portico.errors import Conflict, Invalid, NotFound, Unavailable
from portico.files import FileStore
from portico.i18n import gettext as _
from portico.ledger import overdue_at, retainage_cents
from portico.models import Approval, Client, Document, Invoice, Payment, Project, StripeEvent
from portico.money import format_money, totals
from portico.portal_schemas import InvoiceIn, InvoiceOut
from portico.services import webhooks
from portico.services.billing.invoice_rows import lock_invoice, payments_of
from portico.services.billing.links import pay_token, sent_key
from portico.services.billing.shown import as_json, invoice_out
from portico.services.gateway import TemporalGateway
from portico.settings import Settings
from workflows.types import INVOICE_PAID, INVOICE_VOID, INVOICE_WORKFLOW, InvoiceInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """An invoice's lines, totals and stored PDF, before its row exists."""

    items: list[dict[str, Any]]
    subtotal: int
    tax: int
    total: int
    retainage: int
    issued: date
    pdf_path: str
    pdf_sha256: str


def percent_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def local_percent(value: Decimal) -> str:
    """A rate as the current locale writes it ('7.5', '7,5')."""
    return format_decimal(value.normalize(), locale=i18n.babel_locale())


class Invoices:
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

    # --- creating ---------------------------------------------------------------------------

    async def create(self, data: InvoiceIn) -> InvoiceOut:
        async with self.sessions() as session:
            project = await session.get(Project, data.project_id)
            if project is None:
                raise NotFound(f"Project {data.project_id} does not exist.")
            client = await session.get(Client, project.client_id)
            assert client is not None
            await self._check_links(session, project, data)
            if await session.scalar(select(Invoice.id).where(Invoice.number == data.number)):
                raise Conflict(f"Invoice number {data.number} is already used.", code="duplicate")
        rendered = self.render(
            project,
            client,
            number=data.number,
            currency=data.currency,
            due_date=data.due_date,
            items=[item.model_dump(mode="json") for item in data.line_items],
            tax_rate=data.tax_rate_percent,
            retainage_percent=data.retainage_percent,
            notes=data.notes,
        )
        try:
            async with self.sessions() as session, session.begin():
                invoice = await self.insert(
                    session,
                    rendered,
                    project_id=project.id,
                    number=data.number,
                    currency=data.currency,
                    due_date=data.due_date,
                    tax_rate=data.tax_rate_percent,
                    retainage_percent=data.retainage_percent,
                    notes=data.notes,
                    remind_every_days=data.remind_every_days,
                    approval_id=data.approval_id,
                    document_id=data.document_id,
                )
        except IntegrityError as err:
            raise Conflict(
                f"Invoice number {data.number} is already used.", code="duplicate"
            ) from err
        await self.start_workflow(invoice, data.notify_client)
        return invoice_out(self.settings, invoice, [])

    def reader_locale(self, client: Client) -> str:
        """The language of the client's PDFs: theirs, else PORTICO_DEFAULT_LOCALE."""
        return i18n.resolve(client.locale, default=self.settings.default_locale)

    def render(
        self,
        project: Project,
        client: Client,
        *,
        number: str,
        currency: str,
        due_date: date,
        items: list[dict[str, Any]],
        tax_rate: Decimal | None,
        retainage_percent: Decimal | None,
        notes: str | None,
    ) -> Rendered:
        """Totals, retainage and the stored PDF of an invoice to be, the PDF in the client's
        language (its locale, else PORTICO_DEFAULT_LOCALE)."""
        subtotal, tax, total = totals(items, tax_rate)
        if total <= 0:
            raise Invalid("The invoice total must be more than zero.")
        retainage = retainage_cents(total, retainage_percent)
        locale = self.reader_locale(client)
        pdf_items = list(items)
        issued = datetime.now(UTC).date()
        with i18n.use(locale):
            if tax:
                assert tax_rate is not None
                rate = local_percent(tax_rate)
                pdf_items.append(
                    {
                        "description": _("Tax (%(rate)s%%)", rate=rate),
                        "quantity": 1,
                        "unit_price_cents": tax,
                    }
                )
            lines = [_("Due by %(date)s.", date=i18n.format_date(due_date))]
            if retainage:
                assert retainage_percent is not None
                lines.append(
                    _(
                        "Retainage held (%(rate)s%%): %(held)s, billed when released. "
                        "Due now: %(due)s.",
                        rate=local_percent(retainage_percent),
                        held=format_money(retainage, currency),
                        due=format_money(total - retainage, currency),
                    )
                )
            title = _("Invoice %(number)s", number=number)
        from portico import pdf  # noqa: PLC0415 - reportlab loads with the first invoice

        try:
            pdf_bytes, pdf_total = pdf.render_line_items_pdf(
                company_name=self.settings.company_name,
                kind="invoice",
                title=title,
                number=number,
                client_name=client.company or client.name,
                project_name=project.name,
                currency=currency,
                line_items=pdf_items,
                issued_on=issued,
                notes="\n".join(part for part in [*lines, notes] if part),
                locale=locale,
            )
        except ValueError as err:
            raise Invalid(str(err)) from err
        if pdf_total != total:  # one line-total rule (portico.money) for both
            raise Invalid("The invoice lines do not add up; nothing was created.")
        path = self.files.save("invoices", pdf_bytes, ".pdf")
        return Rendered(
            items, subtotal, tax, total, retainage, issued, path, pdf_values.sha256_hex(pdf_bytes)
        )

    async def insert(
        self,
        session: AsyncSession,
        rendered: Rendered,
        *,
        project_id: int,
        number: str,
        currency: str,
        due_date: date,
        tax_rate: Decimal | None,
        retainage_percent: Decimal | None,
        notes: str | None,
        remind_every_days: int | None,
        approval_id: int | None = None,
        document_id: int | None = None,
    ) -> Invoice:
        """Add the invoice's row and its `invoice.sent` event in the caller's transaction."""
        nonce = secrets.token_hex(12)
        invoice = Invoice(
            project_id=project_id,
            approval_id=approval_id,
            document_id=document_id,
            number=number,
            currency=currency,
            issued_on=rendered.issued,
            due_date=due_date,
            line_items=rendered.items,
            tax_rate_percent=str(tax_rate) if rendered.tax else None,
            subtotal_cents=rendered.subtotal,
            tax_cents=rendered.tax,
            total_cents=rendered.total,
            retainage_percent=str(retainage_percent) if rendered.retainage else None,
            retainage_cents=rendered.retainage,
            retainage_status="held" if rendered.retainage else None,
            paid_cents=0,
            status="open",
            notes=notes,
            remind_every_days=remind_every_days,
            pdf_path=rendered.pdf_path,
            pdf_sha256=rendered.pdf_sha256,
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
        await session.flush()
        await webhooks.record(
            session,
            "invoice.sent",
            as_json(invoice_out(self.settings, invoice, [])),
            sent_key(invoice),
        )
        return invoice

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

    async def start_workflow(self, invoice: Invoice, notify_client: bool) -> None:
        """Start `invoice-{id}`; if Temporal does not answer, forget the invoice (503)."""
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
                await self.forget(session, invoice)
            if isinstance(err, Unavailable):
                raise
            raise Unavailable(
                "The invoice engine is unreachable right now; no invoice was created. Try again."
            ) from err

    @staticmethod
    async def forget(session: AsyncSession, invoice: Invoice) -> None:
        """Undo an invoice whose workflow could not start (its row and its event); what a
        release invoice released is held again."""
        await session.execute(
            update(Invoice)
            .where(Invoice.retainage_released_by == invoice.id)
            .values(retainage_status="held", retainage_released_by=None)
        )
        row = await session.get(Invoice, invoice.id)
        if row is not None:
            await session.delete(row)
        await webhooks.forget(session, sent_key(invoice))

    async def _signal(self, invoice: Invoice, name: str) -> None:
        """Tell the invoice's workflow (best effort: its reminder checks SQL anyway)."""
        try:
            client = await self.temporal.client()
            handle = client.get_workflow_handle(invoice.workflow_id)
            await handle.signal(INVOICE_PAID if name == "paid" else INVOICE_VOID)
        except Exception as err:
            log.info("could not signal %s %s: %s", invoice.workflow_id, name, err)

    # --- reading ----------------------------------------------------------------------------

    async def load(self, invoice_id: int) -> tuple[Invoice, list[Payment]]:
        async with self.sessions() as session:
            invoice = await session.get(Invoice, invoice_id)
            if invoice is None:
                raise NotFound(f"Invoice {invoice_id} does not exist.")
            payments = await payments_of(session, invoice_id)
        return invoice, payments

    async def get(self, invoice_id: int) -> InvoiceOut:
        invoice, payments = await self.load(invoice_id)
        return invoice_out(self.settings, invoice, payments, await self.payment_reviews(invoice_id))

    async def payment_reviews(self, invoice_id: int | None = None) -> list[StripeEvent]:
        """Flagged Stripe events, newest first: of one invoice, or all of them."""
        query = select(StripeEvent).where(StripeEvent.outcome == "flagged")
        if invoice_id is not None:
            query = query.where(StripeEvent.invoice_id == invoice_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(StripeEvent.id.desc()).limit(500)))

    async def find(
        self, client_id: int | None = None, status: str | None = None
    ) -> list[InvoiceOut]:
        query = select(Invoice).join(Project).order_by(Invoice.id.desc())
        if client_id is not None:
            query = query.where(Project.client_id == client_id)
        if status:
            query = query.where(Invoice.status == status)
        async with self.sessions() as session:
            return [
                invoice_out(self.settings, invoice, await payments_of(session, invoice.id))
                for invoice in await session.scalars(query)
            ]

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
            payments = await payments_of(session, invoice.id)
        return invoice, payments, project, client

    def pdf_bytes(self, invoice: Invoice) -> bytes:
        return self.files.read(invoice.pdf_path)

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

    # --- voiding ----------------------------------------------------------------------------

    async def void(self, invoice_id: int, reason: str | None) -> InvoiceOut:
        async with self.sessions() as session, session.begin():
            invoice = await lock_invoice(session, invoice_id)
            if invoice.status == "void":
                raise Conflict("The invoice is already void.", code="already_void")
            if invoice.paid_cents > 0:
                raise Conflict(
                    "The invoice has payments; refund them before voiding it.", code="has_payments"
                )
            if invoice.retainage_status == "released":
                raise Conflict(
                    "Its retainage is billed by a release invoice; void that one instead.",
                    code="retainage_released",
                )
            invoice.status = "void"
            invoice.voided_at = datetime.now(UTC)
            invoice.void_reason = (reason or "").strip() or None
            invoice.retainage_status = None  # a void invoice holds nothing back
            # a void release invoice bills nothing: what it released is held again
            await session.execute(
                update(Invoice)
                .where(Invoice.retainage_released_by == invoice.id)
                .values(retainage_status="held", retainage_released_by=None)
            )
            payments = await payments_of(session, invoice_id)
        await self._signal(invoice, "void")
        return invoice_out(self.settings, invoice, payments)
