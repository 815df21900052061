"""AgreementWorkflow: one per service agreement (workflow id `agreement-{id}`). The schedule
lives here, in timers: each visit is booked as a `job` booking `book_ahead_days` before it,
the client is reminded `remind_days_before` days before it (email, and a non-urgent SMS that
waits out quiet hours and is not sent to a number that opted out), a visit counts as done when
staff complete its booking (the `visit_done` signal, in any order), and the workflow ends when
every visit is done or on `cancel`.

Staff changes are updates with validators (`cancel`, `move_visit`, `change_reminder`): a bad
one is refused before it enters the history, and a good one answers after the read model
(tables agreements / agreement_visits, written by the `sync_agreement` activity) shows it.
A long agreement (120 weekly visits) continues as new, carrying its state, before its history
grows past `history_limit` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import search_attributes as sa
from workflows.types import (
    AGREEMENT_ACTIVE,
    AGREEMENT_CANCEL,
    AGREEMENT_CANCELLED,
    AGREEMENT_CHANGE_REMINDER,
    AGREEMENT_CLOSED,
    AGREEMENT_COMPLETED,
    AGREEMENT_CONTACT,
    AGREEMENT_MOVE_VISIT,
    AGREEMENT_STATE,
    AGREEMENT_VISIT_DONE,
    AGREEMENT_WORKFLOW,
    BOOK_AGREEMENT_VISIT,
    INVALID_REMINDER,
    INVALID_VISIT_DATE,
    MAX_REMIND_DAYS,
    MORNING_HOUR,
    SYNC_AGREEMENT,
    UNKNOWN_VISIT,
    VISIT_ALREADY_DONE,
    VISIT_BOOKED,
    VISIT_CANCELLED,
    VISIT_DONE,
    VISIT_SCHEDULED,
    AgreementContact,
    AgreementInput,
    AgreementState,
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

RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidRecipient", "OptedOut"],
)
SMS_SEND_WINDOW = timedelta(days=2)  # a night of quiet hours plus the throttled SMS queue
MAX_MOVE = timedelta(days=5 * 366)  # a visit moves at most this far from today
# A moved visit's date is checked against the business's day, not UTC's (docs/versioning.md).
BUSINESS_DAY_PATCH = "visit-move-business-day"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def long_date(day: date) -> str:
    """e.g. 'Tuesday 31 March 2026' (no locale lookups: workflow code must be deterministic)."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def _error(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name=AGREEMENT_WORKFLOW)
