"""Re-checking an invoice's audit trail (`portico audit verify invoice:<id>`): the hash chain
the `announce_payments` activity appends, the announcements it was made from, and the payments
in SQL against the last state the chain recorded of each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.audit import verify_chain
from portico.models import Invoice, InvoiceAuditEvent, Payment, PaymentAnnouncement
from portico.services.billing.announcements import payment_facts


@dataclass(frozen=True)
class InvoiceAudit:
    """What `verify_invoice` found: `problems` empty means intact."""

    exists: bool
    events: int
    payments: int
    pending: int  # announcements committed but not yet made (the worker is behind or down)
    problems: list[str]


async def verify_invoice(
    sessions: async_sessionmaker[AsyncSession], invoice_id: int
) -> InvoiceAudit:
    async with sessions() as session:
        invoice = await session.get(Invoice, invoice_id)
        if invoice is None:
            return InvoiceAudit(False, 0, 0, 0, [f"invoice {invoice_id} does not exist"])
        events = list(
            await session.scalars(
                select(InvoiceAuditEvent)
                .where(InvoiceAuditEvent.invoice_id == invoice_id)
                .order_by(InvoiceAuditEvent.seq)
            )
        )
        notes = list(
            await session.scalars(
                select(PaymentAnnouncement)
                .where(PaymentAnnouncement.invoice_id == invoice_id)
                .order_by(PaymentAnnouncement.id)
            )
        )
        payments = list(
            await session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
            )
        )
    problems = [f"event #{p.seq}: {p.problem}" for p in verify_chain(events)]
    by_key = {event.event_key: event for event in events}
    unsettled: set[int] = set()  # payments whose latest change is not in the chain yet
    for note in notes:
        event = by_key.get(f"announcement-{note.id}")
        if event is None:
            if note.announced_at is not None:
                problems.append(f"the audit event of announcement {note.key} is missing")
            unsettled.add(note.data.get("payment", {}).get("id"))
            continue
        recorded = {**note.data, "announcement": note.key}
        if (event.type, event.actor, event.at, event.data) != (
            note.type,
            note.actor,
            note.at,
            recorded,
        ):
            problems.append(f"event #{event.seq} does not match announcement {note.key}")
    latest: dict[int, dict] = {}
    for event in events:
        facts = event.data.get("payment")
        if isinstance(facts, dict) and isinstance(facts.get("id"), int):
            latest[facts["id"]] = facts
    for payment in payments:
        if payment.id in unsettled:
            continue
        if payment.id not in latest:
            problems.append(f"payment {payment.id} is not in the audit trail")
        elif latest[payment.id] != payment_facts(payment):
            problems.append(f"payment {payment.id} differs from its last audit event")
    pending = sum(1 for note in notes if note.announced_at is None)
    return InvoiceAudit(True, len(events), len(payments), pending, problems)
