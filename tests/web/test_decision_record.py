"""A client's decision is answered by its workflow before the workflow's `sync_approval`, and
the web writes it before the 303 (docs/benchmarks.md, sixth pass): the page the 303 leads to
shows the decision, the trail holds it once, and a snapshot written late changes nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from temporalio.api.enums.v1 import EventType

from portico.audit import verify_approval
from portico.models import AuditEvent
from portico.services.approval_records import ApprovalRecords
from tests.support.helpers import create_approval, seed_document, token_of, wait_until
from tests.web.test_signing_page import open_page, post
from web.http.keys import SERVICE
from workflows.types import ApprovalState


def records(stack) -> ApprovalRecords:
    return stack.http.server.app[SERVICE].records


async def trail(stack, approval_id: int) -> list[AuditEvent]:
    async with stack.sessions() as session:
        return list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.approval_id == approval_id)
                .order_by(AuditEvent.seq)
            )
        )


async def settled(stack, approval_id: int) -> list[AuditEvent]:
    async def check() -> list[AuditEvent] | None:
        events = await trail(stack, approval_id)
        return events if any(e.type == "signed_pdf" for e in events) else None

    return await wait_until(check)


async def approve(stack, token: str, name: str):
    return await post(stack, token, "approve", {"full_name": name, "consent": "on"})


async def test_the_page_after_the_303_shows_the_decision_and_the_trail_holds_it_once(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    approval_id, token = created["id"], token_of(created["approvers"][0]["sign_url"])

    async def sent() -> bool:
        return any(e.type == "sent" for e in await trail(stack, approval_id))

    await wait_until(sent)  # nothing else in flight: the update gets the workflow at once
    response = await approve(stack, token, "Approver One")
    assert response.status == 303
    # At once, with no waiting: SQL already says so, as the page and the API show it.
    assert [e.type for e in await trail(stack, approval_id)].count("approved") == 1
    shown = await stack.api("GET", f"/approvals/{approval_id}", 200)
    assert shown["status"] == "approved" and shown["approvers"][0]["status"] == "approved"
    status, html = await open_page(stack, token)
    assert status == 200 and "Thank you" in html

    events = await settled(stack, approval_id)
    assert [e.type for e in events].count("approved") == 1  # the workflow's sync changed nothing
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approval_id) == []

    # The update was answered by the workflow task that applied it: no activity ran and no
    # other task started between its acceptance and its completion.
    handle = stack.temporal.get_workflow_handle(created["workflow_id"])
    kinds = [e.event_type for e in (await handle.fetch_history()).events]
    accepted = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    completed = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
    between = kinds[accepted:completed]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED not in between
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED not in between


async def test_a_decision_the_web_cannot_write_is_waited_for(stack, monkeypatch):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    approval_id, token = created["id"], token_of(created["approvers"][0]["sign_url"])

    async def database_down(snapshot):
        raise OperationalError("UPDATE approvals", {}, Exception("database is locked"))

    monkeypatch.setattr(records(stack), "apply", database_down)
    response = await approve(stack, token, "Approver One")
    assert response.status == 303
    # The web waited for the workflow's own sync, so the page already shows the decision.
    status, html = await open_page(stack, token)
    assert "Thank you" in html
    events = await settled(stack, approval_id)
    assert [e.type for e in events].count("approved") == 1
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approval_id) == []


async def test_a_snapshot_written_late_puts_no_older_state_back(stack, monkeypatch):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], n=2)
    approval_id = created["id"]
    first, second = (token_of(a["sign_url"]) for a in created["approvers"])
    seen = []
    writer = records(stack)
    apply = writer.apply

    async def keep(snapshot):
        seen.append(snapshot)
        return await apply(snapshot)

    monkeypatch.setattr(writer, "apply", keep)
    assert (await approve(stack, first, "Approver One")).status == 303
    assert (await approve(stack, second, "Approver Two")).status == 303
    before = await settled(stack, approval_id)
    assert [s.status for s in seen] == ["partially_approved", "approved"]

    # The first decision's snapshot again (a retried attempt, a slow replica): no change.
    assert await apply(seen[0]) is False
    shown = await stack.api("GET", f"/approvals/{approval_id}", 200)
    assert shown["status"] == "approved"
    assert [a["status"] for a in shown["approvers"]] == ["approved", "approved"]
    assert [e.id for e in await trail(stack, approval_id)] == [e.id for e in before]
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approval_id) == []


async def test_decisions_racing_staff_actions_leave_sql_and_the_workflow_agreeing(stack):
    """Staff REMIND while the client declines, and a second approver decides at once (the
    shortcut that was reverted failed such a race): SQL, the trail and the workflow agree."""
    document = await seed_document(stack)
    runs = [await create_approval(stack, document["id"], routing="all", n=2) for _ in range(6)]

    async def race(created: dict) -> None:
        one, two = (token_of(a["sign_url"]) for a in created["approvers"])
        remind = stack.api("POST", f"/approvals/{created['id']}/remind", json={})
        await asyncio.gather(
            remind,
            approve(stack, one, "Approver One"),
            post(stack, two, "decline", {"reason": "Too expensive"}),
        )

    await asyncio.gather(*(race(created) for created in runs))
    for created in runs:
        handle = stack.temporal.get_workflow_handle(
            created["workflow_id"], result_type=ApprovalState
        )
        final = await handle.result()
        shown = await stack.api("GET", f"/approvals/{created['id']}", 200)
        assert shown["status"] == final.status == "declined"
        assert [a["status"] for a in shown["approvers"]] == [a.status for a in final.approvers]
        events = await trail(stack, created["id"])
        kinds = [e.type for e in events]
        assert kinds.count("declined") == 1 and kinds.count("approved") <= 1
        keys = [e.event_key for e in events]
        assert len(set(keys)) == len(keys)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert await verify_approval(stack.sessions, stack.settings.files_dir, created["id"]) == []
