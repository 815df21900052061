"""Manual payments (check, cash, bank transfer) booked by staff, with an optional
Idempotency-Key that makes a retried request book nothing twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.errors import BadRequest, Conflict
from portico.ledger import balance_cents
from portico.models import Invoice, Payment, PaymentAnnouncement
from portico.money import format_money as money
from portico.portal_schemas import PaymentIn, PaymentRecordedOut
from portico.services.billing.announcements import (
    PaymentHandOff,
    announcement,
    invoice_facts,
    manual_key,
    manual_retry_hint,
    payment_facts,
)
from portico.services.billing.invoice_rows import (
    lock_invoice,
    owner_of,
    payment_webhook,
    payments_of,
    recompute,
)
from portico.services.billing.notices import payment_messages
from portico.services.billing.outcomes import PaymentOutcome
from portico.services.billing.shown import manual_payment_out
from portico.settings import Settings

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,200}$")


class ManualPayments:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        handoff: PaymentHandOff,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.handoff = handoff

    async def record(
        self,
        invoice_id: int,
        data: PaymentIn,
        idempotency_key: str | None = None,
        actor: str = "api",
    ) -> PaymentRecordedOut:
        """Book a check, cash or bank transfer and hand its receipt and staff notice to the
        invoice's workflow. With an Idempotency-Key a retried request (say after a 503: booked,
        not yet handed off) books nothing twice and completes the hand-off."""
        if idempotency_key is not None:
            if not IDEMPOTENCY_KEY.match(idempotency_key):
                raise BadRequest(
                    "Idempotency-Key must be 8 to 200 letters, digits or -_.:",
                    code="bad_idempotency_key",
                )
            earlier = await self._retry(invoice_id, data, idempotency_key)
            if earlier is not None:
                return earlier
        try:
            async with self.sessions() as session, session.begin():
                invoice = await lock_invoice(session, invoice_id)
                if invoice.status == "void":
                    raise Conflict("The invoice is void.", code="invoice_void")
                balance = balance_cents(invoice, await payments_of(session, invoice_id))
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
                payments = await recompute(self.settings, session, invoice)
                await payment_webhook(session, "payment.succeeded", payment)
                project, client = await owner_of(session, invoice)
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
            earlier = await self._retry(invoice_id, data, idempotency_key)
            if earlier is None:
                raise
            return earlier  # a concurrent request with the same key booked it
        await self.handoff.hand_off(note, invoice, manual_retry_hint(idempotency_key))
        return manual_payment_out(invoice, payment, payments)

    async def _retry(self, invoice_id: int, data: PaymentIn, key: str) -> PaymentRecordedOut | None:
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
            payments = await payments_of(session, invoice_id)
            note = await session.scalar(
                select(PaymentAnnouncement).where(PaymentAnnouncement.key == manual_key(payment.id))
            )
        if note is not None and note.announced_at is None:
            await self.handoff.hand_off(note, invoice, manual_retry_hint(key))
        return manual_payment_out(invoice, payment, payments)
