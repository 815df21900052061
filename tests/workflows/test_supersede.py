"""A newer document version marks an approved request `superseded`: the event is appended by an
activity, through the request's own workflow while it runs and through SupersedeWorkflow once it
has ended (time-skipping server, fake activities)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.services.gateway import TemporalGateway
from portico.settings import Settings
from tests.support.fakes import Recorder
from tests.workflows.test_approval_workflow import approve_request, client, make_input, wait_for
from workflows.approval import ApprovalWorkflow
from workflows.supersede import SupersedeWorkflow
from workflows.types import ApprovalInput, Supersession, supersede_workflow_id


@dataclass
class Request:
    rec: Recorder
    handle: WorkflowHandle
    inp: ApprovalInput
    gateway: TemporalGateway
    temporal: Client

    def change(self, document_id: int = 77) -> Supersession:
        return Supersession(
            approval_id=self.inp.approval_id,
            document_id=document_id,
            version=2,
            sha256="ef" * 32,
            reason="Superseded by version 2",
        )

    async def approve(self) -> None:
        await self.handle.execute_update(
            ApprovalWorkflow.approve,
            approve_request(self.inp.approvers[0].id, signature_name="Pat"),
        )


@asynccontextmanager
async def approval(env: WorkflowEnvironment) -> AsyncIterator[Request]:
    rec = Recorder()
    queue = f"supersede-{uuid.uuid4()}"
    approval_id = uuid.uuid4().int % 1_000_000
    inp = make_input(approval_id, await env.get_current_time(), routing="any", n=1)
    temporal = client(env)
    settings = Settings(PORTICO_TASK_QUEUE=queue)
    async with Worker(
        temporal,
        task_queue=queue,
        workflows=[ApprovalWorkflow, SupersedeWorkflow],
        activities=rec.activities(),
    ):
        handle = await temporal.start_workflow(
            ApprovalWorkflow.run, inp, id=f"approval-{approval_id}", task_queue=queue
        )
        await wait_for(lambda: rec.syncs)
        try:
            yield Request(rec, handle, inp, TemporalGateway(settings, temporal), temporal)
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")


def superseded(rec: Recorder) -> list[tuple[int, str, str]]:
    return [(a.approval_id, a.event.event_key, a.event.type) for a in rec.appended]


async def test_a_running_request_records_superseded_through_its_workflow_once(time_env):
    async with approval(time_env) as req:
        change = req.change()
        await req.gateway.supersede(change)
        await req.gateway.supersede(change)  # the same call again (a retried API request)
        await wait_for(lambda: req.rec.appended)
        await req.approve()
        result = await req.handle.result()  # completes: no handler is left unfinished
        assert result.status == "approved"
        assert superseded(req.rec) == [(req.inp.approval_id, "superseded:77", "superseded")]
        (appended,) = req.rec.appended
        assert appended.event.actor == "staff"
        assert appended.event.data == {
            "reason": "Superseded by version 2",
            "document_id": 77,
            "version": 2,
            "sha256": "ef" * 32,
        }
        # Nothing was started beside the request's own workflow.
        short = req.temporal.get_workflow_handle(supersede_workflow_id(req.inp.approval_id, 77))
        with pytest.raises(RPCError) as info:
            await short.describe()
        assert info.value.status == RPCStatusCode.NOT_FOUND


async def test_a_signal_while_the_request_finishes_is_handled_before_it_ends(time_env):
    async with approval(time_env) as req:
        await req.approve()  # the workflow now builds the signed PDF and sends the copies
        await req.gateway.supersede(req.change())
        assert (await req.handle.result()).status == "approved"
        await wait_for(lambda: req.rec.appended)
        assert superseded(req.rec) == [(req.inp.approval_id, "superseded:77", "superseded")]


async def test_an_ended_request_records_superseded_through_a_short_workflow(time_env):
    async with approval(time_env) as req:
        await req.approve()
        assert (await req.handle.result()).status == "approved"
        await req.gateway.supersede(req.change())
        short = req.temporal.get_workflow_handle(supersede_workflow_id(req.inp.approval_id, 77))
        await short.result()
        assert superseded(req.rec) == [(req.inp.approval_id, "superseded:77", "superseded")]
        # Sent again: the finished workflow's id is not reused, nothing more is appended.
        await req.gateway.supersede(req.change())
        assert (await short.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert len(req.rec.appended) == 1
        # Another version later is a new event.
        await req.gateway.supersede(req.change(document_id=78))
        await req.temporal.get_workflow_handle(
            supersede_workflow_id(req.inp.approval_id, 78)
        ).result()
        assert [a.event.event_key for a in req.rec.appended] == ["superseded:77", "superseded:78"]
