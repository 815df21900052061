"""SupersedeWorkflow: records that a newer version replaced the document of an approval request
whose own workflow has ended (id `supersede-{approval_id}-{document_id}`).

While the request's ApprovalWorkflow runs, the `superseded` signal does this in turn with its
other events; once it has ended, this one-activity workflow appends the same event (same key,
so never twice) to the audit chain. Started with a reject-duplicate id policy (a failed run may
be started again): sending the same version twice records nothing more.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.types import APPEND_AUDIT_EVENT, SUPERSEDE_WORKFLOW, AuditAppend, Supersession

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["UnknownApproval"],
)


@workflow.defn(name=SUPERSEDE_WORKFLOW)
class SupersedeWorkflow:
    @workflow.run
    async def run(self, change: Supersession) -> None:
        await workflow.execute_activity(
            APPEND_AUDIT_EVENT,
            AuditAppend(change.approval_id, change.event(workflow.now())),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
