"""Validated inputs of the portal, invoice and payment calls of the staff API (CONTRACT §3)
and of the portal's own forms."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from portico.schemas import Id, Int, LineItem, Strict, check_items_total

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE_PATTERN = r"^(whatsapp:)?\+[1-9]\d{6,14}$"
MANUAL_METHODS = ("check", "cash", "bank_transfer")
BOOKING_STATUSES = ("scheduled", "confirmed", "completed", "cancelled")


class InvoiceIn(Strict):
    project_id: Id
    number: str = Field(min_length=1, max_length=60)
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    due_date: dt.date
    line_items: list[LineItem] = Field(min_length=1, max_length=500)
    tax_rate_percent: Decimal | None = Field(None, ge=0, le=100, max_digits=7, decimal_places=4)
    approval_id: Id | None = None
    document_id: Id | None = None
    notes: str | None = Field(None, max_length=5000)
    remind_every_days: Int | None = Field(7, ge=1, le=90)
    notify_client: bool = True

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


class PaymentIn(Strict):
    amount_cents: Int = Field(gt=0, le=10**13)
    method: Literal["check", "cash", "bank_transfer"]
    reference: str | None = Field(None, max_length=200)


class InvoiceVoidIn(Strict):
    reason: str | None = Field(None, max_length=2000)


class BookingIn(Strict):
    client_id: Id | None = None
    project_id: Id | None = None
    title: str = Field(min_length=1, max_length=200)
    kind: Literal["appointment", "visit", "job", "booking"] = "appointment"
    date: dt.date
    time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    status: Literal["scheduled", "confirmed", "completed", "cancelled"] = "scheduled"
    notes: str | None = Field(None, max_length=5000)

    @model_validator(mode="after")
    def _owner(self) -> BookingIn:
        if self.client_id is None and self.project_id is None:
            raise ValueError("give client_id or project_id")
        return self


class BookingUpdateIn(Strict):
    date: dt.date | None = None
    time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    status: Literal["scheduled", "confirmed", "completed", "cancelled"] | None = None
    notes: str | None = Field(None, max_length=5000)


class ProjectUpdateIn(Strict):
    status: Literal["active", "complete"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)


class PortalSettingsIn(Strict):
    """A partial update: only the fields sent change."""

    enabled: bool | None = None
    welcome_message: str | None = Field(None, max_length=5000)
    show_projects: bool | None = None
    show_approvals: bool | None = None
    show_bookings: bool | None = None
    show_files: bool | None = None
    show_payments: bool | None = None
    show_service_requests: bool | None = None
    company_footer: str | None = Field(None, max_length=2000)
    vat_number: str | None = Field(None, max_length=60)
    registration_number: str | None = Field(None, max_length=60)


class InviteIn(Strict):
    expires_in_days: Int = Field(7, ge=1, le=30)


class ContactIn(Strict):
    """What a client may change about themselves (the email is their sign-in: staff change it)."""

    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=40, pattern=PHONE_PATTERN)
    company: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)


class ServiceRequestIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=40, pattern=PHONE_PATTERN)
    company: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)
    description: str = Field(min_length=1, max_length=5000)
    preferred_date: dt.date | None = None
    project_id: Id | None = None
