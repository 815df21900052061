"""Record the approval histories the replay test (tests/workflows/test_replay.py) checks.

    .venv/bin/python -m tests.histories.record                 # writes only missing files
    .venv/bin/python -m tests.histories.record --suffix -v2    # a new generation, beside the old
    .venv/bin/python -m tests.histories.record --force         # rewrites them all (rarely right)

Each scenario runs ApprovalWorkflow on the time-skipping test server with the fake activities
(tests/workflows/fakes.py) and saves the history as `tests/histories/<name>.json`. The files
are the versions of the workflow that real approvals may still be running (an approval can stay
open for 180 days), so they are added to, never re-recorded over: see docs/versioning.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.temporal import with_converter
from tests.conftest import venv_binary
from tests.support.fakes import Recorder
from workflows import search_attributes as sa
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    ApprovalInput,
    ApproveRequest,
    ApproverInput,
    DeclineRequest,
    DocumentInfo,
    Evidence,
    ExtendRequest,
    StaffContact,
    Supersession,
    ViewedSignal,
    VoidRequest,
)

HERE = Path(__file__).parent


@dataclass
class Scenario:
    name: str
    description: str
    routing: str
    n: int
    drive: Callable[[WorkflowEnvironment, WorkflowHandle, ApprovalInput], Awaitable[None]]
    expires_in_days: int | None = 14
    remind_every_days: int | None = None
    # An update delivered with the start (update-with-start: in the workflow's first task).
    with_start: Callable[[ApprovalInput], tuple[Any, Any]] | None = None
    # Started as the API starts it since issue 17: `created` already written.
    created_recorded: bool = False
    history_limit: int = 2000  # a small one makes the run continue as new
    # `decisions_answered_first` and `signed_pdf_with_event`, as the API starts runs since
    answered_first: bool = False


def approval_input(approval_id: int, created_at: datetime, scenario: Scenario) -> ApprovalInput:
    return ApprovalInput(
        approval_id=approval_id,
        document=DocumentInfo(
            id=7,
            kind="change_order",
            title="Extra outlets",
            number="CO-17",
            amount_cents=125000,
            client_name="Client Co",
            project_name="Kitchen remodel",
        ),
        approvers=[
            ApproverInput(
                id=approval_id * 10 + i,
                name=f"Approver {i}",
                email=f"a{i}@client.test",
                phone=f"+1555000000{i}",
                sign_url=f"http://portico.test/s/token{i}",
                sms_code=f"{4820 + i}",
            )
            for i in range(1, scenario.n + 1)
        ],
        routing=scenario.routing,
        created_at=created_at,
        expires_in_days=scenario.expires_in_days,
        remind_every_days=scenario.remind_every_days,
        message="Please sign by Friday",
        notify_staff=[StaffContact(email="office@firm.test", phone="+15559990000")],
        company_name="Acme Builders",
        created_recorded=scenario.created_recorded,
        sent_with_email=scenario.created_recorded,  # the API sets both
        history_limit=scenario.history_limit,
        decisions_answered_first=scenario.answered_first,
        signed_pdf_with_event=scenario.answered_first,
    )


def approve(inp: ApprovalInput, index: int, **kw: object) -> ApproveRequest:
    approver = inp.approvers[index]
    return ApproveRequest(
        approver_id=approver.id,
        signature_name=approver.name,
        consent=True,
        evidence=Evidence(channel="web", ip="203.0.113.9", user_agent="recorder"),
        **kw,  # type: ignore[arg-type]
    )


async def sequential_approved(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.signal(ApprovalWorkflow.viewed, ViewedSignal(approver_id=inp.approvers[0].id))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0, notes="Fine by me"))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 1))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 2))


async def any_approved_with_skips(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    sms = Evidence(channel="sms", phone=inp.approvers[1].phone, message_sid="SM1", text="YES 4822")
    await h.execute_update(
        ApprovalWorkflow.approve, ApproveRequest(approver_id=inp.approvers[1].id, evidence=sms)
    )


async def all_declined(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0))
    await h.execute_update(
        ApprovalWorkflow.decline,
        DeclineRequest(approver_id=inp.approvers[1].id, reason="Too expensive"),
    )


async def expired_with_reminders(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await env.sleep(timedelta(days=8))  # reminders on days 2, 4, 6, a warning on day 6, expiry


async def voided(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await env.sleep(timedelta(days=1))
    await h.execute_update(
        ApprovalWorkflow.void, VoidRequest(reason="Scope changed", notify_client=True)
    )


async def extended(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0))
    await env.sleep(timedelta(days=2))
    await h.execute_update(ApprovalWorkflow.extend, ExtendRequest(days=5, actor="staff:cli"))
    await env.sleep(timedelta(days=3))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 1))


async def nothing(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput) -> None:
    pass


async def approved_second(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 1))


async def superseded_approved(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.signal(
        ApprovalWorkflow.superseded,
        Supersession(inp.approval_id, 8, 2, "ef" * 32, "Superseded by version 2"),
    )
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0))
    await h.signal(  # while it finishes: the run waits for the handler
        ApprovalWorkflow.superseded,
        Supersession(inp.approval_id, 9, 3, "fe" * 32, "Superseded by version 3"),
    )


async def all_declined_viewed(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.signal(ApprovalWorkflow.viewed, ViewedSignal(approver_id=inp.approvers[0].id))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 2))
    await h.execute_update(
        ApprovalWorkflow.decline,
        DeclineRequest(approver_id=inp.approvers[1].id, reason="Too expensive"),
    )


async def in_turn_viewed(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0, notes="Fine"))
    await h.signal(ApprovalWorkflow.viewed, ViewedSignal(approver_id=inp.approvers[1].id))
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 1))


async def in_turn(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    for index in range(len(inp.approvers)):
        await h.execute_update(ApprovalWorkflow.approve, approve(inp, index))


async def continued_then_approved(env: WorkflowEnvironment, h: WorkflowHandle, inp: ApprovalInput):
    await h.execute_update(ApprovalWorkflow.approve, approve(inp, 0))
    await env.sleep(timedelta(days=6, hours=12))  # daily reminders: it continues as new
    latest = env.client.get_workflow_handle(h.id)  # the handle names the first run
    await latest.execute_update(ApprovalWorkflow.approve, approve(inp, 1))


SCENARIOS = [
    Scenario("sequential_approved", "3 approvers in turn, a view, notes", "sequential", 3,
             sequential_approved),
    Scenario("any_approved_with_skips", "the 2nd of 3 approves by SMS, the others are skipped",
             "any", 3, any_approved_with_skips),
    Scenario("all_declined", "one approves, the next declines with a reason", "all", 3,
             all_declined),
    Scenario("expired_with_reminders", "reminders every 2 days, warning, expiry after 7 days",
             "any", 1, expired_with_reminders, expires_in_days=7, remind_every_days=2),
    Scenario("voided", "voided after a day, approvers told", "sequential", 2, voided),
    Scenario("extended", "extended by 5 days past the first deadline, then approved",
             "sequential", 2, extended, expires_in_days=3),
    Scenario("approved_in_first_task", "approver 1 signs with the start (update-with-start); "
             "their queued request is dropped, approver 2 signs", "sequential", 2, approved_second,
             with_start=lambda inp: (ApprovalWorkflow.approve, approve(inp, 0))),
    Scenario("voided_in_first_task", "voided with the start: no request goes out", "all", 2,
             nothing, with_start=lambda inp: (
                 ApprovalWorkflow.void, VoidRequest(reason="Sent by mistake", notify_client=True))),
    Scenario("superseded_approved", "a newer version is signalled while open and while the "
             "approved request finishes", "any", 1, superseded_approved),
    Scenario("api_created_in_turn", "started as the API starts it (`created` written, the "
             "request emails record `sent`), 2 approve in turn", "sequential", 2, in_turn,
             created_recorded=True),
    Scenario("continued_then_approved", "daily reminders past a small history limit: the last "
             "of the runs (carried state), approved in it", "all", 2, continued_then_approved,
             expires_in_days=12, remind_every_days=1, created_recorded=True, history_limit=60),
    Scenario("decisions_answered_first", "started as the API starts it since the decisions "
             "answer first: a view, one approves, the next declines", "all", 3, all_declined_viewed,
             created_recorded=True, answered_first=True),
    Scenario("signed_pdf_with_event", "as the API starts it today: 2 approve in turn, a view "
             "between, the signed PDF's activity writes its event", "sequential", 2,
             in_turn_viewed, created_recorded=True, answered_first=True),
]  # fmt: skip


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    """The test server can't list attributes (so no ensure_search_attributes) but can add them."""
    attributes = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in sa.ALL_KEYS
    }
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=env.client.namespace, search_attributes=attributes)
    )


