"""Writes an approval workflow's snapshot to the SQL read model and its audit chain.

Two writers use it: the worker's `sync_approval` activity, and the web process, which writes a
decision's snapshot as soon as the workflow has answered the update (so the page the 303 leads
to shows it; the workflow's own `sync_approval` of it follows and finds it written). A snapshot
is written whole or not at all, once: whoever comes second changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.audit import append_event
from portico.models import Approval, Approver, AuditEvent
from workflows.types import ApproverRecord, AuditEventInput, SyncApprovalInput

APPROVER_FIELDS = [f.name for f in fields(ApproverRecord) if f.name != "id"]
ATTEMPTS = 5
POLL_SECONDS = 0.05
DECISION_WAIT = 5.0  # seconds, for the workflow to record a decision its caller could not
log = logging.getLogger(__name__)

# Called in the transaction that appends an audit event, with (session, approval id, event,
# approval status): e.g. portico.services.webhooks' recorder of webhook events.
EventHook = Callable[[AsyncSession, int, AuditEventInput, str], Awaitable[object]]
# Writes a snapshot with its audit event (RecordActivities.apply): what activities that record
# their own event are given (a request email's `sent`, the signed PDF's `signed_pdf`).
RecordSnapshot = Callable[[SyncApprovalInput], Awaitable[None]]


def _record_signed_pdf_outcome(approval: Approval, event: AuditEventInput) -> None:
    """Keep `signed_pdf_error` in step with the workflow's signed-PDF events."""
    if event.type == "signed_pdf_failed":
        approval.signed_pdf_error = str(event.data.get("error") or "unknown error")[:2000]
    elif event.type == "signed_pdf":
        approval.signed_pdf_error = None


class ApprovalRecords:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_event: EventHook | None = None
    ) -> None:
        self.sessions = sessions
        self.on_event = on_event

    async def apply(self, snapshot: SyncApprovalInput) -> bool:
        """Write `snapshot` unless its audit event is already there; True if this call wrote it.

        A snapshot whose event is written is never applied again, so a late writer (the
        workflow's activity after the web, a retried attempt after a newer snapshot) cannot put
        an older state back."""
        for attempt in range(ATTEMPTS):
            try:
                return await self._apply_once(snapshot)
            except IntegrityError:
                # A concurrent writer took the same seq or key; the chain is re-read next time.
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def wait_written(self, snapshot: SyncApprovalInput, timeout: float) -> bool:
        """Wait up to `timeout` seconds for another writer to write `snapshot`'s event."""
        assert snapshot.event is not None
        query = select(AuditEvent.id).where(
            AuditEvent.approval_id == snapshot.approval_id,
            AuditEvent.event_key == snapshot.event.event_key,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.sessions() as session:
                if await session.scalar(query) is not None:
                    return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)

    async def _apply_once(self, snapshot: SyncApprovalInput) -> bool:
        """Everything is read before anything is written (the session does not flush on its
        reads): on SQLite the write lock is then held from the first INSERT to the COMMIT only,
        not across the reads' trips to the driver too (docs/benchmarks.md, ninth pass)."""
        async with self.sessions() as session, session.begin():
            approval = await session.get(Approval, snapshot.approval_id, with_for_update=True)
            if approval is None:
                raise LookupError(f"approval {snapshot.approval_id} is not in the database")
            rows = {
                a.id: a
                for a in await session.scalars(
                    select(Approver).where(Approver.approval_id == snapshot.approval_id)
                )
            }
            # The event first: if its key is there, this snapshot was written (with its state,
            # in one transaction) and nothing else may be. Should a concurrent writer insert
            # the same key or seq before this commits, the commit fails and `apply` retries.
            event = snapshot.event
            if event is not None and not await append_event(session, approval.id, event):
                return False
            approval.status = snapshot.status
            approval.expires_at = snapshot.expires_at
            approval.void_reason = snapshot.void_reason
            if snapshot.completed_at and approval.completed_at is None:
                approval.completed_at = snapshot.completed_at
            for record in snapshot.approvers:
                row = rows[record.id]
                for name in APPROVER_FIELDS:
                    value = getattr(record, name)
                    if value is not None or name in ("notes", "decline_reason"):
                        setattr(row, name, value)
                if snapshot.token_expires_at is not None:
                    row.token_expires_at = snapshot.token_expires_at
            if event is not None:
                _record_signed_pdf_outcome(approval, event)
                if self.on_event is not None:
                    # e.g. its webhook event, in this same transaction (services/webhooks.py);
                    # a hook that reads what was just added flushes it first
                    with session.no_autoflush:
                        await self.on_event(session, approval.id, event, snapshot.status)
            return True


async def record_decision(records: ApprovalRecords, snapshot: SyncApprovalInput) -> None:
    """Write a decision its workflow has committed and answered with (DecisionResult.record).
    Should that fail, wait a little for the workflow's own sync of it instead."""
    try:
        await records.apply(snapshot)
        return
    except (DBAPIError, LookupError):
        log.warning("decision on approval %s left to its workflow to record", snapshot.approval_id)
    with contextlib.suppress(DBAPIError):
        await records.wait_written(snapshot, timeout=DECISION_WAIT)
