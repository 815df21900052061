"""The service agreement's side effects: its read model (tables agreements, agreement_visits),
the `job` booking of each visit, and the client's contact for a reminder. Each is safe to run
twice: a visit's booking is made once (its id is kept on the visit row, locked while it is
made), and a snapshot of the workflow's state simply overwrites the previous one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portico.clock import utcnow
from portico.models import Agreement, AgreementVisit, Booking, Client
from workflows.types import (
    AGREEMENT_CANCELLED,
    AGREEMENT_CONTACT,
    BOOK_AGREEMENT_VISIT,
    SYNC_AGREEMENT,
    VISIT_CANCELLED,
    VISIT_DONE,
    AgreementContact,
    BookVisit,
    SyncAgreement,
)

OPEN_BOOKING = ("scheduled", "confirmed")


def _unknown(agreement_id: int) -> ApplicationError:
    return ApplicationError(
        f"Agreement {agreement_id} is not in the database.",
        type="UnknownAgreement",
        non_retryable=True,
    )


def visit_title(agreement: Agreement, n: int) -> str:
    return f"{agreement.title} (visit {n} of {agreement.visits_total})"[:200]


class AgreementActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn(name=BOOK_AGREEMENT_VISIT)
    async def book_visit(self, req: BookVisit) -> int:
        """Visit `n`'s `job` booking: made the first time, found again after that."""
        async with self.sessions() as session, session.begin():
            agreement = await session.get(Agreement, req.agreement_id)
            if agreement is None:
                raise _unknown(req.agreement_id)
            visit = await session.scalar(
                select(AgreementVisit)
                .where(AgreementVisit.agreement_id == req.agreement_id, AgreementVisit.n == req.n)
                .with_for_update()
            )
            if visit is None:
                raise _unknown(req.agreement_id)
            if visit.booking_id is not None:
                return visit.booking_id
            booking = Booking(
                client_id=agreement.client_id,
                project_id=agreement.project_id,
                kind="job",
                title=visit_title(agreement, req.n),
                date=req.date,
                status="scheduled",
            )
            session.add(booking)
            await session.flush()
            visit.booking_id = booking.id
            visit.date = req.date
            if visit.status == "scheduled":
                visit.status = "booked"
            return booking.id

    @activity.defn(name=SYNC_AGREEMENT)
    async def sync(self, snapshot: SyncAgreement) -> None:
        """Mirror the workflow's state: the agreement, its visits, and its visits' bookings
        (a moved visit moves its booking; a cancelled agreement cancels the open ones)."""
        async with self.sessions() as session, session.begin():
            agreement = await session.get(Agreement, snapshot.agreement_id, with_for_update=True)
            if agreement is None:
                raise _unknown(snapshot.agreement_id)
            agreement.status = snapshot.status
            agreement.remind_days_before = snapshot.remind_days_before
            agreement.cancel_reason = snapshot.cancel_reason
            agreement.visits_done = sum(1 for v in snapshot.visits if v.status == VISIT_DONE)
            if snapshot.ended_at is not None and agreement.ended_at is None:
                agreement.ended_at = snapshot.ended_at
            rows = {
                row.n: row
                for row in await session.scalars(
                    select(AgreementVisit).where(AgreementVisit.agreement_id == agreement.id)
                )
            }
            bookings = {
                b.id: b
                for b in await session.scalars(
                    select(Booking).where(
                        Booking.id.in_([v.booking_id for v in snapshot.visits if v.booking_id])
                    )
                )
            }
            for visit in snapshot.visits:
                row = rows.get(visit.n)
                if row is None:
                    row = AgreementVisit(agreement_id=agreement.id, n=visit.n)
                    session.add(row)
                row.date = visit.date
                row.status = visit.status
                row.booking_id = visit.booking_id
                row.done_at = visit.done_at
                if visit.reminded_for == visit.date and row.reminded_at is None:
                    row.reminded_at = utcnow()
                elif visit.reminded_for != visit.date:
                    row.reminded_at = None
                booking = bookings.get(visit.booking_id or 0)
                if booking is None or booking.status not in OPEN_BOOKING:
                    continue
                booking.date = visit.date
                if visit.status == VISIT_CANCELLED and snapshot.status == AGREEMENT_CANCELLED:
                    booking.status = "cancelled"

    @activity.defn(name=AGREEMENT_CONTACT)
    async def contact(self, agreement_id: int) -> AgreementContact:
        """The client's current name, email and phone (the portal may have changed them)."""
        async with self.sessions() as session:
            agreement = await session.get(Agreement, agreement_id)
            if agreement is None:
                raise _unknown(agreement_id)
            client = await session.get(Client, agreement.client_id)
            if client is None:
                raise _unknown(agreement_id)
        return AgreementContact(
            name=client.name,
            email=client.email or None,
            phone=client.phone,
            locale=client.locale,
            timezone=client.timezone,
        )
