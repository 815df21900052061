"""Invoice side effects for InvoiceWorkflow: the invoice email and overdue reminders. Each
reads the invoice's current state from SQL first (a settled invoice gets no reminder) and sends
through the `send_email` path with a dedupe key, so a retried activity emails nobody twice."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.notify import NotifyActivities
from portico.models import Client, Invoice, Payment, Project
from portico.services.billing import PAYABLE, balance_cents, invoice_email_context
from portico.settings import Settings
from workflows.types import EmailMessage, InvoiceNotice

TEMPLATES = {"issued": "invoice_issued", "reminder": "invoice_reminder"}


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
            )
        )
        return invoice.status
