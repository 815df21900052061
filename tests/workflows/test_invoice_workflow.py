"""InvoiceWorkflow on the time-skipping server: the invoice email, then overdue reminders every
N days while a balance is due; payment announcements made in order, once; a paid invoice's
workflow waiting out the refund window, a refund that reopens it restarting its reminders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.temporal import with_converter
from tests.workflows.test_approval_workflow import wait_for
from workflows.invoice import PAID_WINDOW, InvoiceWorkflow
from workflows.types import (
    AnnouncePayments,
    AnnounceResult,
    InvoiceInput,
    InvoiceNotice,
    PaymentAnnounced,
)


@dataclass
class Notices:
    """Fake `invoice_notice` and `announce_payments`: record each call and answer the
    invoice's status (as the test sets it: what SQL would say)."""

    sent: list[InvoiceNotice] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)
    status: str = "open"

    @activity.defn(name="invoice_notice")
    async def invoice_notice(self, notice: InvoiceNotice) -> str:
        if self.status == "open":
            self.sent.append(notice)
        return self.status

    @activity.defn(name="announce_payments")
    async def announce_payments(self, inp: AnnouncePayments) -> AnnounceResult:
        self.announced.append(inp.announcement_id)
        return AnnounceResult(status=self.status)

    def kinds(self) -> list[str]:
        return [n.kind for n in self.sent]


@asynccontextmanager
async def started(
    env: WorkflowEnvironment, due_in: timedelta, **kw
) -> AsyncIterator[tuple[WorkflowHandle, Notices]]:
    notices = Notices()
    queue = f"invoices-{uuid.uuid4()}"
    client = with_converter(env.client)
    now = await env.get_current_time()
    inp = InvoiceInput(invoice_id=7, number="INV-7", due_at=now + due_in, **kw)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[InvoiceWorkflow],
        activities=[notices.invoice_notice, notices.announce_payments],
    ):
        handle = await client.start_workflow(
            InvoiceWorkflow.run, inp, id=f"invoice-{uuid.uuid4()}", task_queue=queue
        )
        yield handle, notices


async def test_reminds_every_n_days_after_the_due_date_until_paid(time_env):
    async with started(time_env, timedelta(days=3), remind_every_days=7) as (handle, notices):
        await wait_for(lambda: notices.kinds() == ["issued"])
        await time_env.sleep(timedelta(days=2))
        assert notices.kinds() == ["issued"]  # not overdue yet
        await time_env.sleep(timedelta(days=1, hours=1))
        await wait_for(lambda: notices.kinds() == ["issued", "reminder"])
        await time_env.sleep(timedelta(days=6))
        assert notices.kinds() == ["issued", "reminder"]
        await time_env.sleep(timedelta(days=1))
        await wait_for(lambda: notices.kinds() == ["issued", "reminder", "reminder"])
        assert [n.seq for n in notices.sent] == [0, 1, 2]
        state = await handle.query(InvoiceWorkflow.state)
        assert state.reminders_sent == 2 and state.next_reminder_at is not None
        await handle.signal(InvoiceWorkflow.paid)
        result = await handle.result()  # after the refund window
        assert result.status == "paid" and result.reminders_sent == 2
        assert notices.kinds() == ["issued", "reminder", "reminder"]


async def test_void_before_the_due_date_sends_no_reminder(time_env):
    async with started(time_env, timedelta(days=10), remind_every_days=3) as (handle, notices):
        await wait_for(lambda: notices.kinds() == ["issued"])
        await time_env.sleep(timedelta(days=5))
        await handle.signal(InvoiceWorkflow.void)
        result = await handle.result()
        assert result.status == "void" and result.reminders_sent == 0
        assert notices.kinds() == ["issued"]


async def test_a_missed_signal_costs_one_check_not_a_reminder(time_env):
    async with started(time_env, timedelta(days=1), remind_every_days=2) as (handle, notices):
        await wait_for(lambda: notices.kinds() == ["issued"])
        notices.status = "paid"  # paid, but the `paid` signal never arrived
        result = await handle.result()  # time skips to the first reminder check
        assert result.status == "paid"
        assert notices.kinds() == ["issued"]


async def test_without_reminders_it_waits_for_the_end(time_env):
    async with started(
        time_env, timedelta(days=1), remind_every_days=None, notify_client=False
    ) as (handle, notices):
        await time_env.sleep(timedelta(days=30))
        assert notices.sent == []
        await handle.signal(InvoiceWorkflow.paid)
        assert (await handle.result()).status == "paid"


async def announce(handle: WorkflowHandle, announcement_id: int) -> None:
    await handle.signal(InvoiceWorkflow.announce, PaymentAnnounced(announcement_id))


async def test_a_refund_that_reopens_a_paid_invoice_restarts_its_reminders(time_env):
    async with started(time_env, timedelta(days=3), remind_every_days=7) as (handle, notices):
        await wait_for(lambda: notices.kinds() == ["issued"])
        notices.status = "paid"  # a card payment, committed with announcement 1
        await announce(handle, 1)
        await wait_for(lambda: notices.announced == [1])
        await time_env.sleep(timedelta(days=30))
        state = await handle.query(InvoiceWorkflow.state)
        assert state.status == "paid" and state.next_reminder_at is None
        assert notices.kinds() == ["issued"]  # no reminder while paid
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        notices.status = "open"  # refunded in full: announcement 2
        await announce(handle, 2)
        await wait_for(lambda: notices.announced == [1, 2])
        state = await handle.query(InvoiceWorkflow.state)
        # reminders 1-4 (days 3, 10, 17, 24) fell while it was paid: the next is day 31
        start = state.next_reminder_at - timedelta(days=31)
        assert state.status == "open" and state.reminders_sent == 4
        assert notices.kinds() == ["issued"]  # not sent late
        await time_env.sleep(timedelta(days=1, hours=1))
        await wait_for(lambda: notices.kinds() == ["issued", "reminder"])
        assert notices.sent[-1].seq == 5
        await time_env.sleep(timedelta(days=7))
        await wait_for(lambda: [n.seq for n in notices.sent] == [0, 5, 6])
        assert (await handle.query(InvoiceWorkflow.state)).next_reminder_at == start + timedelta(
            days=45
        )

        notices.status = "void"
        await handle.signal(InvoiceWorkflow.void)
        result = await handle.result()
        assert result.status == "void" and result.reminders_sent == 6


async def test_a_paid_invoice_ends_after_the_refund_window(time_env):
    async with started(time_env, timedelta(days=3), remind_every_days=7) as (handle, notices):
        await wait_for(lambda: notices.kinds() == ["issued"])
        notices.status = "paid"
        await announce(handle, 1)
        await wait_for(lambda: notices.announced == [1])
        await time_env.sleep(PAID_WINDOW - timedelta(days=1))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        result = await handle.result()
        assert result.status == "paid" and notices.kinds() == ["issued"]


async def test_announcements_are_made_once_in_order_and_before_it_ends(time_env):
    async with started(
        time_env, timedelta(days=3), remind_every_days=None, notify_client=False
    ) as (handle, notices):
        for n in (1, 2, 2, 3):  # a redelivered event hands 2 off twice
            await announce(handle, n)
        await wait_for(lambda: notices.announced == [1, 2, 3])
        await announce(handle, 2)  # once more, after it was made
        await announce(handle, 1)
        notices.status = "void"
        await announce(handle, 4)  # a payment flagged on the voided invoice
        await handle.signal(InvoiceWorkflow.void)
        result = await handle.result()
        assert result.status == "void" and notices.announced == [1, 2, 3, 4]
