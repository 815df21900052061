"""A new request's first steps (docs/benchmarks.md, issue 17 section 3): the API writes the
`created` audit event with the request's rows, and the request email's activity writes `sent`
once the email is out, so the workflow runs one activity before the request is on its way.
The trail, the approver's `notified_at` and the `approval.sent` webhook stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from activities.records import RecordActivities
from portico.audit import verify_approval
from portico.models import AuditEvent, OutboundMessage
from tests.support.helpers import create_approval, outbox, seed_document, wait_until
from workflows.types import (
    ApproverRecord,
    AuditEventInput,
    EmailMessage,
    SyncApprovalInput,
)


async def _events(stack, approval_id: int) -> list[dict]:
    return (await stack.api("GET", f"/approvals/{approval_id}", 200))["events"]


async def test_created_is_written_by_the_api_and_sent_by_the_email(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], n=2)
    approval_id = created["id"]
    # `created` is there as soon as the API answers, before the workflow has run
    first = await _events(stack, approval_id)
    assert first[0]["type"] == "created" and first[0]["seq"] == 1
    assert first[0]["data"]["approvers"] == ["Approver 1", "Approver 2"]

    await wait_until(lambda: outbox(stack.sessions, "a1@client.test"))

    async def sent() -> list[dict]:
        return [e for e in await _events(stack, approval_id) if e["type"] == "sent"]

    (event,) = await wait_until(sent)
    assert event["seq"] == 2 and event["data"]["approver"] == "Approver 1"
    shown = await stack.api("GET", f"/approvals/{approval_id}", 200)
    notified = datetime.fromisoformat(shown["approvers"][0]["notified_at"])
    assert notified == datetime.fromisoformat(event["at"])  # one moment, one source
    assert shown["approvers"][1]["notified_at"] is None
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approval_id) == []

    # One activity, the email, before the request waits for its client.
    history = await stack.temporal.get_workflow_handle(created["workflow_id"]).fetch_history()
    activities = []
    for e in history.events:
        if e.HasField("timer_started_event_attributes"):
            break
        if e.HasField("activity_task_scheduled_event_attributes"):
            activities.append(e.activity_task_scheduled_event_attributes.activity_type.name)
    assert activities == ["send_email"]


def _sent_snapshot(approval_id: int, approver_id: int, key: str) -> SyncApprovalInput:
    return SyncApprovalInput(
        approval_id=approval_id,
        status="pending",
        expires_at=None,
        approvers=[ApproverRecord(id=approver_id, status="pending")],
        event=AuditEventInput(
            event_key=key,
            at=datetime(2000, 1, 1, tzinfo=UTC),  # replaced by the moment it went out
            type="sent",
            actor="system",
            data={"approver": "Approver 1", "channels": ["email"]},
        ),
    )


async def test_a_retried_request_email_goes_once_and_is_recorded_once(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    approval_id, approver_id = created["id"], created["approvers"][0]["id"]
    await wait_until(lambda: outbox(stack.sessions, "a1@client.test"))
    key = f"approval-{approval_id}:90"
    message = EmailMessage(
        dedupe_key="test-retry:email",
        to="a1@client.test",
        template="reminder",
        approver_id=approver_id,
        context={"document_title": "Kitchen"},
        record_sent=_sent_snapshot(approval_id, approver_id, key),
    )
    notify = NotifyActivities(
        stack.settings, stack.sessions, record=RecordActivities(stack.sessions).apply
    )
    first = await notify.send_email(message)
    again = await notify.send_email(message)  # the worker died before Temporal heard back
    assert first is not None and again == first
    async with stack.sessions() as session:
        sends = await session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.dedupe_key == "test-retry:email"
            )
        )
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.event_key == key)))
    assert sends == 1
    assert len(events) == 1 and events[0].at == first
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approval_id) == []


async def test_a_worker_that_cannot_record_sends_nothing(stack):
    message = EmailMessage(
        dedupe_key="test-unrecorded:email",
        to="a1@client.test",
        template="reminder",
        record_sent=_sent_snapshot(1, 1, "approval-1:9"),
    )
    with pytest.raises(ApplicationError) as info:
        await NotifyActivities(stack.settings, stack.sessions).send_email(message)
    assert info.value.type == "Misconfigured" and info.value.non_retryable
    assert await outbox(stack.sessions, "a1@client.test") == []
