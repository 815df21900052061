"""OutboxMessageWorkflow: one per outbox row (id `message-{id}`), started by the web layer right
after the row's transaction commits, or by the worker's sweeper if the web layer died first.

It runs the delivery activity (which sends through the `send_email` / `send_sms` code and its
dedupe key) with retries bounded in time, then records the outcome on the row. Starting it twice
is harmless: the id is rejected, or the running one is used.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.types import (
    DELIVER_OUTBOX,
    FINISH_OUTBOX,
    OUTBOX_WORKFLOW,
    OutboxDelivery,
    OutboxOutcome,
)

DELIVERED = "delivered"
FAILED = "failed"
# Retrying these would not help: a malformed address, a STOP, a row that is gone.
NON_RETRYABLE = ("InvalidRecipient", "OptedOut", "UnknownOutboxMessage", "Undeliverable")
FINISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=OUTBOX_WORKFLOW)
class OutboxMessageWorkflow:
    @workflow.run
    async def run(self, inp: OutboxDelivery) -> str:
        retry = RetryPolicy(
            initial_interval=inp.retry_initial,
            backoff_coefficient=2.0,
            maximum_interval=inp.retry_maximum,
            non_retryable_error_types=NON_RETRYABLE,
        )
        sms = inp.channel == "sms"
        outcome = OutboxOutcome(inp.outbox_id, DELIVERED)
        try:
            await workflow.execute_activity(
                DELIVER_OUTBOX,
                inp.outbox_id,
                task_queue=(inp.sms_task_queue or None) if sms else None,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=inp.give_up_after,
                retry_policy=retry,
            )
        except ActivityError as err:
            cause = err.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            workflow.logger.warning("gave up on outbox message %s: %s", inp.outbox_id, reason)
            outcome = OutboxOutcome(inp.outbox_id, FAILED, reason)
        await workflow.execute_activity(
            FINISH_OUTBOX,
            outcome,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=FINISH_RETRY,
        )
        return outcome.status
