"""ApprovalWorkflow on the time-skipping server: routing, timers, staff actions, validation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.temporal import with_converter
from tests.support.fakes import Recorder
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    ApprovalInput,
    ApproveRequest,
    ApproverInput,
    DeclineRequest,
    DocumentInfo,
    Evidence,
    ExtendRequest,
    RemindRequest,
    StaffContact,
    ViewedSignal,
    VoidRequest,
)


@dataclass
class Run:
    env: WorkflowEnvironment
    rec: Recorder
    handle: WorkflowHandle
    inp: ApprovalInput

    async def approve(self, approver_id: int, **kw) -> str:
        req = approve_request(
            approver_id, signature_name=kw.pop("name", f"Signer {approver_id}"), **kw
        )
        result = await self.handle.execute_update(ApprovalWorkflow.approve, req)
        return result.approval_status

    async def decline(self, approver_id: int, reason: str) -> str:
        result = await self.handle.execute_update(
            ApprovalWorkflow.decline, DeclineRequest(approver_id=approver_id, reason=reason)
        )
        return result.approval_status

    async def state(self):
        return await self.handle.query(ApprovalWorkflow.status)

    async def statuses(self) -> list[str]:
        return [a.status for a in (await self.state()).approvers]


def approve_request(approver_id: int, **kw) -> ApproveRequest:
    """A web approval with consent (unless `consent=` says otherwise)."""
    return ApproveRequest(
        approver_id=approver_id,
        consent=kw.pop("consent", True),
        evidence=Evidence(channel="web", ip="203.0.113.9", user_agent="pytest"),
        **kw,
    )


def make_input(
    approval_id: int, created_at, *, routing: str, n: int = 3, links: bool = True, **kw
) -> ApprovalInput:
    """`links=False`: as the API starts requests today, the link and code left to the worker."""
    approvers = [
        ApproverInput(
            id=approval_id * 10 + i,
            name=f"Approver {i}",
            email=f"a{i}@client.test",
            phone=f"+1555000000{i}",
            sign_url=f"http://portico.test/s/token{i}" if links else "",
            sms_code=f"{4820 + i}" if links else "",
        )
        for i in range(1, n + 1)
    ]
    return ApprovalInput(
        approval_id=approval_id,
        document=DocumentInfo(
            id=1, kind="change_order", title="Extra outlets", number="CO-17", amount_cents=125000
        ),
        approvers=approvers,
        routing=routing,
        created_at=created_at,
        notify_staff=[StaffContact(email="office@firm.test", phone="+15559990000")],
        **kw,
    )


def client(env: WorkflowEnvironment):
    return with_converter(env.client)


@asynccontextmanager
async def started(
    env: WorkflowEnvironment,
    routing: str,
    undeliverable: set[str] | None = None,
    pdf_fails: bool = False,
    pdf_times_out: bool = False,
    tsa_down: bool = False,
    **kw,
) -> AsyncIterator[Run]:
    rec = Recorder(
        undeliverable=undeliverable or set(),
        pdf_fails=pdf_fails,
        pdf_times_out=pdf_times_out,
        tsa_down=tsa_down,
    )
    queue = f"approvals-{uuid.uuid4()}"
    approval_id = uuid.uuid4().int % 1_000_000
    inp = make_input(approval_id, await env.get_current_time(), routing=routing, **kw)
    async with Worker(
        client(env), task_queue=queue, workflows=[ApprovalWorkflow], activities=rec.activities()
    ):
        handle = await client(env).start_workflow(
            ApprovalWorkflow.run,
            inp,
            id=f"approval-{approval_id}",
            task_queue=queue,
        )
        run = Run(env, rec, handle, inp)
        try:
            await wait_for(lambda: rec.syncs)
            yield run
        finally:
            # A workflow left open would hold the shared test server's clock for later tests.
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                with contextlib.suppress(RPCError):  # it may complete between the two calls
                    await handle.terminate("test finished")


async def wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds (generous: on a loaded machine activities run late)."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def rejected(coro) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_sequential_notifies_one_at_a_time_and_completes(time_env):
    async with started(time_env, "sequential") as run:
        await wait_for(lambda: run.rec.emails and run.rec.sms)
        assert [e.to for e in run.rec.emails] == ["a1@client.test"]
        assert await run.statuses() == ["pending", "waiting", "waiting"]
        assert run.rec.sms[0].body.endswith(
            "Reply YES 4821 to approve or NO 4821 <reason> to decline."
        )

        err = await rejected(run.approve(run.inp.approvers[1].id))
        assert err.type == "NotYourTurn"
        assert await run.statuses() == ["pending", "waiting", "waiting"]

        assert await run.approve(run.inp.approvers[0].id) == "partially_approved"
        await wait_for(lambda: run.rec.emails_to("a2@client.test", "request"))
        assert run.rec.emails_to("a3@client.test") == []
        assert await run.statuses() == ["approved", "pending", "waiting"]

        assert await run.approve(run.inp.approvers[1].id) == "partially_approved"
        assert await run.approve(run.inp.approvers[2].id) == "approved"
        result = await run.handle.result()
        assert result.status == "approved"
        assert [a.status for a in result.approvers] == ["approved"] * 3
        assert run.rec.pdfs == [run.inp.approval_id]
        assert run.rec.emails_to("office@firm.test", "staff_approved")
        copies = [e for e in run.rec.emails if e.template == "completed_copy"]
        assert {e.to for e in copies} == {"a1@client.test", "a2@client.test", "a3@client.test"}
        assert all(e.attach_signed_pdf_of == run.inp.approval_id for e in copies)
        assert run.rec.events()[:2] == ["created", "sent"]
        assert "signed_pdf" in run.rec.events()


async def test_any_routing_first_approval_wins_and_others_are_told(time_env):
    async with started(time_env, "any") as run:
        await wait_for(lambda: len(run.rec.emails) == 3)
        assert await run.statuses() == ["pending"] * 3
        assert await run.approve(run.inp.approvers[1].id) == "approved"
        result = await run.handle.result()
        assert [a.status for a in result.approvers] == ["skipped", "approved", "skipped"]
        told = {e.to for e in run.rec.emails if e.template == "no_longer_needed"}
        assert told == {"a1@client.test", "a3@client.test"}


async def test_all_routing_needs_everyone(time_env):
    async with started(time_env, "all", n=2) as run:
        await wait_for(lambda: len(run.rec.emails) == 2)
        assert await run.approve(run.inp.approvers[1].id) == "partially_approved"
        err = await rejected(run.approve(run.inp.approvers[1].id))
        assert err.type == "AlreadyDecided"
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        assert (await run.handle.result()).status == "approved"


async def test_a_decision_answers_before_its_sync_which_keeps_the_order(dev_env):
    """`approve` answers in the task that applies it, with the snapshot the web writes; the
    workflow's own sync of it is its next write, before any later decision is answered."""
    async with started(dev_env, "all", n=2, decisions_answered_first=True) as run:
        await wait_for(lambda: len(run.rec.emails) == 2)
        gate = run.rec.decisions_gate = asyncio.Event()  # decision syncs wait from now on
        one, two = (a.id for a in run.inp.approvers)
        first = await run.handle.execute_update(
            ApprovalWorkflow.approve, approve_request(two, signature_name="Two")
        )
        assert first.approval_status == "partially_approved"
        record = first.record
        assert record is not None and record.event is not None
        assert record.event.type == "approved" and record.event.actor.startswith(f"approver:{two}")
        assert [a.status for a in record.approvers if a.id == two] == ["approved"]
        assert "approved" not in run.rec.events()  # answered while its sync waits

        # The next decision is answered only once the first is synced: the web writes in order.
        second = asyncio.create_task(
            run.handle.execute_update(
                ApprovalWorkflow.approve, approve_request(one, signature_name="One")
            )
        )
        await asyncio.sleep(1.0)
        assert not second.done()
        gate.set()
        final = await second
        assert final.approval_status == "approved" and final.record is not None
        await run.handle.result()
        decisions = [s for s in run.rec.syncs if s.event and s.event.type == "approved"]
        assert decisions == [record, final.record]  # each synced once, as answered, in order
        keys = [s.event.event_key for s in run.rec.syncs if s.event]
        seqs = [int(k.split(":")[1]) for k in keys]
        assert seqs == sorted(seqs) and len(set(keys)) == len(keys)
        assert run.rec.events()[-1] == "signed_pdf"


