"""What a committed payment change announces (a `payment_announcements` row: the invoice audit
chain's event and the emails), and handing it to the invoice's workflow, which makes it.

A row is handed off right after its transaction commits (signal-with-start `invoice-{id}`). If
Temporal does not answer, the request answers 503 and the row waits: a retry (a Stripe
redelivery, the same Idempotency-Key) hands it off again, and so does the worker's sweep of rows
never handed off (`PaymentHandOff.sweep_forever`, every PORTICO_OUTBOX_SWEEP_SECONDS), which
also covers a manual payment sent without an Idempotency-Key. Handing one row off twice is
harmless: the workflow drops an announcement it has, and the activity skips what is sent."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from portico.errors import Unavailable
from portico.ledger import overdue_at
from portico.models import Invoice, Payment, PaymentAnnouncement
from portico.services import handoff
from portico.services.billing.notices import (
    adjustment_messages,
    payment_messages,
    review_messages,
)
from portico.services.billing.outcomes import AdjustmentOutcome, PaymentOutcome, Review
from portico.services.gateway import TemporalGateway
from portico.settings import Settings
from portico.stripe_events import EventEnvelope
from workflows.types import (
    INVOICE_ANNOUNCE,
    INVOICE_WORKFLOW,
    PAYMENT_REVIEW_WORKFLOW,
    AnnouncePayments,
    EmailMessage,
    InvoiceInput,
    PaymentAnnounced,
)

log = logging.getLogger(__name__)

# how long a payment hand-off waits for Temporal before answering 503
HAND_OFF_TIMEOUT = timedelta(seconds=10)


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
        "do not book it again; the worker sends them once Temporal answers again "
        "(send an Idempotency-Key to make a retry safe)."
    )


class PaymentHandOff:
    """Gives committed announcements to their workflows: after the commit (web) and by
    sweeping (worker)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal

    async def hand_off(
        self, note: PaymentAnnouncement, invoice: Invoice | None, retry: str = STRIPE_RETRIES
    ) -> None:
        """Give a committed announcement to its workflow: signal-with-start `invoice-{id}`
        (which starts a new run if the last one ended), or a PaymentReviewWorkflow for a
        flagged event naming no invoice. Unavailable (503) when Temporal does not answer, so
        the caller retries (or the sweep does) and the same row is handed off again."""
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
            else:
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
        await self._handed_off(note.id)

    async def _handed_off(self, note_id: int) -> None:
        """Note the hand-off, so the sweep leaves the row alone (best effort: a row not noted
        is only handed off once more)."""
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(PaymentAnnouncement)
                    .where(PaymentAnnouncement.id == note_id)
                    .values(handed_off_at=datetime.now(UTC))
                )
        except Exception as err:
            log.warning("payment announcement %s handed off, not noted: %s", note_id, err)

    async def sweep(self, older_than: timedelta) -> int:
        """Hand off the announcements committed at least `older_than` ago that were never
        handed off (nor announced); how many were, stopping at the first Temporal failure."""
        rows = await handoff.due_rows(
            self.sessions,
            PaymentAnnouncement,
            older_than,
            waiting=PaymentAnnouncement.announced_at.is_(None),
            created=PaymentAnnouncement.at,
        )
        done = 0
        for note in rows:
            invoice = None
            if note.invoice_id is not None:
                async with self.sessions() as session:
                    invoice = await session.get(Invoice, note.invoice_id)
            try:
                await self.hand_off(note, invoice)
            except Unavailable:
                break  # Temporal is down: the next sweep tries again
            done += 1
        return done

    async def sweep_forever(self) -> None:
        """The worker's sweep, every PORTICO_OUTBOX_SWEEP_SECONDS until cancelled."""
        every = timedelta(seconds=self.settings.outbox_sweep_seconds)
        await handoff.sweep_forever(lambda: self.sweep(every), every, handoff.SWEEP_BATCH)
