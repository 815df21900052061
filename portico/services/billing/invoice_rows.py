"""An invoice's rows inside a transaction: its write lock, its payments and owner, and the
recomputation of what it has been paid (with the `invoice.paid` / `invoice.reopened` and
`payment.*` webhook events recorded in that same transaction).

Every change to an invoice's payments starts by bumping the invoice row's `lock_version`,
which takes the row lock on PostgreSQL and the write lock on SQLite, so two payments (or two
deliveries of one Stripe event) can never both read a stale balance."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portico.errors import NotFound
from portico.ledger import counted_cents, due_cents, paid_status
from portico.models import Client, Invoice, Payment, Project
from portico.services import webhooks
from portico.services.billing.shown import as_json, invoice_out, payment_out
from portico.settings import Settings


async def payments_of(session: AsyncSession, invoice_id: int) -> list[Payment]:
    return list(
        await session.scalars(
            select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
        )
    )


async def lock_invoice(session: AsyncSession, invoice_id: int) -> Invoice:
    """Take the invoice's write lock (first statement of the transaction) and read it."""
    bumped = await session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id)
        .values(lock_version=Invoice.lock_version + 1)
    )
    if bumped.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"Invoice {invoice_id} does not exist.")
    invoice = await session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    )
    assert invoice is not None
    return invoice


async def recompute(settings: Settings, session: AsyncSession, invoice: Invoice) -> list[Payment]:
    """Set the locked invoice's paid total and status from its payments: `paid` once its due
    part (total less retainage) is paid."""
    await session.flush()
    before = invoice.status
    payments = await payments_of(session, invoice.id)
    invoice.paid_cents = sum(counted_cents(p) for p in payments)
    if invoice.status != "void":
        invoice.status = paid_status(invoice.paid_cents, due_cents(invoice))
        invoice.paid_at = (
            (invoice.paid_at or datetime.now(UTC)) if invoice.status == "paid" else None
        )
    await session.flush()
    if "paid" in (before, invoice.status) and before != invoice.status:
        kind = "invoice.paid" if invoice.status == "paid" else "invoice.reopened"
        key = f"invoice-{invoice.id}:{kind}:{invoice.lock_version}"
        await webhooks.record(session, kind, as_json(invoice_out(settings, invoice, payments)), key)
    return payments


async def payment_webhook(session: AsyncSession, kind: str, payment: Payment) -> None:
    """payment.succeeded / payment.refunded, in the payment's transaction."""
    key = f"payment-{payment.id}:{kind}:{payment.refunded_cents or 0}"
    await webhooks.record(session, kind, as_json(payment_out(payment)), key)


async def owner_of(session: AsyncSession, invoice: Invoice) -> tuple[Project, Client]:
    project = await session.get(Project, invoice.project_id)
    assert project is not None
    client = await session.get(Client, project.client_id)
    assert client is not None
    return project, client
