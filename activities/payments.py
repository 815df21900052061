"""Invoice side effects for InvoiceWorkflow: the invoice email, overdue reminders, and the
announcements of its payments (receipt, staff notices, the invoice's audit chain). Each reads
the invoice's current state from SQL first (a settled invoice gets no reminder) and sends
through the `send_email` path with a dedupe key, so a retried activity emails nobody twice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from portico.audit import append_link
from portico.ledger import PAYABLE, balance_cents
from portico.models import Client, Invoice, InvoiceAuditEvent, Payment, PaymentAnnouncement, Project
from portico.services.billing.notices import invoice_email_context
from portico.settings import Settings
from workflows.types import (
    AnnouncePayments,
    AnnounceResult,
    AuditEventInput,
    EmailMessage,
    InvoiceNotice,
)

log = logging.getLogger(__name__)
TEMPLATES = {"issued": "invoice_issued", "reminder": "invoice_reminder"}


def chain_event(note: PaymentAnnouncement) -> AuditEventInput:
    """The invoice audit event of an announcement (its key names the announcement)."""
    return AuditEventInput(
        event_key=f"announcement-{note.id}",
        at=note.at,
        type=note.type,
        actor=note.actor,
        data={**note.data, "announcement": note.key},
    )


class PaymentActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        notify: NotifyActivities,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.notify = notify

    @activity.defn(name="invoice_notice")
    async def invoice_notice(self, notice: InvoiceNotice) -> str:
        """Email the client about the invoice if it is still payable; returns its status."""
        async with self.sessions() as session:
            invoice = await session.get(Invoice, notice.invoice_id)
            if invoice is None:  # its creation was undone: nothing to chase
                return "void"
            project = await session.get(Project, invoice.project_id)
            client = await session.get(Client, project.client_id) if project else None
            payments = list(
                await session.scalars(select(Payment).where(Payment.invoice_id == invoice.id))
            )
        if invoice.status not in PAYABLE or project is None or client is None:
            return invoice.status
        if notice.kind == "reminder" and balance_cents(invoice, payments) <= 0:
            return invoice.status  # an ACH payment is settling: no reminder meanwhile
        if not client.email:
            return invoice.status
        context = invoice_email_context(self.settings, invoice, client, project, payments)
        context["reminder_number"] = notice.seq
        await self.notify.send_email(
            EmailMessage(
                dedupe_key=f"{invoice.workflow_id}:{notice.kind}:{notice.seq}",
                to=client.email,
                template=TEMPLATES.get(notice.kind, "invoice_reminder"),
                context=context,
                locale=client.locale,
                timezone=client.timezone,
            )
        )
        return invoice.status

    @activity.defn(name="announce_payments")
    async def announce_payments(self, inp: AnnouncePayments) -> AnnounceResult:
        """Announce the invoice's committed payment changes not yet announced, up to
        `inp.announcement_id`, oldest first (so one whose own hand-off was lost goes out with
        the next): append each to the invoice's audit chain, send its emails, mark it
        announced. Safe to run twice: the chain and send_email skip what they already have.
        An SMTP failure fails the attempt and Temporal retries it. Returns the invoice's
        status."""
        async with self.sessions() as session:
            asked = await session.get(PaymentAnnouncement, inp.announcement_id)
            if asked is None or asked.invoice_id != inp.invoice_id:
                raise ApplicationError(
                    f"No payment announcement {inp.announcement_id} for invoice {inp.invoice_id}",
                    type="UnknownAnnouncement",
                    non_retryable=True,
                )
            query = select(PaymentAnnouncement).where(PaymentAnnouncement.announced_at.is_(None))
            if inp.invoice_id is None:
                query = query.where(PaymentAnnouncement.id == inp.announcement_id)
            else:
                query = query.where(
                    PaymentAnnouncement.invoice_id == inp.invoice_id,
                    PaymentAnnouncement.id <= inp.announcement_id,
                )
            notes = list(await session.scalars(query.order_by(PaymentAnnouncement.id)))
        for note in notes:
            if note.invoice_id is not None:
                await self._append(note.invoice_id, chain_event(note))
            for fields in note.messages:
                await self._send(EmailMessage(**fields))
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(PaymentAnnouncement)
                    .where(PaymentAnnouncement.id == note.id)
                    .values(announced_at=datetime.now(UTC))
                )
        if inp.invoice_id is None:
            return AnnounceResult(status="")
        async with self.sessions() as session:
            status = await session.scalar(
                select(Invoice.status).where(Invoice.id == inp.invoice_id)
            )
        return AnnounceResult(status=status or "void")

    async def _append(self, invoice_id: int, event: AuditEventInput) -> None:
        for attempt in range(5):
            try:
                async with self.sessions() as session, session.begin():
                    await append_link(session, InvoiceAuditEvent, "invoice_id", invoice_id, event)
                return
            except IntegrityError:
                # a concurrent attempt took the same seq; the chain is re-read on the next try
                if attempt == 4:
                    raise

    async def _send(self, message: EmailMessage) -> None:
        try:
            await self.notify.send_email(message)
        except ApplicationError as err:
            if err.type != "InvalidRecipient":
                raise
            log.warning("%s to %r not sent: %s", message.template, message.to, err.message)
