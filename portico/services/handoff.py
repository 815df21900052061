"""Handing recorded rows to Temporal, shared by the outboxes (portico/services/outbox.py for
messages, portico/services/webhooks.py for webhook deliveries, and the payment announcements of
portico/services/billing/announcements.py): each row names one workflow,
started with a reject-duplicate id and use-existing on conflict, so web replicas and sweeping
workers that start the same row twice never need to agree on who starts what."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from portico.clock import utcnow
from portico.services.gateway import TemporalGateway

log = logging.getLogger(__name__)

# The states of an outbox row (messages, webhook deliveries).
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
START_TIMEOUT = timedelta(seconds=5)  # a hand-off waits no longer for Temporal
SWEEP_BATCH = 100  # rows a sweep hands off at a time


async def due_rows(
    sessions: async_sessionmaker[AsyncSession],
    model: Any,
    older_than: timedelta,
    *,
    waiting: ColumnElement[bool] | None = None,
    created: Any = None,
) -> list[Any]:
    """Rows of `model` (an outbox table: status, handed_off_at, created_at) still pending and
    never handed off, committed at least `older_than` ago: their web process died, or Temporal
    was down, between the commit and the start. A table that says "still to do" or "committed
    at" otherwise gives `waiting` and `created` (payment_announcements: not yet announced, `at`)."""
    if waiting is None:
        waiting = model.status == PENDING
    if created is None:
        created = model.created_at
    async with sessions() as session:
        return list(
            await session.scalars(
                select(model)
                .where(
                    waiting,
                    model.handed_off_at.is_(None),
                    created <= utcnow() - older_than,
                )
                .order_by(model.id)
                .limit(SWEEP_BATCH)
            )
        )


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


async def start_rows(
    sessions: async_sessionmaker[AsyncSession],
    model: Any,
    rows: Sequence[Any],
    start: Callable[[Any], Awaitable[bool]],
) -> int:
    """Start each row's workflow with `start` (a `start_once` call), in order, stopping at the
    first one Temporal does not take, and note the started rows handed off; returns how many.
    The rest are left for the sweep."""
    started: list[int] = []
    for row in rows:
        if not await start(row):
            break
        started.append(row.id)
    if started:
        async with sessions() as session, session.begin():
            await session.execute(
                update(model)
                .where(model.id.in_(started), model.handed_off_at.is_(None))
                .values(handed_off_at=utcnow())
            )
    return len(started)


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
