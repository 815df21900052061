"""WebhookDeliveryWorkflow: one per (event, endpoint) delivery, id `webhook-{delivery_id}`
(`webhook-{delivery_id}-{round}` when staff ask for a failed one to be sent again), started
right after the event's transaction commits, or by the worker's sweep.

It runs the delivery activity on the webhook task queue, retried with exponential back-off
(from 5 s, doubling, at most 1 h apart) for up to 3 days, then records how it ended. Only ids
travel through the history: the URL, the payload and the signing secret stay in SQL.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.types import (
    DELIVER_WEBHOOK,
    FINISH_WEBHOOK,
    WEBHOOK_NON_RETRYABLE,
    WEBHOOK_WORKFLOW,
    WebhookDeliveryInput,
    WebhookOutcome,
    webhook_workflow_id,
)

DELIVER = DELIVER_WEBHOOK
FINISH = FINISH_WEBHOOK
DELIVERED = "delivered"
FAILED = "failed"
NON_RETRYABLE = WEBHOOK_NON_RETRYABLE
workflow_id = webhook_workflow_id
FINISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=WEBHOOK_WORKFLOW)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: WebhookDeliveryInput) -> str:
        retry = RetryPolicy(
            initial_interval=inp.retry_initial,
            backoff_coefficient=2.0,
            maximum_interval=inp.retry_maximum,
            non_retryable_error_types=NON_RETRYABLE,
        )
        try:
            status: str = await workflow.execute_activity(
                DELIVER,
                inp.delivery_id,
                task_queue=inp.task_queue,
                # the request's own timeout, plus reading and writing the row
                start_to_close_timeout=inp.attempt_timeout + timedelta(seconds=20),
                schedule_to_close_timeout=inp.give_up_after,
                retry_policy=retry,
                result_type=str,
            )
            outcome = WebhookOutcome(inp.delivery_id, status)
        except ActivityError as err:
            cause = err.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            outcome = WebhookOutcome(inp.delivery_id, FAILED, reason)
        await workflow.execute_activity(
            FINISH,
            outcome,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=FINISH_RETRY,
        )
        return outcome.status
