"""The SMS bots end to end: the official twilio client against a local fake, signed webhooks,
a real worker on the dev server, and the staff API to look at the result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType

from portico.models import Approver, InboundMessage, SmsOptOut
from tests.conftest import Stack
from tests.support.fake_twilio import STAFF_PHONE, TWILIO_NUMBER, post_sms, stack_with_fake
from tests.support.helpers import approvers, create_approval, outbox, seed_document, wait_until
from workflows.approval import ApprovalWorkflow
from workflows.types import ApprovalState, ApproveRequest, Evidence

PHONE_1 = "+15550100001"
PHONE_2 = "+15550100002"
STRANGER = "+15550177777"


async def codes(stack, approval_id: int) -> list[str]:
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(Approver.sms_code)
            .where(Approver.approval_id == approval_id)
            .order_by(Approver.position)
        )
        return list(rows)


async def sms_request(stack, n: int = 2, **body):
    document = await seed_document(stack)
    return await create_approval(
        stack,
        document["id"],
        approvers=approvers(n, phones=True),
        channels=["email", "sms"],
        **body,
    )


async def approve_on_the_page(stack, approval_id: int, approver_id: int) -> None:
    handle = stack.temporal.get_workflow_handle(f"approval-{approval_id}")
    await handle.execute_update(
        ApprovalWorkflow.approve,
        ApproveRequest(
            approver_id=approver_id,
            signature_name="Approver 1",
            consent=True,
            evidence=Evidence(channel="web", ip="127.0.0.1"),
        ),
    )


async def show(stack, approval_id: int) -> dict:
    return await stack.api("GET", f"/approvals/{approval_id}", 200)


async def workflow_result(stack, created: dict) -> ApprovalState:
    """Wait for the request's workflow to complete (nothing changes the read model after)."""
    handle = stack.temporal.get_workflow_handle_for(ApprovalWorkflow.run, created["workflow_id"])
    return await asyncio.wait_for(handle.result(), 60)


