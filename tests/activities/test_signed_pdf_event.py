"""`build_signed_pdf` given the workflow's `signed_pdf` snapshot (ApprovalInput.
signed_pdf_with_event) writes that audit event itself, with the PDF's facts, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.documents import DocumentActivities
from activities.records import RecordActivities
from portico.audit import verify_approval
from portico.models import AuditEvent
from tests.activities.test_documents import T0, World
from tests.activities.test_documents import world as world  # noqa: F401 (the fixture)
from workflows.types import ApproverRecord, AuditEventInput, SyncApprovalInput

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pyhanko.*")


def signed_pdf_snapshot(approval_id: int, approver_id: int) -> SyncApprovalInput:
    return SyncApprovalInput(
        approval_id=approval_id,
        status="approved",
        expires_at=None,
        approvers=[ApproverRecord(id=approver_id, status="approved")],
        event=AuditEventInput(
            event_key=f"approval-{approval_id}:7",
            at=T0 + timedelta(hours=3),
            type="signed_pdf",
            actor="system",
            data={},  # filled in by the activity
        ),
        completed_at=T0 + timedelta(hours=2),
    )


async def events(world: World, approval_id: int) -> list[AuditEvent]:
    async with world.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.approval_id == approval_id)
        return list(await session.scalars(query.order_by(AuditEvent.seq)))


async def test_the_build_writes_its_event_once_even_when_retried(world: World) -> None:
    created = AuditEventInput(f"approval-x:{T0}", T0, "created", "staff", {})
    approval_id, (approver_id,) = await world.approval(events=[created])
    acts = DocumentActivities(
        world.settings, world.sessions, record=RecordActivities(world.sessions).apply
    )
    snapshot = signed_pdf_snapshot(approval_id, approver_id)
    result = await acts.build_signed_pdf(approval_id, snapshot)
    again = await acts.build_signed_pdf(approval_id, snapshot)  # Temporal never heard back
    assert again == result
    trail = await events(world, approval_id)
    assert [e.type for e in trail] == ["created", "signed_pdf"]
    assert trail[1].data == result.event_data()
    assert trail[1].data["sha256"] == result.sha256 and trail[1].data["certificate_sha256"]
    # The trail, the file and its digital signature agree.
    assert await verify_approval(world.sessions, world.settings.files_dir, approval_id) == []


async def test_a_worker_that_cannot_record_builds_nothing(world: World) -> None:
    approval_id, (approver_id,) = await world.approval()
    with pytest.raises(ApplicationError) as info:
        await world.acts.build_signed_pdf(
            approval_id, signed_pdf_snapshot(approval_id, approver_id)
        )
    assert info.value.type == "Misconfigured" and info.value.non_retryable
    assert (await world.load(approval_id)).signed_pdf_path is None
    assert await events(world, approval_id) == []