async def test_the_signed_pdf_build_writes_its_own_event(time_env):
    async with started(time_env, "any", n=1, signed_pdf_with_event=True) as run:
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        await run.handle.result()
        (signed,) = [s for s in run.rec.syncs if s.event and s.event.type == "signed_pdf"]
        assert signed.event.data == {"sha256": "ab" * 32, "pages": 2}
        assert signed.status == "approved" and signed.completed_at is not None
        names = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in (await run.handle.fetch_history()).events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
        build = names.index("build_signed_pdf")
        assert "sync_approval" not in names[build:]  # no sync of its own after the build
        assert run.rec.emails_to("office@firm.test", "staff_approved")


async def test_decline_needs_a_reason_and_ends_the_request(time_env):
    async with started(time_env, "all") as run:
        err = await rejected(run.decline(run.inp.approvers[0].id, "   "))
        assert err.type == "ReasonRequired"
        assert (await run.state()).status == "pending"
        assert await run.decline(run.inp.approvers[0].id, "Too expensive") == "declined"
        result = await run.handle.result()
        assert [a.status for a in result.approvers] == ["declined", "skipped", "skipped"]
        assert result.approvers[0].decline_reason == "Too expensive"
        staff = run.rec.emails_to("office@firm.test", "staff_declined")
        assert staff and staff[0].context["reason"] == "Too expensive"
        assert any("DECLINED" in s.body for s in run.rec.sms if s.to == "+15559990000")


