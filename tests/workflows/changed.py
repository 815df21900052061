"""A careless change to ApprovalWorkflow, for test_replay: an extra timer before anything
else, without `workflow.patched()`. Its own module, so the workflow sandbox can import it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.approval import ApprovalWorkflow
from workflows.types import ApprovalInput, ApprovalState


@workflow.defn(name="ApprovalWorkflow")
class UnpatchedApprovalWorkflow(ApprovalWorkflow):
    @workflow.run
    async def run(self, inp: ApprovalInput) -> ApprovalState:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)
