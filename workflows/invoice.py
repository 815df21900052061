"""InvoiceWorkflow: one per invoice (workflow id `invoice-{id}`): emails the invoice, waits for
the due date, then reminds every N days until it is paid or voided.

The SQL row is the truth about money (payments are applied by the web layer, in one transaction
with their Stripe event); this workflow only owns the timing. `paid` and `void` signals end it
early, and every reminder activity reports the invoice's current status, so a lost signal
costs at most one check, never a reminder for a settled invoice.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.types import INVOICE_WORKFLOW, InvoiceInput, InvoiceNotice, InvoiceState

SETTLED = ("paid", "void")
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidRecipient", "UnknownInvoice"],
)


@workflow.defn(name=INVOICE_WORKFLOW)
class InvoiceWorkflow:
    @workflow.init
    def __init__(self, inp: InvoiceInput) -> None:
        self._inp = inp
        self._status = "open"
        self._reminders = inp.reminders_sent
        self._next: datetime | None = None

    @workflow.run
    async def run(self, inp: InvoiceInput) -> InvoiceState:
        if inp.notify_client and not inp.issued_sent:
            await self._notice("issued", 0)
        if inp.remind_every_days:
            step = timedelta(days=inp.remind_every_days)
            self._next = inp.due_at + step * self._reminders
            while self._status not in SETTLED:
                remaining = self._next - workflow.now()
                if remaining > timedelta(0):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await workflow.wait_condition(
                            lambda: self._status in SETTLED, timeout=remaining
                        )
                    if self._status in SETTLED:
                        break
                self._reminders += 1
                await self._notice("reminder", self._reminders)
                self._next = self._next + step
                if workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        replace(inp, reminders_sent=self._reminders, issued_sent=True)
                    )
        else:
            await workflow.wait_condition(lambda: self._status in SETTLED)
        self._next = None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _notice(self, kind: str, seq: int) -> None:
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
            return
        if status in SETTLED:
            self._status = status

    @workflow.signal
    def paid(self) -> None:
        """The invoice is fully paid: no more reminders."""
        self._status = "paid"

    @workflow.signal
    def void(self) -> None:
        self._status = "void"

    @workflow.query
    def state(self) -> InvoiceState:
        return InvoiceState(
            invoice_id=self._inp.invoice_id,
            status=self._status,
            reminders_sent=self._reminders,
            next_reminder_at=self._next,
        )