async def record(env: WorkflowEnvironment, scenario: Scenario, approval_id: int) -> str:
    """Run one scenario to completion; its history as JSON."""
    client: Client = with_converter(env.client)
    queue = f"record-{uuid.uuid4()}"
    inp = approval_input(approval_id, await env.get_current_time(), scenario)
    async with Worker(
        client, task_queue=queue, workflows=[ApprovalWorkflow], activities=Recorder().activities()
    ):
        start: dict[str, Any] = dict(
            id=f"approval-{approval_id}",
            task_queue=queue,
            search_attributes=sa.initial(
                "pending", inp.document.kind, inp.document.number, inp.document.client_name,
                inp.document.amount_cents,
            ),
        )  # fmt: skip
        if scenario.with_start:
            update, argument = scenario.with_start(inp)
            operation = WithStartWorkflowOperation(
                ApprovalWorkflow.run,
                inp,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **start,
            )
            await client.execute_update_with_start_workflow(
                update, argument, start_workflow_operation=operation
            )
            handle = await operation.workflow_handle()
        else:
            handle = await client.start_workflow(ApprovalWorkflow.run, inp, **start)
        await asyncio.sleep(0.5)  # let the first notifications go out, as in real life
        await scenario.drive(env, handle, inp)
        result = await handle.result()
    # the last run's (a run that continued as new ends with that, not a completion)
    history = await client.get_workflow_handle(handle.id).fetch_history()
    print(f"{scenario.name}: {result.status}, {len(history.events)} events")
    return history.to_json()


async def main(force: bool = False, only: list[str] | None = None, suffix: str = "") -> None:
    for number, scenario in enumerate(SCENARIOS, start=1):
        path = HERE / f"{scenario.name}{suffix}.json"
        if (path.exists() and not force) or (only and scenario.name not in only):
            continue
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=venv_binary("temporal-test-server")
        )
        try:
            await register_search_attributes(env)
            text = await record(env, scenario, 1000 + number)
        finally:
            await env.shutdown()
        path.write_text(json.dumps(json.loads(text), indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rewrite existing files")
    parser.add_argument("--suffix", default="", help="file name suffix, e.g. -v2")
    parser.add_argument("names", nargs="*", help="only these scenarios")
    args = parser.parse_args()
    asyncio.run(main(force=args.force, only=args.names, suffix=args.suffix))
