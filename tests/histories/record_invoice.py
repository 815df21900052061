"""Record InvoiceWorkflow histories for the replay test, like record.py does for approvals.

.venv/bin/python -m tests.histories.record_invoice     # writes only missing files
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.temporal import with_converter
from tests.conftest import venv_binary
from tests.workflows.test_invoice_workflow import Notices
from workflows.invoice import InvoiceWorkflow
from workflows.types import InvoiceInput, PaymentAnnounced

HERE = Path(__file__).parent / "invoice"
SCENARIOS = ("paid_after_reminders", "voided_before_due", "refund_reopens_reminders")


async def record(env: WorkflowEnvironment, name: str) -> None:
    path = HERE / f"{name}.json"
    if path.exists():
        return
    notices = Notices()
    client = with_converter(env.client)
    queue = f"record-{uuid.uuid4()}"
    now = await env.get_current_time()
    inp = InvoiceInput(
        invoice_id=7, number="INV-7", due_at=now + timedelta(days=3), remind_every_days=7
    )
    async with Worker(
        client,
        task_queue=queue,
        workflows=[InvoiceWorkflow],
        activities=[notices.invoice_notice, notices.announce_payments],
    ):
        handle = await client.start_workflow(
            InvoiceWorkflow.run, inp, id=f"invoice-{name}", task_queue=queue
        )
        if name == "paid_after_reminders":
            await env.sleep(timedelta(days=11))  # due + two reminders
            await handle.signal(InvoiceWorkflow.paid)
        elif name == "refund_reopens_reminders":  # since the durable-payments patch
            await env.sleep(timedelta(days=4))  # due + one reminder
            notices.status = "paid"
            await handle.signal(InvoiceWorkflow.announce, PaymentAnnounced(1))
            await env.sleep(timedelta(days=20))
            notices.status = "open"  # refunded
            await handle.signal(InvoiceWorkflow.announce, PaymentAnnounced(2))
            await env.sleep(timedelta(days=10))  # the reminders start again
            notices.status = "void"
            await handle.signal(InvoiceWorkflow.void)
        else:
            await env.sleep(timedelta(days=1))
            await handle.signal(InvoiceWorkflow.void)
        await handle.result()
        history = await handle.fetch_history()
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"recorded {path}")


async def main() -> None:
    HERE.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server")
    )
    try:
        for name in SCENARIOS:
            await record(env, name)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