async def test_web_approval_needs_consent_and_a_typed_name(time_env):
    async with started(time_env, "any") as run:
        first = run.inp.approvers[0].id
        assert (await rejected(run.approve(first, consent=False))).type == "ConsentRequired"
        assert (await rejected(run.approve(first, name=" "))).type == "SignatureRequired"
        assert (await run.state()).status == "pending"
        assert await run.approve(first) == "approved"


async def test_expiry_fires_after_the_deadline(time_env):
    async with started(time_env, "sequential", expires_in_days=3) as run:
        await time_env.sleep(timedelta(days=2, hours=23))
        assert (await run.state()).status == "pending"
        await time_env.sleep(timedelta(hours=2))
        result = await run.handle.result()
        assert result.status == "expired"
        assert [a.status for a in result.approvers] == ["skipped"] * 3
        assert run.rec.emails_to("office@firm.test", "staff_expired")
        assert run.rec.events()[-1] == "expired"


async def test_reminders_follow_the_cadence_and_warn_before_expiry(time_env):
    async with started(time_env, "any", n=1, expires_in_days=7, remind_every_days=2) as run:
        await time_env.sleep(timedelta(days=5))
        reminders = run.rec.emails_to("a1@client.test", "reminder")
        assert len(reminders) == 2  # day 2 and day 4
        await time_env.sleep(timedelta(days=1, hours=12))
        assert len(run.rec.emails_to("a1@client.test", "reminder")) == 3  # day 6
        assert len(run.rec.emails_to("a1@client.test", "expiry_warning")) == 1
        assert [s for s in run.rec.sms if "expiring soon" in s.body]
        assert all(not s.urgent for s in run.rec.sms if "reminder" in s.body)
        await time_env.sleep(timedelta(days=1))
        assert (await run.handle.result()).status == "expired"


async def test_a_long_lived_request_continues_as_new_and_loses_nothing(time_env):
    """Past its history limit a run hands its state to a new run, at a quiet moment: daily
    reminders keep their cadence (none twice, none lost), a view and a decision made before or
    after it count, events keep their keys, and the request ends as one."""
    async with started(
        time_env, "all", n=2, expires_in_days=12, remind_every_days=1, history_limit=60
    ) as run:
        first, second = run.inp.approvers
        latest = client(time_env).get_workflow_handle(run.handle.id)
        await latest.signal(ApprovalWorkflow.viewed, ViewedSignal(approver_id=first.id))
        await latest.execute_update(
            ApprovalWorkflow.approve, approve_request(first.id, signature_name="A One")
        )
        await time_env.sleep(timedelta(days=6, hours=12))
        description = await latest.describe()
        assert description.run_id != run.handle.result_run_id  # it has continued
        reminders = run.rec.emails_to(second.email, "reminder")
        assert len(reminders) == 6  # days 1 to 6, to the one still to sign
        assert run.rec.emails_to(first.email, "reminder") == []  # their approval carried over
        state = await latest.query(ApprovalWorkflow.status)
        assert [a.status for a in state.approvers] == ["approved", "pending"]
        result = await latest.execute_update(
            ApprovalWorkflow.approve, approve_request(second.id, signature_name="A Two")
        )
        assert result.approval_status == "approved"
        assert (await run.handle.result()).status == "approved"  # follows the runs
        emails = [e.dedupe_key for e in run.rec.emails]
        assert len(set(emails)) == len(emails)
        events = [s.event for s in run.rec.syncs if s.event is not None]
        keys = [e.event_key for e in events]
        assert len(set(keys)) == len(keys)
        assert [e.type for e in events].count("viewed") == 1
        assert "signed_pdf" in [e.type for e in events]


