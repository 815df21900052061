"""Record AgreementWorkflow histories for the replay test, like record.py does for approvals.

.venv/bin/python -m tests.histories.record_agreement     # writes only missing files
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
from tests.workflows.test_agreement_workflow import Fakes, agreement_input, morning, until
from workflows.agreement import AgreementWorkflow
from workflows.types import CancelAgreement, ChangeReminder, MoveVisit, VisitDone

HERE = Path(__file__).parent / "agreement"
# `moved_on_business_day`: monthly_moved_then_cancelled again, after the patch
# `visit-move-business-day` (its move records the marker).
SCENARIOS = (
    "quarterly_completed_out_of_order",
    "monthly_moved_then_cancelled",
    "moved_on_business_day",
)


async def record(env: WorkflowEnvironment, name: str) -> None:
    path = HERE / f"{name}.json"
    if path.exists():
        return
    fakes = Fakes()
    client = with_converter(env.client)
    queue = f"record-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[AgreementWorkflow], activities=fakes.activities
    ):
        if name == "quarterly_completed_out_of_order":
            inp = await agreement_input(env, "quarter", 3, timedelta(days=20))
            handle = await client.start_workflow(
                AgreementWorkflow.run, inp, id=f"agreement-{name}", task_queue=queue
            )
            await until(env, morning(inp.visits[1].date) + timedelta(hours=1))
            for n in (2, 1):
                await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=n))
            await until(env, morning(inp.visits[2].date) + timedelta(hours=1))
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=3))
        else:
            inp = await agreement_input(env, "month", 6, timedelta(days=30))
            handle = await client.start_workflow(
                AgreementWorkflow.run, inp, id=f"agreement-{name}", task_queue=queue
            )
            await handle.execute_update(
                AgreementWorkflow.move_visit,
                MoveVisit(n=1, date=inp.visits[0].date + timedelta(days=2)),
            )
            await handle.execute_update(AgreementWorkflow.change_reminder, ChangeReminder(3))
            await until(env, morning(inp.visits[0].date) + timedelta(days=3))
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=1))
            await until(env, morning(inp.visits[1].date) - timedelta(days=1))
            await handle.execute_update(AgreementWorkflow.cancel, CancelAgreement(reason="Moved"))
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
