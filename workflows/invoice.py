"""InvoiceWorkflow: one per invoice (workflow id `invoice-{id}`): emails the invoice, waits for
the due date, reminds every N days while a balance is due, and announces its payments.

The SQL row is the truth about money (payments are applied by the web layer, in one transaction
with their Stripe event and a `payment_announcements` row); this workflow owns the timing and
the announcements. The web layer hands each committed payment change to it with
signal-with-start (`announce`), and the `announce_payments` activity sends the receipt and the
staff notices and appends the invoice's audit chain. Every activity reports the invoice's
current status, so a lost or late signal costs at most one check.

Runs started since the `durable-payments` patch keep running while the invoice is paid, so a
refund or a lost dispute that reopens it restarts its reminders; they end when it is void, or
PAID_WINDOW after it was paid (a later Stripe event starts a new run through the same
hand-off). Runs started before the patch end when paid or void, as they always did; the first
announcement they receive moves them onto the new path (continue-as-new).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.types import (
    INVOICE_ANNOUNCE,
    INVOICE_WORKFLOW,
    PAYMENT_REVIEW_WORKFLOW,
    AnnouncePayments,
    AnnounceResult,
    InvoiceInput,
    InvoiceNotice,
    InvoiceState,
    PaymentAnnounced,
)

SETTLED = ("paid", "void")
DURABLE_PAYMENTS = "durable-payments"
# How long a paid invoice's workflow waits for a refund or a chargeback: Stripe takes refunds
# for 180 days and card networks open most disputes within 120 days of the charge.
PAID_WINDOW = timedelta(days=180)
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidRecipient", "UnknownInvoice"],
)
# SMTP down for a while: keep trying, 1 s doubling to every 5 minutes, for up to 3 days
ANNOUNCE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["UnknownAnnouncement"],
)


async def announce_payments(inp: AnnouncePayments) -> AnnounceResult:
    """Run the `announce_payments` activity (from a workflow)."""
    return await workflow.execute_activity(
        "announce_payments",
        inp,
        start_to_close_timeout=timedelta(seconds=120),
        schedule_to_close_timeout=timedelta(days=3),
        retry_policy=ANNOUNCE_RETRY,
        result_type=AnnounceResult,
    )


@workflow.defn(name=INVOICE_WORKFLOW)
class InvoiceWorkflow:
    @workflow.init
    def __init__(self, inp: InvoiceInput) -> None:
        self._inp = inp
        self._status = inp.status
        self._reminders = inp.reminders_sent
        self._next: datetime | None = None
        self._paid_at = inp.paid_at
        self._pending: list[int] = list(inp.pending)
        self._announced_upto = inp.announced_upto

    @workflow.run
    async def run(self, inp: InvoiceInput) -> InvoiceState:
        if workflow.patched(DURABLE_PAYMENTS):
            return await self._run_durable(inp)
        return await self._run_legacy(inp)

    # --- since the durable-payments patch ----------------------------------------------------

    async def _run_durable(self, inp: InvoiceInput) -> InvoiceState:
        if inp.notify_client and not inp.issued_sent:
            self._seen(await self._notice("issued", 0))
        if inp.resumed:
            self._skip_missed()
        while True:
            while self._pending:
                await self._announce(self._pending[0])
                self._pending.pop(0)
            if self._status == "void":
                break
            now = workflow.now()
            until = self._deadline()
            if until is not None and until <= now:
                if self._status == "paid":
                    break  # paid, and past the refund/dispute window
                self._reminders += 1
                self._seen(await self._notice("reminder", self._reminders))
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(
                        functools.partial(self._woken, self._status),
                        timeout=None if until is None else until - now,
                    )
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carried_over(inp))
        self._next = None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    def _woken(self, seen: str) -> bool:
        """Something to do before the deadline: an announcement, or a status signal."""
        return bool(self._pending) or self._status != seen

    def _deadline(self) -> datetime | None:
        """The next moment to act: the next reminder while a balance is due, the end of the
        refund/dispute window once paid; None: wait for a signal."""
        if self._status == "paid":
            self._next = None
            return (self._paid_at or workflow.now()) + PAID_WINDOW
        step = self._step()
        self._next = None if step is None else self._inp.due_at + step * self._reminders
        return self._next

    def _step(self) -> timedelta | None:
        days = self._inp.remind_every_days
        return timedelta(days=days) if days else None

    def _seen(self, status: str) -> None:
        """Take the invoice's status as SQL (or a signal) reports it. Void is final: a notice
        that read the row before it was voided does not undo the `void` signal."""
        if status == self._status or self._status == "void":
            return
        if status == "paid":
            self._paid_at = workflow.now()
        elif self._status == "paid" and status != "void":  # reopened: a refund, a chargeback
            self._paid_at = None
            self._skip_missed()
        self._status = status

    def _skip_missed(self) -> None:
        """Reminders whose time passed while the invoice was paid are not sent late: the next
        one is the schedule's next slot (reminder n is due at due_at + (n-1) steps)."""
        step = self._step()
        elapsed = workflow.now() - self._inp.due_at
        if step is not None and elapsed >= timedelta(0):
            self._reminders = max(self._reminders, elapsed // step + 1)

    async def _announce(self, announcement_id: int) -> None:
        try:
            result = await announce_payments(
                AnnouncePayments(invoice_id=self._inp.invoice_id, announcement_id=announcement_id)
            )
        except ActivityError as err:  # the invoice's next announcement retries it
            workflow.logger.warning(
                "invoice %s announcement %s not made: %s", self._inp.number, announcement_id, err
            )
            return
        self._announced_upto = max(self._announced_upto, announcement_id)
        if result.status:
            self._seen(result.status)

    def _carried_over(self, inp: InvoiceInput) -> InvoiceInput:
        return replace(
            inp,
            reminders_sent=self._reminders,
            issued_sent=True,
            status=self._status,
            paid_at=self._paid_at,
            pending=list(self._pending),
            announced_upto=self._announced_upto,
            resumed=False,
        )

    # --- runs started before the patch ------------------------------------------------------

    async def _run_legacy(self, inp: InvoiceInput) -> InvoiceState:
        """The original schedule, ending when paid or void; an announcement (which only
        today's web layer sends) moves the run onto the durable path."""

        def stop() -> bool:
            return self._status in SETTLED or bool(self._pending)

        if inp.notify_client and not inp.issued_sent:
            await self._legacy_notice("issued", 0)
        if inp.remind_every_days:
            step = timedelta(days=inp.remind_every_days)
            self._next = inp.due_at + step * self._reminders
            while not stop():
                remaining = self._next - workflow.now()
                if remaining > timedelta(0):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await workflow.wait_condition(stop, timeout=remaining)
                    if stop():
                        break
                self._reminders += 1
                await self._legacy_notice("reminder", self._reminders)
                self._next = self._next + step
                if workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        replace(inp, reminders_sent=self._reminders, issued_sent=True)
                    )
        else:
            await workflow.wait_condition(stop)
        if self._pending:
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._carried_over(inp))
        self._next = None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _legacy_notice(self, kind: str, seq: int) -> None:
        status = await self._notice(kind, seq)
        if status in SETTLED:
            self._status = status

    # --- shared -----------------------------------------------------------------------------

    async def _notice(self, kind: str, seq: int) -> str:
        """Email the client (issued / overdue reminder); the invoice's status, or the last one
        seen when the notice could not be sent."""
        try:
            status: str = await workflow.execute_activity(
                "invoice_notice",
                InvoiceNotice(invoice_id=self._inp.invoice_id, kind=kind, seq=seq),
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=NOTICE_RETRY,
                result_type=str,
            )
        except ActivityError as err:  # undeliverable: keep the schedule going
            workflow.logger.warning("invoice %s %s not sent: %s", self._inp.number, kind, err)
            return self._status
        return status

    @workflow.signal(name=INVOICE_ANNOUNCE)
    def announce(self, note: PaymentAnnounced) -> None:
        """A payment change was committed: announce it. A repeated hand-off is dropped (an
        announcement up to `_announced_upto` is made: the activity makes all older ones)."""
        if (
            note.announcement_id > self._announced_upto
            and note.announcement_id not in self._pending
        ):
            self._pending.append(note.announcement_id)

    @workflow.signal
    def paid(self) -> None:
        """The invoice is fully paid: no more reminders."""
        self._seen("paid")

    @workflow.signal
    def void(self) -> None:
        self._seen("void")

    @workflow.query
    def state(self) -> InvoiceState:
        return InvoiceState(
            invoice_id=self._inp.invoice_id,
            status=self._status,
            reminders_sent=self._reminders,
            next_reminder_at=self._next,
        )


@workflow.defn(name=PAYMENT_REVIEW_WORKFLOW)
class PaymentReviewWorkflow:
    """The staff notice of a flagged Stripe event that names no invoice Portico has (id
    `payment-review-{announcement id}`): the same activity, once."""

    @workflow.run
    async def run(self, inp: AnnouncePayments) -> AnnounceResult:
        return await announce_payments(inp)