async def test_extend_rearms_the_timer_and_keeps_signatures(time_env):
    async with started(time_env, "sequential", n=2, expires_in_days=2) as run:
        assert await run.approve(run.inp.approvers[0].id) == "partially_approved"
        before = (await run.state()).expires_at
        state = await run.handle.execute_update(ApprovalWorkflow.extend, ExtendRequest(days=5))
        assert state.expires_at == before + timedelta(days=5)
        await time_env.sleep(timedelta(days=3))
        state = await run.state()
        assert state.status == "partially_approved"
        assert [a.status for a in state.approvers] == ["approved", "pending"]
        assert await run.approve(run.inp.approvers[1].id) == "approved"
        err = await rejected(
            run.handle.execute_update(ApprovalWorkflow.extend, ExtendRequest(days=1))
        )
        assert err.type == "RequestClosed"


async def test_extend_rejects_bad_days_and_requests_without_expiry(time_env):
    async with started(time_env, "any", n=1, expires_in_days=2) as run:
        for days in (0, 181):
            err = await rejected(
                run.handle.execute_update(ApprovalWorkflow.extend, ExtendRequest(days=days))
            )
            assert err.type == "InvalidDays"
    async with started(time_env, "any", n=1) as run:
        err = await rejected(run.handle.execute_update(ApprovalWorkflow.extend, ExtendRequest(3)))
        assert err.type == "NoExpiry"


async def test_remind_sends_now_and_may_extend(time_env):
    async with started(time_env, "all", n=2, expires_in_days=10) as run:
        assert await run.approve(run.inp.approvers[0].id) == "partially_approved"
        before = (await run.state()).expires_at
        state = await run.handle.execute_update(
            ApprovalWorkflow.remind, RemindRequest(extend_days=3)
        )
        assert state.expires_at == before + timedelta(days=3)
        await wait_for(lambda: run.rec.emails_to("a2@client.test", "reminder"))
        assert run.rec.emails_to("a1@client.test", "reminder") == []  # already approved


async def test_void_ends_the_request_and_tells_approvers_when_asked(time_env):
    async with started(time_env, "sequential") as run:
        await wait_for(lambda: run.rec.emails)
        state = await run.handle.execute_update(
            ApprovalWorkflow.void, VoidRequest(reason="Scope changed", notify_client=True)
        )
        assert state.status == "void"
        result = await run.handle.result()
        assert result.void_reason == "Scope changed"
        assert [a.status for a in result.approvers] == ["skipped"] * 3
        notices = [e for e in run.rec.emails if e.template == "void_notice"]
        assert [e.to for e in notices] == ["a1@client.test"]  # the only one who had the link


async def test_viewed_signal_marks_the_approver_and_tells_staff_once(time_env):
    async with started(time_env, "any", n=2) as run:
        await run.handle.signal(
            ApprovalWorkflow.viewed, ViewedSignal(approver_id=run.inp.approvers[0].id)
        )
        await run.handle.signal(
            ApprovalWorkflow.viewed, ViewedSignal(approver_id=run.inp.approvers[0].id)
        )
        await wait_for(lambda: run.rec.emails_to("office@firm.test", "staff_first_open"))
        assert await run.statuses() == ["viewed", "pending"]
        assert run.rec.events().count("viewed") == 1
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        assert len(run.rec.emails_to("office@firm.test", "staff_first_open")) == 1


async def test_more_than_five_approvers_is_refused(time_env):
    rec = Recorder()
    queue = f"approvals-{uuid.uuid4()}"
    inp = make_input(99, await time_env.get_current_time(), routing="all", n=6)
    async with Worker(
        client(time_env),
        task_queue=queue,
        workflows=[ApprovalWorkflow],
        activities=rec.activities(),
    ):
        handle = await client(time_env).start_workflow(
            ApprovalWorkflow.run, inp, id=f"approval-six-{uuid.uuid4()}", task_queue=queue
        )
        from temporalio.client import WorkflowFailureError

        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        assert "1 to 5 approvers" in str(info.value.cause)
        assert rec.emails == [] and rec.syncs == []


