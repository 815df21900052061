"""Validated inputs and the answers of the service-agreement calls of the staff API
(CONTRACT section 13)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from portico.schemas import Id, IsoDate, NotBool, Out, Strict, UtcDatetime

Every = Literal["week", "month", "quarter", "year"]
RemindDays = Annotated[int, Field(ge=0, le=30), NotBool]
AGREEMENT_STATUSES = ("active", "completed", "cancelled")
VISIT_STATUSES = ("scheduled", "booked", "done", "cancelled")


class AgreementIn(Strict):
    client_id: Id
    project_id: Id | None = None
    title: str = Field(min_length=1, max_length=200)
    starts_on: IsoDate = Field(description="The first visit's date (today or later).")
    every: Every
    visits: Annotated[int, Field(ge=1, le=120), NotBool]
    remind_days_before: RemindDays = 2


class AgreementUpdateIn(Strict):
    """What staff change on a running agreement: the reminder lead of the visits not reminded
    yet (moving a visit and cancelling have calls of their own)."""

    remind_days_before: RemindDays


class AgreementCancelIn(Strict):
    reason: str | None = Field(None, max_length=500)


class VisitMoveIn(Strict):
    date: IsoDate = Field(description="The visit's new date (today or later).")


class VisitOut(Out):
    n: int
    date: dt.date
    status: Literal["scheduled", "booked", "done", "cancelled"]
    booking_id: int | None
    reminded_at: UtcDatetime | None
    done_at: UtcDatetime | None


class AgreementOut(Out):
    id: int
    client_id: int
    project_id: int | None
    title: str
    every: Every
    starts_on: dt.date
    status: Literal["active", "completed", "cancelled"]
    remind_days_before: int
    visits_done: int
    visits_total: int
    next_visit: dt.date | None
    workflow_id: str
    cancel_reason: str | None
    created_at: UtcDatetime | None
    ended_at: UtcDatetime | None
    visits: list[VisitOut]


class AgreementListOut(Out):
    items: list[AgreementOut]
