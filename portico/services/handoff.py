"""Handing recorded rows to Temporal, shared by the outboxes (portico/outbox.py for messages,
portico/webhooks.py for webhook deliveries): each row names one workflow, started with a
reject-duplicate id and use-existing on conflict, so web replicas and sweeping workers that
start the same row twice never need to agree on who starts what."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from portico.services.gateway import TemporalGateway

log = logging.getLogger(__name__)

START_TIMEOUT = timedelta(seconds=5)  # a hand-off waits no longer for Temporal


async def start_once(
    temporal: TemporalGateway,
    workflow: str,
    arg: Any,
    *,
    workflow_id: str,
    task_queue: str,
) -> bool:
    """Start workflow type `workflow` with `arg` as `workflow_id` unless it ran already;
    False when Temporal does not answer (the row is then left for the sweep)."""
    try:
        client = await temporal.client()
        await client.start_workflow(
            workflow,
            arg,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            rpc_timeout=START_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        pass  # handed off before, and already finished: nothing more to do
    except Exception as err:
        log.warning("%s waits for the sweep: %s", workflow_id, err)
        return False
    return True


async def sweep_forever(sweep: Callable[[], Awaitable[int]], every: timedelta, batch: int) -> None:
    """Run `sweep` every `every` until cancelled; at once again while it hands off full
    batches (a backlog)."""
    while True:
        try:
            if await sweep() == batch:
                continue
        except Exception:
            log.exception("sweep failed; trying again in %s", every)
        await asyncio.sleep(every.total_seconds())
