"""Service agreements (CONTRACT section 13): creating one (its rows, then its workflow
`agreement-{id}`), the staff changes (cancel, move a visit, change the reminder lead: updates
of the workflow), reads from the read model, and the hand-off of completed bookings.

A booking completed with PATCH /api/v1/bookings/{id} is committed first; then its visit's
workflow is signalled. Should that signal not arrive (Temporal down, the web process killed
right after the commit), the worker's sweep finds the visit whose booking is completed but
which the read model does not show done, and signals again: the signal is idempotent, so a
visit counts once however often it is told."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.agreement_schemas import AgreementIn, AgreementListOut, AgreementOut, VisitOut
from portico.errors import Conflict, Invalid, NotFound
from portico.models import Agreement, AgreementVisit, Booking, Client, Project
from portico.schedule import visit_dates
from portico.services.gateway import TemporalGateway
from portico.services.handoff import sweep_forever
from portico.settings import Settings
from workflows import search_attributes as sa
from workflows.types import (
    AGREEMENT_ACTIVE,
    AGREEMENT_CANCEL,
    AGREEMENT_CHANGE_REMINDER,
    AGREEMENT_MOVE_VISIT,
    AGREEMENT_VISIT_DONE,
    AGREEMENT_WORKFLOW,
    MORNING_HOUR,
    VISIT_BOOKED,
    VISIT_SCHEDULED,
    AgreementInput,
    AgreementState,
    CancelAgreement,
    ChangeReminder,
    MoveVisit,
    VisitDone,
    VisitState,
    agreement_workflow_id,
)

log = logging.getLogger(__name__)
MAX_START_AHEAD = timedelta(days=5 * 366)  # an agreement starts within five years
MORNING = time(MORNING_HOUR)  # bookings and reminders are due then, business time
SWEEP_EVERY = timedelta(seconds=30)
SWEEP_BATCH = 100


@dataclass
class AgreementView:
    """An agreement with its visits, as the API, the portal and the console show it."""

    agreement: Agreement
    visits: list[AgreementVisit]

    @property
    def next_visit(self) -> AgreementVisit | None:
        if self.agreement.status != AGREEMENT_ACTIVE:
            return None
        upcoming = [v for v in self.visits if v.status in (VISIT_SCHEDULED, VISIT_BOOKED)]
        return min(upcoming, key=lambda v: (v.date, v.n)) if upcoming else None


def agreement_out(view: AgreementView) -> AgreementOut:
    """An agreement as the API answers it: its row, its next visit and its visits."""
    a = view.agreement
    upcoming = view.next_visit
    columns = {
        name: getattr(a, name)
        for name in AgreementOut.model_fields
        if name not in ("next_visit", "visits")
    }
    return AgreementOut(
        **columns,
        next_visit=upcoming.date if upcoming else None,
        visits=[VisitOut.model_validate(v) for v in view.visits],
    )


class Agreements:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self.zone = ZoneInfo(settings.default_timezone)

    def today(self) -> date:
        """Today where the business is (PORTICO_DEFAULT_TIMEZONE)."""
        return datetime.now(self.zone).date()

    def _day_starts_minutes(self, day: date) -> int:
        """09:00 business time on `day`, as minutes after midnight UTC (may be negative)."""
        local = datetime.combine(day, MORNING, tzinfo=self.zone)
        midnight = datetime.combine(day, time(0), tzinfo=UTC)
        return int((local - midnight).total_seconds() // 60)

    # --- create -----------------------------------------------------------------------------

    async def create(self, data: AgreementIn, actor: str = "api") -> AgreementOut:
        """Record the agreement and its visits, then start `agreement-{id}` (reject
        duplicates); if Temporal does not take it, the rows are removed again (503)."""
        today = self.today()
        if data.starts_on < today:
            raise Invalid("starts_on must be today or later.")
        if data.starts_on > today + MAX_START_AHEAD:
            raise Invalid("starts_on must be within five years.")
        dates = visit_dates(data.starts_on, data.every, data.visits)
        async with self.sessions() as session, session.begin():
            client = await session.get(Client, data.client_id)
            if client is None:
                raise NotFound(f"Client {data.client_id} does not exist.")
            if data.project_id is not None:
                project = await session.get(Project, data.project_id)
                if project is None:
                    raise NotFound(f"Project {data.project_id} does not exist.")
                if project.client_id != client.id:
                    raise Conflict(
                        "The project belongs to another client.", code="project_of_another_client"
                    )
            agreement = Agreement(
                client_id=client.id,
                project_id=data.project_id,
                title=data.title,
                every=data.every,
                starts_on=data.starts_on,
                visits_total=data.visits,
                visits_done=0,
                remind_days_before=data.remind_days_before,
                status=AGREEMENT_ACTIVE,
                workflow_id="pending",
            )
            session.add(agreement)
            await session.flush()
            agreement.workflow_id = agreement_workflow_id(agreement.id)
            session.add_all(
                AgreementVisit(agreement_id=agreement.id, n=n, date=d, status=VISIT_SCHEDULED)
                for n, d in enumerate(dates, start=1)
            )
        inp = AgreementInput(
            agreement_id=agreement.id,
            client_id=client.id,
            title=data.title,
            every=data.every,
            visits=[VisitState(n=n, date=d) for n, d in enumerate(dates, start=1)],
            remind_days_before=data.remind_days_before,
            book_ahead_days=self.settings.agreement_book_ahead_days,
            day_starts_minutes=self._day_starts_minutes(data.starts_on),
            company_name=self.settings.company_name,
            sms_task_queue=self.settings.sms_task_queue,
            created_by=actor,
        )
        agreement_id = agreement.id
        await self.temporal.start_new(
            AGREEMENT_WORKFLOW,
            inp,
            workflow_id=agreement.workflow_id,
            search_attributes=sa.agreement_initial(
                AGREEMENT_ACTIVE, client.company or client.name, data.every
            ),
            forget=lambda: self._forget(agreement_id),
            engine="scheduling engine",
            nothing_done="nothing was booked",
        )
        return await self.get(agreement.id)

    async def _forget(self, agreement_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(AgreementVisit).where(AgreementVisit.agreement_id == agreement_id)
            )
            await session.execute(delete(Agreement).where(Agreement.id == agreement_id))

    # --- reads ------------------------------------------------------------------------------

    async def _views(
        self, session: AsyncSession, agreements: list[Agreement]
    ) -> list[AgreementView]:
        by_id: dict[int, list[AgreementVisit]] = {a.id: [] for a in agreements}
        if agreements:
            for visit in await session.scalars(
                select(AgreementVisit)
                .where(AgreementVisit.agreement_id.in_(list(by_id)))
                .order_by(AgreementVisit.agreement_id, AgreementVisit.n)
            ):
                by_id[visit.agreement_id].append(visit)
        return [AgreementView(a, by_id[a.id]) for a in agreements]

    async def view(self, agreement_id: int, client_id: int | None = None) -> AgreementView:
        """One agreement (of this client, when given: another client's is not found)."""
        async with self.sessions() as session:
            query = select(Agreement).where(Agreement.id == agreement_id)
            if client_id is not None:
                query = query.where(Agreement.client_id == client_id)
            agreement = await session.scalar(query)
            if agreement is None:
                raise NotFound(
                    "There is no such agreement in your account."
                    if client_id is not None
                    else f"Agreement {agreement_id} does not exist."
                )
            (found,) = await self._views(session, [agreement])
        return found

    async def views(self, client_id: int | None = None) -> list[AgreementView]:
        async with self.sessions() as session:
            query = select(Agreement).order_by(Agreement.id.desc())
            if client_id is not None:
                query = query.where(Agreement.client_id == client_id)
            return await self._views(session, list(await session.scalars(query)))

    async def get(self, agreement_id: int) -> AgreementOut:
        return agreement_out(await self.view(agreement_id))

    async def list(self, client_id: int | None = None) -> AgreementListOut:
        return AgreementListOut(items=[agreement_out(v) for v in await self.views(client_id)])

    # --- staff changes (updates of the workflow) --------------------------------------------

    async def _update(self, agreement_id: int, update: str, arg: Any) -> AgreementOut:
        view = await self.view(agreement_id)
        if view.agreement.status != AGREEMENT_ACTIVE:
            raise Conflict(f"This agreement is {view.agreement.status}.", code="agreement_closed")
        handle = (await self.temporal.client()).get_workflow_handle(view.agreement.workflow_id)
        await self.temporal.call(handle.execute_update(update, arg, result_type=AgreementState))
        return await self.get(agreement_id)  # the update answers once the read model shows it

    async def cancel(
        self, agreement_id: int, reason: str | None = None, actor: str = "api"
    ) -> AgreementOut:
        return await self._update(
            agreement_id, AGREEMENT_CANCEL, CancelAgreement(reason=reason, actor=actor)
        )

    async def move_visit(
        self, agreement_id: int, n: int, new_date: date, actor: str = "api"
    ) -> AgreementOut:
        view = await self.view(agreement_id)
        if not any(v.n == n for v in view.visits):
            raise NotFound(f"Agreement {agreement_id} has no visit {n}.")
        if new_date < self.today():
            raise Invalid("A visit cannot move into the past.")
        if new_date > self.today() + MAX_START_AHEAD:
            raise Invalid("A visit can move at most five years ahead.")
        return await self._update(
            agreement_id, AGREEMENT_MOVE_VISIT, MoveVisit(n=n, date=new_date, actor=actor)
        )

    async def change_reminder(
        self, agreement_id: int, days: int, actor: str = "api"
    ) -> AgreementOut:
        return await self._update(
            agreement_id, AGREEMENT_CHANGE_REMINDER, ChangeReminder(days=days, actor=actor)
        )

    # --- completed bookings -----------------------------------------------------------------

    async def booking_completed(self, booking_id: int) -> None:
        """Tell the visit's workflow its booking was completed (after the commit); a signal
        that does not get through is sent again by the sweep."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(AgreementVisit, Agreement)
                    .join(Agreement, AgreementVisit.agreement_id == Agreement.id)
                    .where(AgreementVisit.booking_id == booking_id)
                )
            ).first()
        if row is None:
            return
        visit, agreement = row
        await self._signal_done(agreement, visit)

    async def _signal_done(self, agreement: Agreement, visit: AgreementVisit) -> bool:
        if agreement.status != AGREEMENT_ACTIVE or visit.status not in (
            VISIT_SCHEDULED,
            VISIT_BOOKED,
        ):
            return False
        try:
            handle = (await self.temporal.client()).get_workflow_handle(agreement.workflow_id)
            await handle.signal(
                AGREEMENT_VISIT_DONE, VisitDone(n=visit.n, booking_id=visit.booking_id)
            )
        except Exception as err:  # the sweep sends it again
            log.warning(
                "visit %s of %s waits for the sweep: %s", visit.n, agreement.workflow_id, err
            )
            return False
        return True

    async def sweep(self) -> int:
        """Signal again every visit whose booking is completed but that is not done yet."""
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(AgreementVisit, Agreement)
                    .join(Agreement, AgreementVisit.agreement_id == Agreement.id)
                    .join(Booking, AgreementVisit.booking_id == Booking.id)
                    .where(
                        Agreement.status == AGREEMENT_ACTIVE,
                        AgreementVisit.status.in_((VISIT_SCHEDULED, VISIT_BOOKED)),
                        Booking.status == "completed",
                    )
                    .order_by(AgreementVisit.id)
                    .limit(SWEEP_BATCH)
                )
            ).all()
        for visit, agreement in rows:
            await self._signal_done(agreement, visit)
        return len(rows)

    async def sweep_forever(self) -> None:
        await sweep_forever(self.sweep, SWEEP_EVERY, SWEEP_BATCH + 1)  # never "a backlog"
