"""InvoiceWorkflow on the time-skipping server: the invoice email, then overdue reminders every
N days until `paid` or `void` (or until the reminder activity reports the invoice settled)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.temporal import with_converter
from tests.workflows.test_approval_workflow import wait_for
from workflows.invoice import InvoiceWorkflow
from workflows.types import InvoiceInput, InvoiceNotice


@dataclass
class Notices:
    """A fake `invoice_notice`: records each notice and answers the invoice's status."""

    sent: list[InvoiceNotice] = field(default_factory=list)
    status: str = "open"

    @activity.defn(name="invoice_notice")
    async def invoice_notice(self, notice: InvoiceNotice) -> str:
        if self.status == "open":
            self.sent.append(notice)
        return self.status

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
        client, task_queue=queue, workflows=[InvoiceWorkflow], activities=[notices.invoice_notice]
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
        result = await handle.result()
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