async def test_undeliverable_email_is_recorded_not_fatal(time_env):
    async with started(time_env, "any", n=2, undeliverable={"a1@client.test"}) as run:
        await wait_for(lambda: "delivery_failed" in run.rec.events())
        await wait_for(lambda: run.rec.emails_to("a2@client.test") and len(run.rec.sms) == 2)
        assert sorted(s.to for s in run.rec.sms) == ["+15550000001", "+15550000002"]
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        assert (await run.handle.result()).status == "approved"


async def test_a_request_email_records_its_own_sent_event(time_env):
    """The request's first email writes `sent` itself (no sync_approval of its own), as of when
    it went out; an email that failed leaves it to the SMS that reached them."""
    async with started(
        time_env, "all", n=2, undeliverable={"a1@client.test"}, sent_with_email=True
    ) as run:
        await wait_for(lambda: run.rec.events().count("sent") == 2)
        first, second = run.inp.approvers
        synced = [s for s in run.rec.syncs if s.event is not None]
        assert [s.event.type for s in synced] == ["created", "delivery_failed", "sent", "sent"]
        by_sms, by_email = synced[2], synced[3]
        assert by_sms.event.data == {"approver": first.name, "channels": ["email", "sms"]}
        assert by_email.event.data == {"approver": second.name, "channels": ["email", "sms"]}
        sent_email = run.rec.emails_to(second.email, "request")[0]
        assert sent_email.record_sent is not None  # what the real activity writes, see fakes
        assert run.rec.emails_to(first.email, "request") == []  # undeliverable: never sent
        notified = {a.id: a.notified_at for a in (await run.state()).approvers}
        stamped = next(a for a in by_email.approvers if a.id == second.id)
        assert notified[second.id] == stamped.notified_at == by_email.event.at
        assert notified[first.id] is not None
        keys = [s.event.event_key for s in synced]
        assert len(set(keys)) == len(keys)  # every event its own key


async def test_a_request_whose_created_event_the_api_wrote_starts_with_the_email(time_env):
    async with started(
        time_env, "any", n=1, created_recorded=True, sent_with_email=True, channels=["email"]
    ) as run:
        await wait_for(lambda: run.rec.emails)
        assert run.rec.events() == ["sent"]
        # seq 1 is the API's `created`; 2 names the email, 3 is its `sent`
        assert run.rec.syncs[0].event.event_key == f"approval-{run.inp.approval_id}:3"
        history = await run.handle.fetch_history()
        before_timer = []
        for event in history.events:
            if event.HasField("timer_started_event_attributes"):
                break
            if event.HasField("activity_task_scheduled_event_attributes"):
                before_timer.append(event.activity_task_scheduled_event_attributes.activity_type)
        assert [a.name for a in before_timer] == ["send_email"]


async def test_a_failed_signed_pdf_does_not_undo_the_approval(time_env):
    async with started(time_env, "any", n=1, pdf_fails=True) as run:
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        assert (await run.handle.result()).status == "approved"
        assert "signed_pdf_failed" in run.rec.events()
        assert run.rec.pdfs == [run.inp.approval_id]  # a damaged document is not retried
        # Staff hear that the PDF failed, not "approved, signed PDF attached".
        (notice,) = run.rec.emails_to("office@firm.test", "staff_signed_pdf_failed")
        assert notice.context["reason"] == "document is damaged"
        assert run.rec.emails_to("office@firm.test", "staff_approved") == []
        assert any("could not be built" in s.body for s in run.rec.sms if s.to == "+15559990000")
        (copy,) = run.rec.emails_to("a1@client.test", "completed_copy")
        assert copy.context["signed_pdf_failed"] is True


async def test_a_signed_pdf_that_keeps_failing_is_given_up_after_three_attempts(time_env):
    """It used to be retried forever: `approved`, no evidence, staff never told."""
    async with started(time_env, "any", n=1, pdf_times_out=True) as run:
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        result = await run.handle.result()
        assert result.status == "approved"
        assert run.rec.pdfs == [run.inp.approval_id] * 3
        failed = [s.event for s in run.rec.syncs if s.event and s.event.type == "signed_pdf_failed"]
        assert failed[0].data == {"error": "building the signed PDF took too long"}
        assert run.rec.emails_to("office@firm.test", "staff_signed_pdf_failed")