async def test_prompt_goes_out_through_the_official_twilio_client(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    sent = await wait_until(lambda: _async(twilio.to(PHONE_1)))
    assert sent[0]["From"] == TWILIO_NUMBER
    body = sent[0]["Body"]
    assert created["approvers"][0]["sign_url"] in body
    assert body.endswith(f"Reply YES {code} to approve or NO {code} <reason> to decline.")
    assert "CO-17" in body
    recorded = await wait_until(lambda: outbox(sms_stack.sessions, PHONE_1))
    assert recorded[0].transport == "twilio"
    assert recorded[0].provider_id.startswith("SM")

    # The SMS ran on the rate-limited SMS task queue, email on the main one.
    history = await sms_stack.temporal.get_workflow_handle(created["workflow_id"]).fetch_history()
    queues = {
        e.activity_task_scheduled_event_attributes.activity_type.name: (
            e.activity_task_scheduled_event_attributes.task_queue.name
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert queues["send_sms"] == sms_stack.settings.sms_task_queue
    assert queues["send_email"] == sms_stack.settings.task_queue


async def _async(value):
    return value


async def test_second_approver_approves_by_replying_yes(sms_stack, twilio):
    created = await sms_request(sms_stack, n=2)
    first, second = created["approvers"]
    code_1, code_2 = await codes(sms_stack, created["id"])
    await wait_until(lambda: _async(twilio.to(PHONE_1)))
    assert twilio.to(PHONE_2) == []  # sequential: not their turn yet

    # Out of turn: the workflow's own message, nothing changes.
    status, reply = await post_sms(sms_stack, PHONE_2, f"YES {code_2}")
    assert status == 200
    assert "not your turn" in reply
    assert (await show(sms_stack, created["id"]))["status"] == "pending"

    await approve_on_the_page(sms_stack, created["id"], first["id"])
    prompt = await wait_until(lambda: _async(twilio.to(PHONE_2)))
    assert f"Reply YES {code_2} to approve" in prompt[0]["Body"]

    status, reply = await post_sms(sms_stack, PHONE_2, f"yes {code_2} looks good")
    assert status == 200
    assert "You approved Change order CO-17" in reply
    assert "fully approved" in reply

    shown = await wait_until(lambda: _completed(sms_stack, created["id"]), timeout=60)
    assert shown["status"] == "approved"
    one, two = shown["approvers"]
    assert (one["decided_via"], two["decided_via"]) == ("web", "sms")
    assert two["status"] == "approved"
    assert two["notes"] == "looks good"
    assert two["signature_name"] == "Approver 2"
    approved = [e for e in shown["events"] if e["type"] == "approved"]
    evidence = approved[-1]["data"]["evidence"]
    assert evidence["channel"] == "sms"
    assert evidence["phone"] == PHONE_2
    assert evidence["message_sid"].startswith("SM")
    assert evidence["text"] == "yes **** looks good"  # the code stays out of Temporal history

    # Too late now: the request is closed, and the reply says so.
    status, reply = await post_sms(sms_stack, PHONE_1, f"NO {code_1} changed my mind")
    assert "nothing was changed" in reply.lower()
    assert (await show(sms_stack, created["id"]))["approvers"][0]["status"] == "approved"


async def _completed(stack, approval_id: int):
    shown = await show(stack, approval_id)
    return shown if shown["completed_at"] and shown["signed_pdf_sha256"] else None


async def test_no_without_a_reason_asks_for_one_and_changes_nothing(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    status, reply = await post_sms(sms_stack, PHONE_1, f"NO {code}")
    assert status == 200
    assert f"NO {code} followed by your reason" in reply
    shown = await show(sms_stack, created["id"])
    assert shown["status"] == "pending"
    assert [e["type"] for e in shown["events"]].count("declined") == 0

    status, reply = await post_sms(sms_stack, PHONE_1, f"No {code} too expensive")
    assert "You declined Change order CO-17" in reply
    shown = await show(sms_stack, created["id"])
    assert shown["status"] == "declined"
    assert shown["approvers"][0]["decline_reason"] == "too expensive"
    assert shown["approvers"][0]["decided_via"] == "sms"
    # The stored copies of the replies keep everything but the code (a secret).
    async with sms_stack.sessions() as session:
        stored = sorted(await session.scalars(select(InboundMessage.body)))
    assert stored == ["NO ****", "No **** too expensive"]
    assert not any(code in body for body in stored)


async def test_a_wrong_number_or_code_cannot_decide_and_learns_nothing(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    wrong = "1000" if code != "1000" else "1001"
    replies = []
    for sender, text in [
        (STRANGER, f"YES {code}"),  # right code, wrong phone
        (STRANGER, f"NO {code} spam"),
        (PHONE_1, f"YES {wrong}"),  # right phone, wrong code
        (PHONE_2, f"YES {code}"),  # another (unknown) approver's phone
    ]:
        status, reply = await post_sms(sms_stack, sender, text)
        assert status == 200
        replies.append(reply)
    assert len(set(replies)) == 1  # the same refusal whatever was wrong
    assert "does not match an open request" in replies[0]
    assert "CO-17" not in replies[0] and "Approver" not in replies[0]
    shown = await show(sms_stack, created["id"])
    assert shown["status"] == "pending"
    assert shown["approvers"][0]["status"] in ("pending", "viewed")

    # WhatsApp messages from the approver's own number count as theirs.
    status, reply = await post_sms(sms_stack, f"whatsapp:{PHONE_1}", f"YES {code}")
    assert "You approved" in reply
    assert (await show(sms_stack, created["id"]))["approvers"][0]["decided_via"] == "sms"


async def test_help_unknown_and_missing_code(sms_stack, twilio):
    _, reply = await post_sms(sms_stack, STRANGER, "HELP")
    assert "YES <code>" in reply and "STOP" in reply
    assert "VOID" not in reply
    _, reply = await post_sms(sms_stack, STRANGER, "what is this?")
    assert "did not understand" in reply
    _, reply = await post_sms(sms_stack, STRANGER, "yes")
    assert "include the code" in reply
    _, reply = await post_sms(sms_stack, STAFF_PHONE, "help")
    assert "VOID <ref>" in reply
    async with sms_stack.sessions() as session:
        stored = list(await session.scalars(select(InboundMessage.body)))
    assert sorted(stored) == sorted(["HELP", "what is this?", "yes", "help"])


async def test_stop_is_honoured_before_sending_and_start_undoes_it(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    await wait_until(lambda: _async(twilio.to(PHONE_1)))
    _, reply = await post_sms(sms_stack, PHONE_1, "STOP")
    assert "unsubscribed" in reply and "START" in reply
    async with sms_stack.sessions() as session:
        row = await session.scalar(select(SmsOptOut).where(SmsOptOut.phone == PHONE_1))
    assert row is not None and row.opted_out

    await sms_stack.api("POST", f"/approvals/{created['id']}/remind", 202, json={})
    reminders = await wait_until(lambda: outbox(sms_stack.sessions, "a1@client.test"))
    await wait_until(lambda: _has_reminder(sms_stack, "a1@client.test"))
    skipped = await wait_until(lambda: _transports(sms_stack, PHONE_1, "opted_out"))
    assert len(skipped) == 1
    assert len(twilio.to(PHONE_1)) == 1  # only the original prompt ever reached Twilio
    assert reminders
    shown = await wait_until(lambda: _event(sms_stack, created["id"], "delivery_failed"))
    assert "STOP" in shown["data"]["reason"]

    _, reply = await post_sms(sms_stack, PHONE_1, "start")
    assert "resubscribed" in reply
    await sms_stack.api("POST", f"/approvals/{created['id']}/remind", 202, json={})
    await wait_until(lambda: _async(len(twilio.to(PHONE_1)) == 2), timeout=60)
    assert "reminder" in twilio.to(PHONE_1)[1]["Body"]


async def _has_reminder(stack, to: str):
    return [m for m in await outbox(stack.sessions, to) if "Reminder" in (m.subject or "")]


async def _transports(stack, to: str | None, transport: str, count: int = 1):
    found = [m for m in await outbox(stack.sessions, to) if m.transport == transport]
    return found if len(found) >= count else None


async def _event(stack, approval_id: int, kind: str):
    events = (await show(stack, approval_id))["events"]
    return next((e for e in events if e["type"] == kind), None)


async def test_staff_commands_from_a_staff_phone(sms_stack, twilio):
    created = await sms_request(sms_stack, n=2)
    before = await show(sms_stack, created["id"])

    _, reply = await post_sms(sms_stack, STAFF_PHONE, "STATUS CO-17")
    assert reply.startswith(f"CO-17 (#{created['id']}): pending.")
    assert "Approver 1 pending" in reply and "Approver 2 waiting" in reply
    assert "Expires" in reply

    _, reply = await post_sms(sms_stack, STAFF_PHONE, "extend co-17 7")
    assert reply.startswith("Extended by 7 days.")
    after = await show(sms_stack, created["id"])
    assert after["expires_at"] > before["expires_at"]
    extended = [e for e in after["events"] if e["type"] == "extended"][0]
    assert extended["actor"] == f"staff-sms:{STAFF_PHONE}"

    _, reply = await post_sms(sms_stack, STAFF_PHONE, f"REMIND #{created['id']}")
    assert reply.startswith("Reminder sent.")

    _, reply = await post_sms(sms_stack, STAFF_PHONE, "STATUS CO-99")
    assert reply == "No approval request for CO-99."
    _, reply = await post_sms(sms_stack, STAFF_PHONE, "EXTEND CO-17 soon")
    assert "number of days" in reply

    _, reply = await post_sms(sms_stack, STAFF_PHONE, "VOID CO-17 client changed scope")
    assert reply.startswith(f"Voided. CO-17 (#{created['id']}): void.")
    shown = await show(sms_stack, created["id"])
    assert shown["status"] == "void"
    assert shown["void_reason"] == "client changed scope"

    # Once the voided workflow has completed, a second VOID is refused by Temporal itself. (Sent
    # while it is still finishing, the workflow would answer "withdrawn by the sender" instead.)
    assert (await workflow_result(sms_stack, created)).status == "void"
    _, reply = await post_sms(sms_stack, STAFF_PHONE, "VOID CO-17")
    assert reply == f"This request is already closed. CO-17 (#{created['id']}): void. " + (
        "Approver 1 skipped; Approver 2 skipped."
    )


async def test_staff_commands_from_anyone_else_do_nothing(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    before = await show(sms_stack, created["id"])
    for text in ("STATUS CO-17", "VOID CO-17 gotcha", "EXTEND CO-17 9", "REMIND CO-17", "VOID"):
        _, reply = await post_sms(sms_stack, STRANGER, text)
        assert "did not understand" in reply
        assert "CO-17" not in reply and "pending" not in reply
    after = await show(sms_stack, created["id"])
    assert after["status"] == "pending"
    assert after["expires_at"] == before["expires_at"]
    assert [e["type"] for e in after["events"]] == [e["type"] for e in before["events"]] or all(
        e["type"] in ("created", "sent") for e in after["events"]
    )


async def test_outbound_sms_are_throttled_by_the_task_queue(sms_stack, twilio):
    # Five prompts ("any" routing asks everyone at once) leave about one per second.
    document = await seed_document(sms_stack)
    await create_approval(
        sms_stack,
        document["id"],
        approvers=approvers(5, phones=True),
        routing="any",
        channels=["sms"],
        notify_staff=[],
    )
    await wait_until(lambda: _async(len(twilio.messages) == 5), timeout=60)
    sent = await wait_until(lambda: _transports(sms_stack, None, "twilio", count=5))
    recorded = sorted(m.created_at for m in sent)
    assert (recorded[-1] - recorded[0]).total_seconds() >= 2.5


@pytest.fixture
async def night_stack(settings, sessions, dev_env, twilio) -> AsyncIterator[Stack]:
    """The stack with quiet hours covering the next two hours in the default time zone."""
    hour = datetime.now(ZoneInfo(settings.default_timezone)).hour
    quiet = f"{hour}-{(hour + 2) % 24}"
    async for stack in stack_with_fake(
        settings, sessions, dev_env.client, twilio, quiet_hours=quiet
    ):
        yield stack


async def test_reminders_wait_for_the_morning_without_holding_up_decisions(night_stack, twilio):
    created = await sms_request(night_stack, n=1)
    code = (await codes(night_stack, created["id"]))[0]
    prompt = await wait_until(lambda: _async(twilio.to(PHONE_1)))  # urgent: sent at night
    assert "please approve" in prompt[0]["Body"]

    await night_stack.api("POST", f"/approvals/{created['id']}/remind", 202, json={})
    await wait_until(lambda: _has_reminder(night_stack, "a1@client.test"))  # email: at once
    handle = night_stack.temporal.get_workflow_handle(created["workflow_id"])
    held = await wait_until(lambda: _held_sms(handle))
    assert held.last_failure.application_failure_info.type == "QuietHours"
    wait = held.next_attempt_schedule_time.ToDatetime(UTC) - datetime.now(UTC)
    # at the end of the quiet hours, at its moment within the morning's spread
    spread = timedelta(minutes=night_stack.settings.quiet_hours_spread_minutes)
    assert timedelta(minutes=50) < wait <= timedelta(hours=2) + spread
    assert len(twilio.to(PHONE_1)) == 1

    # The held reminder does not delay the approval (held, it would wait most of an hour: the
    # bound is generous for a loaded machine), and is dropped once it is moot.
    status, reply = await asyncio.wait_for(post_sms(night_stack, PHONE_1, f"YES {code}"), 60)
    assert "You approved" in reply
    await wait_until(lambda: _completed(night_stack, created["id"]), timeout=60)
    await handle.result()
    assert not [m for m in twilio.to(PHONE_1) if "reminder" in m["Body"]]
    events = [e["type"] for e in (await show(night_stack, created["id"]))["events"]]
    assert "delivery_failed" not in events


async def _held_sms(handle):
    description = await handle.describe()
    pending = description.raw_description.pending_activities
    return next(
        (p for p in pending if p.activity_type.name == "send_sms" and p.last_failure.message),
        None,
    )


async def test_a_closed_request_says_why_until_its_code_expires(sms_stack, twilio):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    await sms_stack.api("POST", f"/approvals/{created['id']}/void", 200, json={"reason": "dup"})
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert "CO-17" in reply and "Nothing was changed" in reply
    # The workflow's words: "withdrawn" while it finishes, "closed" once it has completed.
    assert "withdrawn by the sender" in reply or "already closed" in reply

    # Let the workflow finish first: a notification still queued when the void landed ends
    # with a sync of the read model, which would put the code's expiry back.
    assert (await workflow_result(sms_stack, created)).status == "void"
    async with sms_stack.sessions() as session, session.begin():
        approver = await session.get(Approver, created["approvers"][0]["id"])
        approver.token_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert "does not match an open request" in reply and "CO-17" not in reply
    assert (await show(sms_stack, created["id"]))["status"] == "void"