class AgreementWorkflow:
    @workflow.init
    def __init__(self, inp: AgreementInput) -> None:
        self._inp = inp
        self._status = inp.status
        self._cancel_reason = inp.cancel_reason
        self._remind_days = inp.remind_days_before
        self._visits = [replace(v) for v in sorted(inp.visits, key=lambda v: v.n)]
        self._lock = asyncio.Lock()
        self._dirty = False  # a signal changed the state: sync it and plan again
        self._sends: dict[int, asyncio.Task[None]] = {}  # visit n -> its reminder in flight

    # --- run --------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: AgreementInput) -> AgreementState:
        if not inp.continued:
            async with self._lock:
                await self._sync()
        while self._status == AGREEMENT_ACTIVE:
            async with self._lock:
                acted = await self._act_on_due()
                if self._dirty:
                    self._dirty = False
                    await self._sync()
                    acted = True
                if self._status == AGREEMENT_ACTIVE and self._all_done():
                    self._status = AGREEMENT_COMPLETED
            if self._status != AGREEMENT_ACTIVE:
                break
            # Continue as new between steps, never with a reminder still in flight (its SMS
            # may be waiting out quiet hours): the next step tries again.
            if acted and not self._sends and self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._status == AGREEMENT_ACTIVE and not self._dirty and not self._sends:
                    workflow.continue_as_new(self._carried_over())
            await self._wait()
        for task in list(self._sends.values()):  # cancelled, or done: nothing more to send
            task.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:
            await self._sync(ended=True)
        if self._sends:
            await asyncio.gather(*list(self._sends.values()), return_exceptions=True)
        return self.state()

    async def _wait(self) -> None:
        """Until the next booking or reminder is due, a signal or an update arrives."""
        due = self._next_due()
        woken = lambda: self._dirty or self._status != AGREEMENT_ACTIVE  # noqa: E731
        if due is None:
            await workflow.wait_condition(woken)
            return
        remaining = due - workflow.now()
        if remaining <= timedelta(0):
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(woken, timeout=remaining)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._inp.history_limit
        )

    def _carried_over(self) -> AgreementInput:
        return replace(
            self._inp,
            visits=[replace(v) for v in self._visits],
            remind_days_before=self._remind_days,
            status=self._status,
            cancel_reason=self._cancel_reason,
            continued=True,
        )

    # --- the schedule -----------------------------------------------------------------------

    def _at(self, day: date) -> datetime:
        """The moment in `day` a booking or reminder is due (the business's morning)."""
        return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(
            minutes=self._inp.day_starts_minutes
        )

    def _business_days(self) -> tuple[date, date]:
        """The earliest and the latest date today may be where the business is; the service
        checks a move against the real one (PORTICO_DEFAULT_TIMEZONE). UTC's date is a day
        ahead every evening west of Greenwich. The workflow knows the zone only by its morning
        (`day_starts_minutes`), taken when the agreement was made: an hour either way covers a
        daylight-saving change since then, so the workflow never refuses what the service
        took (a zone changed since by more than that is not followed)."""
        local = workflow.now() + timedelta(minutes=MORNING_HOUR * 60 - self._inp.day_starts_minutes)
        slack = timedelta(hours=1)
        return (local - slack).date(), (local + slack).date()

    def _book_at(self, visit: VisitState) -> datetime:
        return self._at(visit.date - timedelta(days=self._inp.book_ahead_days))

    def _remind_at(self, visit: VisitState) -> datetime:
        return self._at(visit.date - timedelta(days=self._remind_days))

    def _open(self, visit: VisitState) -> bool:
        return visit.status in (VISIT_SCHEDULED, VISIT_BOOKED)

    def _needs_reminder(self, visit: VisitState) -> bool:
        return self._open(visit) and visit.reminded_for != visit.date

    def _next_due(self) -> datetime | None:
        times = []
        for visit in self._visits:
            if visit.status == VISIT_SCHEDULED:
                times.append(self._book_at(visit))
            if self._needs_reminder(visit):
                times.append(self._remind_at(visit))
        return min(times) if times else None

    async def _act_on_due(self) -> bool:
        """Book and remind what is due now; whether anything was done."""
        now = workflow.now()
        acted = False
        for visit in self._visits:
            if self._status != AGREEMENT_ACTIVE:
                break
            remind = self._needs_reminder(visit) and self._remind_at(visit) <= now
            if visit.status == VISIT_SCHEDULED and (self._book_at(visit) <= now or remind):
                await self._book(visit)
                acted = True
            if remind:
                visit.reminded_for = visit.date
                # A visit whose day has passed (moved, or the agreement made late) gets none.
                if now < self._at(visit.date + timedelta(days=1)):
                    self._remind(visit)
                await self._sync()
                acted = True
        return acted

    def _all_done(self) -> bool:
        return all(v.status == VISIT_DONE for v in self._visits)

    def _visit(self, n: int) -> VisitState | None:
        return next((v for v in self._visits if v.n == n), None)

    # --- side effects -----------------------------------------------------------------------

    async def _book(self, visit: VisitState) -> None:
        booking_id: int = await workflow.execute_activity(
            BOOK_AGREEMENT_VISIT,
            BookVisit(agreement_id=self._inp.agreement_id, n=visit.n, date=visit.date),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RECORD_RETRY,
            result_type=int,
        )
        visit.booking_id = booking_id
        if visit.status == VISIT_SCHEDULED:
            visit.status = VISIT_BOOKED
        await self._sync()

    def _remind(self, visit: VisitState) -> None:
        """Send the reminder without holding up the schedule: its SMS may wait hours for the
        recipient's quiet hours to end. Called off if the visit is done, moved or cancelled."""
        previous = self._sends.pop(visit.n, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._send_reminder(replace(visit)))
        self._sends[visit.n] = task
        task.add_done_callback(lambda done: self._forget_send(visit.n, done))

    def _forget_send(self, n: int, done: asyncio.Task[None]) -> None:
        if self._sends.get(n) is done:
            del self._sends[n]

    async def _send_reminder(self, visit: VisitState) -> None:
        contact: AgreementContact = await workflow.execute_activity(
            AGREEMENT_CONTACT,
            self._inp.agreement_id,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RECORD_RETRY,
            result_type=AgreementContact,
        )
        key = f"{workflow.info().workflow_id}:visit-{visit.n}:{visit.date.isoformat()}:reminder"
        total = len(self._visits)
        when = long_date(visit.date)
        context = {
            "company_name": self._inp.company_name,
            "client_name": contact.name,
            "agreement_title": self._inp.title,
            "agreement_id": self._inp.agreement_id,
            "visit_n": visit.n,
            "visits_total": total,
            "visit_date": when,  # English; the activity writes `visit_date_iso` in the reader's
            "visit_date_iso": visit.date.isoformat(),
        }
        if contact.email:
            await self._deliver(
                "send_email",
                EmailMessage(
                    dedupe_key=f"{key}:email",
                    to=contact.email,
                    template="agreement_reminder",
                    context=context,
                    locale=contact.locale,
                    timezone=contact.timezone,
                ),
            )
        if contact.phone:
            await self._deliver(
                "send_sms",
                SmsMessage(
                    dedupe_key=f"{key}:sms",
                    to=contact.phone,
                    body=(
                        f"{self._inp.company_name}: reminder, visit {visit.n} of {total} of "
                        f'"{self._inp.title}" is on {when}.'
                    ),
                    urgent=False,  # waits out the recipient's quiet hours
                    template="agreement_reminder",  # `body` is the English fallback
                    context=context,
                    locale=contact.locale,
                ),
            )

    async def _deliver(self, activity: str, message: EmailMessage | SmsMessage) -> None:
        sms = activity == "send_sms"
        try:
            await workflow.execute_activity(
                activity,
                message,
                task_queue=(self._inp.sms_task_queue or None) if sms else None,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=SMS_SEND_WINDOW if sms else timedelta(days=1),
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as err:  # opted out, not an address: the schedule goes on
            workflow.logger.warning("agreement reminder not sent (%s): %s", activity, err.cause)

    async def _sync(self, ended: bool = False) -> None:
        """Mirror the state into the read model and keep the search attributes current."""
        if workflow.info().typed_search_attributes.get(sa.STATUS) is not None:
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.STATUS.value_set(self._status),
                sa.VISITS_DONE.value_set(self._done_count()),
            ]
            upcoming = self._next_visit()
            updates.append(
                sa.NEXT_VISIT.value_set(datetime.combine(upcoming, time(0), tzinfo=UTC))
                if upcoming is not None and self._status == AGREEMENT_ACTIVE
                else sa.NEXT_VISIT.value_unset()
            )
            workflow.upsert_search_attributes(updates)
        await workflow.execute_activity(
            SYNC_AGREEMENT,
            SyncAgreement(
                agreement_id=self._inp.agreement_id,
                status=self._status,
                remind_days_before=self._remind_days,
                visits=[replace(v) for v in self._visits],
                cancel_reason=self._cancel_reason,
                ended_at=workflow.now() if ended else None,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RECORD_RETRY,
        )

    # --- staff and bookings -----------------------------------------------------------------

    @workflow.signal(name=AGREEMENT_VISIT_DONE)
    def visit_done(self, sig: VisitDone) -> None:
        """Staff completed a visit's booking (any visit, in any order); repeats change nothing."""
        visit = self._visit(sig.n)
        if visit is None or not self._open(visit) or self._status != AGREEMENT_ACTIVE:
            return
        visit.status = VISIT_DONE
        visit.done_at = workflow.now()
        if sig.booking_id is not None and visit.booking_id is None:
            visit.booking_id = sig.booking_id
        task = self._sends.pop(visit.n, None)
        if task is not None:
            task.cancel()
        self._dirty = True

    @workflow.update(name=AGREEMENT_CANCEL)
    async def cancel(self, req: CancelAgreement) -> AgreementState:
        async with self._lock:
            self._validate_cancel(req)
            self._status = AGREEMENT_CANCELLED
            self._cancel_reason = (req.reason or "").strip() or None
            for visit in self._visits:
                if self._open(visit):
                    visit.status = VISIT_CANCELLED
            for task in list(self._sends.values()):
                task.cancel()
            await self._sync()
            return self.state()

    @cancel.validator
    def _validate_cancel(self, req: CancelAgreement) -> None:
        self._validate_active()

    @workflow.update(name=AGREEMENT_MOVE_VISIT)
    async def move_visit(self, req: MoveVisit) -> AgreementState:
        async with self._lock:
            self._check_visit(req)
            if workflow.patched(BUSINESS_DAY_PATCH):
                self._check_date(req, *self._business_days())
            else:  # runs that applied a move before the patch: UTC's date, as then
                self._check_date(req, workflow.now().date(), workflow.now().date())
            visit = self._visit(req.n)
            assert visit is not None
            visit.date = req.date
            task = self._sends.pop(visit.n, None)
            if task is not None:
                task.cancel()
            await self._sync()
            return self.state()

    @move_visit.validator
    def _validate_move(self, req: MoveVisit) -> None:
        """Not run on replay: it may follow the current rules."""
        self._check_visit(req)
        self._check_date(req, *self._business_days())

    def _check_visit(self, req: MoveVisit) -> None:
        self._validate_active()
        visit = self._visit(req.n)
        if visit is None:
            raise _error(f"This agreement has no visit {req.n}.", UNKNOWN_VISIT)
        if not self._open(visit):
            raise _error(f"Visit {req.n} is already done.", VISIT_ALREADY_DONE)

    @staticmethod
    def _check_date(req: MoveVisit, earliest: date, latest: date) -> None:
        """`earliest` and `latest`: what today may be where the business is."""
        if req.date < earliest:
            raise _error("A visit cannot move into the past.", INVALID_VISIT_DATE)
        if req.date > latest + MAX_MOVE:
            raise _error("A visit can move at most five years ahead.", INVALID_VISIT_DATE)

    @workflow.update(name=AGREEMENT_CHANGE_REMINDER)
    async def change_reminder(self, req: ChangeReminder) -> AgreementState:
        """A new reminder lead for the visits not reminded yet."""
        async with self._lock:
            self._validate_reminder(req)
            self._remind_days = req.days
            await self._sync()
            return self.state()

    @change_reminder.validator
    def _validate_reminder(self, req: ChangeReminder) -> None:
        self._validate_active()
        if not 0 <= req.days <= MAX_REMIND_DAYS:
            raise _error(f"remind_days_before must be 0 to {MAX_REMIND_DAYS}.", INVALID_REMINDER)

    def _validate_active(self) -> None:
        if self._status != AGREEMENT_ACTIVE:
            raise _error(f"This agreement is {self._status}.", AGREEMENT_CLOSED)

    # --- queries ----------------------------------------------------------------------------

    def _done_count(self) -> int:
        return sum(1 for v in self._visits if v.status == VISIT_DONE)

    def _next_visit(self) -> date | None:
        upcoming = [v.date for v in self._visits if self._open(v)]
        return min(upcoming) if upcoming else None

    @workflow.query(name=AGREEMENT_STATE)
    def state(self) -> AgreementState:
        return AgreementState(
            agreement_id=self._inp.agreement_id,
            status=self._status,
            remind_days_before=self._remind_days,
            visits=[replace(v) for v in self._visits],
            visits_done=self._done_count(),
            visits_total=len(self._visits),
            next_visit=self._next_visit() if self._status == AGREEMENT_ACTIVE else None,
            cancel_reason=self._cancel_reason,
        )
