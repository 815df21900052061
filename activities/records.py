"""Writes the SQL read model and the audit chain. Each call is safe to run twice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico.audit import append_event
from portico.models import Approval
from portico.services.approval_records import ApprovalRecords, EventHook
from workflows.types import APPEND_AUDIT_EVENT, AuditAppend, SyncApprovalInput


class RecordActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_event: EventHook | None = None
    ) -> None:
        self.sessions = sessions
        self.on_event = on_event
        self.records = ApprovalRecords(sessions, on_event)

    @activity.defn(name="sync_approval")
    async def sync_approval(self, snapshot: SyncApprovalInput) -> None:
        """Mirror the workflow's state into SQL and append its audit event (idempotent)."""
        await self.apply(snapshot)

    async def apply(self, snapshot: SyncApprovalInput) -> None:
        """sync_approval's work, also done by a request email's activity (`record_sent`)."""
        await self.records.apply(snapshot)

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
