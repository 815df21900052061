"""AgreementWorkflow on the time-skipping server: three years of quarterly visits in
milliseconds (each booked 14 days ahead, each reminded 2 days before by email and SMS), cancel
midway, visits completed out of order, the staff updates and their validators, and a long
agreement continuing as new with its state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from portico.schedule import visit_dates
from portico.temporal import with_converter
from tests.workflows.test_approval_workflow import wait_for
from workflows.agreement import AgreementWorkflow, long_date
from workflows.types import (
    INVALID_REMINDER,
    INVALID_VISIT_DATE,
    UNKNOWN_VISIT,
    VISIT_ALREADY_DONE,
    AgreementContact,
    AgreementInput,
    BookVisit,
    CancelAgreement,
    ChangeReminder,
    EmailMessage,
    MoveVisit,
    SmsMessage,
    SyncAgreement,
    VisitDone,
    VisitState,
)

MORNING = 9 * 60  # bookings and reminders are due at 09:00 UTC in these tests


@dataclass
class Sent:
    key: str
    at: datetime


@dataclass
class Fakes:
    """The agreement's activities, recording what they were asked and when (the test
    server's skipped clock: the activity's scheduled time)."""

    bookings: dict[int, tuple[date, datetime]] = field(default_factory=dict)
    emails: list[tuple[EmailMessage, datetime]] = field(default_factory=list)
    texts: list[tuple[SmsMessage, datetime]] = field(default_factory=list)
    syncs: list[SyncAgreement] = field(default_factory=list)
    phone: str | None = "+15550100001"
    opted_out: bool = False  # the client replied STOP: send_sms refuses, as notify.py does

    @activity.defn(name="book_agreement_visit")
    async def book(self, req: BookVisit) -> int:
        self.bookings.setdefault(req.n, (req.date, activity.info().scheduled_time))
        return 1000 + req.n

    @activity.defn(name="agreement_contact")
    async def contact(self, agreement_id: int) -> AgreementContact:
        return AgreementContact(name="Dana Lee", email="dana@client.test", phone=self.phone)

    @activity.defn(name="send_email")
    async def send_email(self, message: EmailMessage) -> None:
        if message.dedupe_key not in {m.dedupe_key for m, _ in self.emails}:
            self.emails.append((message, activity.info().scheduled_time))

    @activity.defn(name="send_sms")
    async def send_sms(self, message: SmsMessage) -> None:
        if self.opted_out:
            raise ApplicationError("replied STOP", type="OptedOut", non_retryable=True)
        if message.dedupe_key not in {m.dedupe_key for m, _ in self.texts}:
            self.texts.append((message, activity.info().scheduled_time))

    @activity.defn(name="sync_agreement")
    async def sync(self, snapshot: SyncAgreement) -> None:
        self.syncs.append(snapshot)

    @property
    def activities(self) -> list:
        return [self.book, self.contact, self.send_email, self.send_sms, self.sync]


def morning(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=UTC)


def near(at: datetime, expected: datetime) -> bool:
    """At that moment (the test server schedules a timer's work a few ms after it fires)."""
    return expected <= at < expected + timedelta(minutes=1)


async def agreement_input(
    env: WorkflowEnvironment, every: str, visits: int, starts_in: timedelta, **kw
) -> AgreementInput:
    today = (await env.get_current_time()).date()
    dates = visit_dates(today + starts_in, every, visits)
    return AgreementInput(
        agreement_id=7,
        client_id=3,
        title="HVAC maintenance",
        every=every,
        visits=[VisitState(n=i, date=d) for i, d in enumerate(dates, start=1)],
        remind_days_before=kw.pop("remind_days_before", 2),
        book_ahead_days=kw.pop("book_ahead_days", 14),
        day_starts_minutes=MORNING,
        company_name="Acme Builders",
        **kw,
    )


@asynccontextmanager
async def started(
    env: WorkflowEnvironment, inp: AgreementInput, fakes: Fakes | None = None
) -> AsyncIterator[tuple[WorkflowHandle, Fakes]]:
    fakes = fakes or Fakes()
    queue = f"agreements-{uuid.uuid4()}"
    client = with_converter(env.client)
    async with Worker(
        client, task_queue=queue, workflows=[AgreementWorkflow], activities=fakes.activities
    ):
        handle = await client.start_workflow(
            AgreementWorkflow.run, inp, id=f"agreement-{uuid.uuid4()}", task_queue=queue
        )
        yield handle, fakes


async def until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to `moment`."""
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def rejected(coro) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_a_quarterly_agreement_runs_its_three_years(time_env):
    inp = await agreement_input(time_env, "quarter", 12, timedelta(days=30))
    async with started(time_env, inp) as (handle, fakes):
        for visit in inp.visits:
            await until(time_env, morning(visit.date - timedelta(days=14)) + timedelta(hours=1))
            await wait_for(lambda n=visit.n: n in fakes.bookings)
            await until(time_env, morning(visit.date) + timedelta(hours=2))
            await wait_for(lambda n=visit.n: len(fakes.texts) >= n)
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=visit.n))
        result = await handle.result()

    assert result.status == "completed"
    assert (result.visits_done, result.visits_total) == (12, 12)
    # 12 bookings, each 14 days before its visit, in the business's morning
    assert sorted(fakes.bookings) == list(range(1, 13))
    for visit in inp.visits:
        booked_for, booked_at = fakes.bookings[visit.n]
        assert booked_for == visit.date
        assert near(booked_at, morning(visit.date - timedelta(days=14)))
    # 12 reminders by email and 12 by SMS, each 2 days before its visit
    assert len(fakes.emails) == len(fakes.texts) == 12
    for visit, (email, at), (sms, sms_at) in zip(
        inp.visits, fakes.emails, fakes.texts, strict=True
    ):
        assert near(at, morning(visit.date - timedelta(days=2)))
        assert near(sms_at, morning(visit.date - timedelta(days=2)))
        assert email.template == "agreement_reminder"
        assert email.context["visit_date"] == long_date(visit.date)
        assert (email.context["visit_n"], email.context["visits_total"]) == (visit.n, 12)
        assert f"visit {visit.n} of 12" in sms.body and long_date(visit.date) in sms.body
        assert sms.urgent is False  # quiet hours apply
    assert len({m.dedupe_key for m, _ in fakes.emails + fakes.texts}) == 24
    assert fakes.syncs[-1].status == "completed" and fakes.syncs[-1].ended_at is not None
    assert all(v.status == "done" for v in fakes.syncs[-1].visits)


async def test_cancel_midway_books_and_reminds_nothing_more(time_env):
    inp = await agreement_input(time_env, "month", 6, timedelta(days=20))
    async with started(time_env, inp) as (handle, fakes):
        await until(time_env, morning(inp.visits[0].date) + timedelta(hours=1))
        await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=1))
        await until(time_env, morning(inp.visits[1].date - timedelta(days=10)))
        await wait_for(lambda: 2 in fakes.bookings)
        state = await handle.execute_update(
            AgreementWorkflow.cancel, CancelAgreement(reason="Moving house")
        )
        assert state.status == "cancelled" and state.cancel_reason == "Moving house"
        assert [v.status for v in state.visits] == ["done"] + ["cancelled"] * 5
        result = await handle.result()
        await time_env.sleep(timedelta(days=200))
    assert result.status == "cancelled" and result.visits_done == 1
    assert sorted(fakes.bookings) == [1, 2]  # nothing booked after the cancel
    assert len(fakes.emails) == 1  # visit 2's reminder was not due yet: never sent
    assert fakes.syncs[-1].status == "cancelled" and fakes.syncs[-1].ended_at is not None


async def test_visits_completed_out_of_order_all_count(time_env):
    inp = await agreement_input(time_env, "week", 4, timedelta(days=1), book_ahead_days=30)
    async with started(time_env, inp) as (handle, fakes):
        await wait_for(lambda: len(fakes.bookings) == 4)  # all within 30 days: booked now
        for n in (3, 1, 3, 4):  # a repeat changes nothing
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=n))
        await wait_for(lambda: bool(fakes.syncs) and _done(fakes.syncs[-1]) == {1, 3, 4})
        state = await handle.query(AgreementWorkflow.state)
        assert (state.status, state.visits_done) == ("active", 3)
        assert state.next_visit == inp.visits[1].date
        await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=2))
        result = await handle.result()
    assert result.status == "completed" and result.visits_done == 4


def _done(snapshot: SyncAgreement) -> set[int]:
    return {v.n for v in snapshot.visits if v.status == "done"}


async def test_move_a_visit_and_change_the_reminder_lead(time_env):
    inp = await agreement_input(time_env, "month", 2, timedelta(days=40))
    async with started(time_env, inp) as (handle, fakes):
        today = (await time_env.get_current_time()).date()
        moved_to = inp.visits[0].date + timedelta(days=3)
        state = await handle.execute_update(
            AgreementWorkflow.move_visit, MoveVisit(n=1, date=moved_to)
        )
        assert state.visits[0].date == moved_to
        state = await handle.execute_update(AgreementWorkflow.change_reminder, ChangeReminder(5))
        assert state.remind_days_before == 5

        for bad, kind in (
            (MoveVisit(n=9, date=moved_to), UNKNOWN_VISIT),
            (MoveVisit(n=1, date=today - timedelta(days=1)), INVALID_VISIT_DATE),
            (MoveVisit(n=1, date=today + timedelta(days=4000)), INVALID_VISIT_DATE),
        ):
            error = await rejected(handle.execute_update(AgreementWorkflow.move_visit, bad))
            assert error.type == kind
        for days in (-1, 31):
            error = await rejected(
                handle.execute_update(AgreementWorkflow.change_reminder, ChangeReminder(days))
            )
            assert error.type == INVALID_REMINDER

        await until(time_env, morning(moved_to) + timedelta(hours=1))
        await wait_for(lambda: len(fakes.emails) == 1)
        assert fakes.bookings[1][0] == moved_to
        assert near(fakes.emails[0][1], morning(moved_to - timedelta(days=5)))
        await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=1))
        await wait_for(lambda: bool(fakes.syncs) and _done(fakes.syncs[-1]) == {1})
        error = await rejected(
            handle.execute_update(
                AgreementWorkflow.move_visit, MoveVisit(n=1, date=moved_to + timedelta(days=9))
            )
        )
        assert error.type == VISIT_ALREADY_DONE
        await handle.execute_update(AgreementWorkflow.cancel, CancelAgreement())
        await handle.result()


async def test_a_visit_moves_to_the_business_s_today_after_midnight_utc(time_env):
    """At 20:00 in New York it is already tomorrow in UTC: the business's today (its morning
    at 14:00 UTC) is still a date a visit may move to; the day before it is not."""
    inp = await agreement_input(time_env, "month", 2, timedelta(days=40))
    inp.day_starts_minutes = 14 * 60  # 09:00 in New York (EST)
    async with started(time_env, inp) as (handle, fakes):
        now = await time_env.get_current_time()
        await until(time_env, datetime.combine(now.date() + timedelta(days=1), time(1), UTC))
        their_today = (await time_env.get_current_time() - timedelta(hours=5)).date()
        state = await handle.execute_update(
            AgreementWorkflow.move_visit, MoveVisit(n=1, date=their_today)
        )
        assert state.visits[0].date == their_today
        error = await rejected(
            handle.execute_update(
                AgreementWorkflow.move_visit,
                MoveVisit(n=2, date=their_today - timedelta(days=1)),
            )
        )
        assert error.type == INVALID_VISIT_DATE
        await handle.execute_update(AgreementWorkflow.cancel, CancelAgreement())
        await handle.result()


async def test_a_client_without_a_phone_gets_the_email_only(time_env):
    inp = await agreement_input(time_env, "year", 1, timedelta(days=5))
    fakes = Fakes(phone=None)
    async with started(time_env, inp, fakes) as (handle, _):
        await until(time_env, morning(inp.visits[0].date))
        await wait_for(lambda: len(fakes.emails) == 1)
        await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=1))
        assert (await handle.result()).status == "completed"
    assert fakes.texts == []


async def test_a_long_agreement_continues_as_new_with_its_state(time_env):
    inp = await agreement_input(
        time_env, "week", 10, timedelta(days=3), book_ahead_days=7, history_limit=40
    )
    async with started(time_env, inp) as (handle, fakes):
        first_run = (await handle.describe()).run_id
        for visit in inp.visits:
            await until(time_env, morning(visit.date) + timedelta(hours=1))
            await wait_for(lambda n=visit.n: len(fakes.texts) >= n)
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=visit.n))
        result = await handle.result()
        last_run = (await handle.describe()).run_id
    assert last_run != first_run  # it continued as new (more than once: 10 visits, 40 events)
    assert result.status == "completed" and result.visits_done == 10
    assert sorted(fakes.bookings) == list(range(1, 11))
    assert len(fakes.emails) == len(fakes.texts) == 10  # nothing sent twice across runs


async def test_an_opted_out_phone_does_not_stop_the_schedule(time_env):
    inp = await agreement_input(time_env, "week", 2, timedelta(days=3), book_ahead_days=7)
    fakes = Fakes(opted_out=True)
    async with started(time_env, inp, fakes) as (handle, _):
        for visit in inp.visits:
            await until(time_env, morning(visit.date) + timedelta(hours=1))
            await wait_for(lambda n=visit.n: len(fakes.emails) >= n)
            await handle.signal(AgreementWorkflow.visit_done, VisitDone(n=visit.n))
        result = await handle.result()
    assert result.status == "completed" and len(fakes.emails) == 2 and fakes.texts == []
