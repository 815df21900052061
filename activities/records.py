"""Writes the SQL read model and the audit chain. Each call is safe to run twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import fields

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico.audit import append_event
from portico.models import Approval, Approver
from workflows.types import (
    APPEND_AUDIT_EVENT,
    ApproverRecord,
    AuditAppend,
    AuditEventInput,
    SyncApprovalInput,
)

APPROVER_FIELDS = [f.name for f in fields(ApproverRecord) if f.name != "id"]


def _record_signed_pdf_outcome(approval: Approval, event: AuditEventInput) -> None:
    """Keep `signed_pdf_error` in step with the workflow's signed-PDF events."""
    if event.type == "signed_pdf_failed":
        approval.signed_pdf_error = str(event.data.get("error") or "unknown error")[:2000]
    elif event.type == "signed_pdf":
        approval.signed_pdf_error = None


# Called in the transaction that appends an audit event, with (session, approval id, event,
# approval status): the worker passes portico.services.webhooks' recorder of webhook events.
EventHook = Callable[[AsyncSession, int, AuditEventInput, str], Awaitable[object]]


class RecordActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_event: EventHook | None = None
    ) -> None:
        self.sessions = sessions
        self.on_event = on_event

    @activity.defn(name="sync_approval")
    async def sync_approval(self, snapshot: SyncApprovalInput) -> None:
        """Mirror the workflow's state into SQL and append its audit event (idempotent)."""
        await self.apply(snapshot)

    async def apply(self, snapshot: SyncApprovalInput) -> None:
        """sync_approval's work, also done by a request email's activity (`record_sent`)."""
        for attempt in range(5):
            try:
                await self._sync_once(snapshot)
                return
            except IntegrityError:
                # A concurrent writer took the same seq; the chain is re-read on the next try.
                if attempt == 4:
                    raise

    async def _sync_once(self, snapshot: SyncApprovalInput) -> None:
        async with self.sessions() as session, session.begin():
            approval = await session.get(Approval, snapshot.approval_id, with_for_update=True)
            if approval is None:
                raise LookupError(f"approval {snapshot.approval_id} is not in the database")
            approval.status = snapshot.status
            approval.expires_at = snapshot.expires_at
            approval.void_reason = snapshot.void_reason
            if snapshot.completed_at and approval.completed_at is None:
                approval.completed_at = snapshot.completed_at
            rows = {
                a.id: a
                for a in await session.scalars(
                    select(Approver).where(Approver.approval_id == snapshot.approval_id)
                )
            }
            for record in snapshot.approvers:
                row = rows[record.id]
                for name in APPROVER_FIELDS:
                    value = getattr(record, name)
                    if value is not None or name in ("notes", "decline_reason"):
                        setattr(row, name, value)
                if snapshot.token_expires_at is not None:
                    row.token_expires_at = snapshot.token_expires_at
            if snapshot.event is not None:
                _record_signed_pdf_outcome(approval, snapshot.event)
                added = await append_event(session, snapshot.approval_id, snapshot.event)
                if added and self.on_event is not None:
                    # e.g. its webhook event, in this same transaction (portico/webhooks.py)
                    await self.on_event(
                        session, snapshot.approval_id, snapshot.event, snapshot.status
                    )

    @activity.defn(name=APPEND_AUDIT_EVENT)
    async def append_audit_event(self, inp: AuditAppend) -> bool:
        """Append one event to an approval's chain unless its key is there (idempotent); the
        read model is left as it is. Returns True if it was added.

        The approval row is locked, as sync_approval locks it, so the two take turns; should
        a concurrent writer still take the same seq, the attempt fails and Temporal retries
        it with the chain re-read."""
        async with self.sessions() as session, session.begin():
            approval = await session.get(Approval, inp.approval_id, with_for_update=True)
            if approval is None:
                raise ApplicationError(
                    f"approval {inp.approval_id} is not in the database",
                    type="UnknownApproval",
                    non_retryable=True,
                )
            added = await append_event(session, inp.approval_id, inp.event)
            if added and self.on_event is not None:
                await self.on_event(session, inp.approval_id, inp.event, approval.status)
            return added