async def test_a_tsa_that_stays_down_still_completes_and_leaves_an_audit_note(time_env):
    async with started(time_env, "any", n=1, tsa_down=True) as run:
        assert await run.approve(run.inp.approvers[0].id) == "approved"
        assert (await run.handle.result()).status == "approved"
        assert run.rec.pdfs == [run.inp.approval_id] * 3  # retried, then signed anyway
        events = [s.event for s in run.rec.syncs if s.event]
        (signed,) = [e for e in events if e.type == "signed_pdf"]
        assert signed.data["certificate_sha256"] == "cd" * 32
        assert signed.data["timestamped"] is False
        (note,) = [e for e in events if e.type == "signed_without_timestamp"]
        assert "connection refused" in note.data["error"]
        assert "signed_pdf_failed" not in run.rec.events()
        assert run.rec.emails_to("office@firm.test", "staff_approved")


async def test_an_uploaded_signed_pdf_needs_consent(time_env):
    async with started(time_env, "any", n=1) as run:
        upload = ApproveRequest(
            approver_id=run.inp.approvers[0].id,
            consent=False,
            uploaded_pdf="uploads/signed.pdf",
            evidence=Evidence(channel="upload", ip="203.0.113.9", user_agent="pytest"),
        )
        err = await rejected(run.handle.execute_update(ApprovalWorkflow.approve, upload))
        assert err.type == "ConsentRequired"
        assert await run.statuses() == ["pending"]
        upload.consent = True
        result = await run.handle.execute_update(ApprovalWorkflow.approve, upload)
        assert result.approval_status == "approved"


@asynccontextmanager
async def started_with_update(
    env: WorkflowEnvironment, routing: str, n: int, update, argument
) -> AsyncIterator[tuple[Recorder, ApprovalInput, Any, WorkflowHandle]]:
    """Start a request with an update in the same call (update-with-start), which delivers the
    update in the workflow's first task, before `run` has begun. `argument(inp)` builds it."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    rec = Recorder()
    queue = f"approvals-{uuid.uuid4()}"
    inp = make_input(
        uuid.uuid4().int % 1_000_000, await env.get_current_time(), routing=routing, n=n
    )
    temporal = client(env)
    async with Worker(
        temporal, task_queue=queue, workflows=[ApprovalWorkflow], activities=rec.activities()
    ):
        start = WithStartWorkflowOperation(
            ApprovalWorkflow.run,
            inp,
            id=f"approval-with-start-{uuid.uuid4()}",
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        result = await temporal.execute_update_with_start_workflow(
            update, argument(inp), start_workflow_operation=start
        )
        handle = await start.workflow_handle()
        try:
            yield rec, inp, result, handle
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")


async def test_an_approval_in_the_very_first_workflow_task_is_accepted(dev_env):
    """The decision waits for the request to be set up, and nobody is then asked to sign what
    they already signed."""
    first = lambda inp: approve_request(inp.approvers[0].id, signature_name="Signer")  # noqa: E731
    async with started_with_update(dev_env, "sequential", 2, ApprovalWorkflow.approve, first) as (
        rec,
        inp,
        result,
        handle,
    ):
        assert result.approval_status == "partially_approved"
        state = await handle.query(ApprovalWorkflow.status)
        assert [a.status for a in state.approvers] == ["approved", "pending"]
        await wait_for(lambda: rec.emails_to("a2@client.test", "request"))
        assert rec.events()[:2] == ["created", "approved"]
        # The request queued for approver 1 at creation was dropped: they had already signed.
        assert rec.emails_to("a1@client.test", "request") == []


async def test_a_request_voided_in_its_first_task_sends_no_request(dev_env):
    void = lambda inp: VoidRequest(reason="Sent by mistake", notify_client=True)  # noqa: E731
    async with started_with_update(dev_env, "all", 3, ApprovalWorkflow.void, void) as (
        rec,
        inp,
        state,
        handle,
    ):
        assert state.status == "void"
        result = await handle.result()
        assert result.status == "void"
        assert rec.events()[:2] == ["created", "voided"]
        assert [e for e in rec.emails if e.template == "request"] == []
        assert [s for s in rec.sms if "Reply YES" in s.body] == []
