"""Validated inputs of the portal, invoice and payment calls of the staff API (CONTRACT §3)
and of the portal's own forms, and the shapes of those calls' answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, field_validator, model_validator

from portico.schemas import (
    EMAIL_PATTERN,
    MAX_TOTAL_CENTS,
    PHONE_PATTERN,
    Id,
    Int,
    IsoDate,
    LineItem,
    LineItemOut,
    NotBool,
    Omittable,
    Out,
    ProjectOut,
    Strict,
    UtcDatetime,
    check_items_total,
    decimal_input,
    decimal_schema,
    needs_one_of,
)

MANUAL_METHODS = ("check", "cash", "bank_transfer")
BOOKING_STATUSES = ("scheduled", "confirmed", "completed", "cancelled")


TAX_RATE_PATTERN = r"^(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$"
TaxRate = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=7, decimal_places=4),
    decimal_input(TAX_RATE_PATTERN, Decimal(0), Decimal(100)),
    decimal_schema(TAX_RATE_PATTERN, Decimal(0), Decimal(100)),
]

RETAINAGE_PATTERN = r"^(50(\.0{1,4})?|[0-4]?[0-9](\.[0-9]{1,4})?)$"
RetainagePercent = Annotated[
    Decimal,
    Field(ge=0, le=50, max_digits=6, decimal_places=4),
    decimal_input(RETAINAGE_PATTERN, Decimal(0), Decimal(50)),
    decimal_schema(RETAINAGE_PATTERN, Decimal(0), Decimal(50)),
]


class InvoiceIn(Strict):
    project_id: Id
    number: str = Field(min_length=1, max_length=60)
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    due_date: IsoDate
    line_items: list[LineItem] = Field(
        min_length=1,
        max_length=500,
        description=f"The lines (with tax) must add up to more than 0 and at most "
        f"{MAX_TOTAL_CENTS} cents.",
        # What JSON Schema can say of that: some line costs something.
        json_schema_extra={"contains": {"properties": {"unit_price_cents": {"minimum": 1}}}},
    )
    tax_rate_percent: TaxRate | None = None
    retainage_percent: RetainagePercent | None = Field(
        None,
        description="Hold back this percent (0 to 50) of the total until the project's "
        "retainage is released; the invoice asks for the rest (due_cents).",
    )
    approval_id: Id | None = None
    document_id: Id | None = None
    notes: str | None = Field(None, max_length=5000)
    remind_every_days: Annotated[int, Field(ge=1, le=90), NotBool] | None = 7
    notify_client: StrictBool = True

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


class RetainageReleaseIn(Strict):
    due_date: IsoDate
    number: str | None = Field(
        None,
        min_length=1,
        max_length=60,
        description="The release invoice's number (default: RET-{project id}-{n}).",
    )
    notify_client: StrictBool = True


class PaymentIn(Strict):
    amount_cents: Int = Field(gt=0, le=10**13)
    method: Literal["check", "cash", "bank_transfer"]
    reference: str | None = Field(None, max_length=200)


class InvoiceVoidIn(Strict):
    reason: str | None = Field(None, max_length=2000)


class BookingIn(Strict):
    model_config = ConfigDict(json_schema_extra={"anyOf": needs_one_of("client_id", "project_id")})

    client_id: Id | None = None
    project_id: Id | None = None
    title: str = Field(min_length=1, max_length=200)
    kind: Literal["appointment", "visit", "job", "booking"] = "appointment"
    date: IsoDate
    time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    status: Literal["scheduled", "confirmed", "completed", "cancelled"] = "scheduled"
    notes: str | None = Field(None, max_length=5000)

    @model_validator(mode="after")
    def _owner(self) -> BookingIn:
        if self.client_id is None and self.project_id is None:
            raise ValueError("give client_id or project_id")
        return self


class BookingUpdateIn(Strict):
    date: Omittable[IsoDate] = None
    time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    status: Omittable[Literal["scheduled", "confirmed", "completed", "cancelled"]] = None
    notes: str | None = Field(None, max_length=5000)


class ProjectUpdateIn(Strict):
    status: Omittable[Literal["active", "complete"]] = None
    name: Omittable[str] = Field(None, min_length=1, max_length=200)


class PortalSettingsIn(Strict):
    """A partial update: only the fields sent change."""

    enabled: Omittable[StrictBool] = None
    welcome_message: str | None = Field(None, max_length=5000)
    show_projects: Omittable[StrictBool] = None
    show_approvals: Omittable[StrictBool] = None
    show_bookings: Omittable[StrictBool] = None
    show_files: Omittable[StrictBool] = None
    show_payments: Omittable[StrictBool] = None
    show_service_requests: Omittable[StrictBool] = None
    show_messages: Omittable[StrictBool] = None
    show_agreements: Omittable[StrictBool] = None
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
    preferred_date: IsoDate | None = None
    project_id: Id | None = None


# --- answers (see portico.schemas: listed fields are always there, more may be added) ---------


class InviteOut(Out):
    client_id: int
    email: str
    sent: bool
    expires_at: dt.datetime


class BookingOut(Out):
    id: int
    client_id: int
    project_id: int | None
    kind: Literal["appointment", "visit", "job", "booking"]
    title: str
    date: dt.date
    time: str | None
    status: Literal["scheduled", "confirmed", "completed", "cancelled"]
    notes: str | None
    created_at: UtcDatetime | None


class BookingListOut(Out):
    items: list[BookingOut]


class ServiceRequestOut(Out):
    id: int
    client_id: int
    project_id: int | None
    name: str
    email: str
    phone: str | None
    company: str | None
    address: str | None
    description: str
    preferred_date: dt.date | None
    status: str
    created_at: UtcDatetime | None


class ServiceRequestListOut(Out):
    items: list[ServiceRequestOut]


class PortalSettingsOut(Out):
    enabled: bool
    welcome_message: str | None
    sections: dict[str, bool]
    company_footer: str | None
    vat_number: str | None
    registration_number: str | None


class PaymentOut(Out):
    id: int
    invoice_id: int
    amount_cents: int
    currency: str
    method: str
    status: str
    source: str
    reference: str | None
    failure_reason: str | None
    created_at: dt.datetime | None
    settled_at: dt.datetime | None
    refunded_cents: int
    disputed_cents: int
    dispute_status: str | None
    net_cents: int
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None


InvoiceStatus = Literal["open", "partially_paid", "paid", "void"]
RetainageStatus = Literal["held", "released"]


class PaymentReviewOut(Out):
    """A signed Stripe event flagged for staff instead of booked (docs/portal.md)."""

    event_id: str
    type: str
    invoice_id: int | None
    reason: str | None
    message: str | None
    amount_cents: int | None
    currency: str | None
    payment_intent_id: str | None
    received_at: str | None


class InvoiceOut(Out):
    id: int
    number: str
    project_id: int
    approval_id: int | None
    document_id: int | None
    status: InvoiceStatus
    currency: str
    issued_on: dt.date
    due_date: dt.date
    line_items: list[LineItemOut]
    tax_rate_percent: str | None
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    retainage_percent: str | None = Field(
        description="The percent of the total held back until the project's retainage is "
        "released (docs/invoices.md); null: none."
    )
    retainage_cents: int = Field(
        description="Held back: total_cents × retainage_percent / 100, rounded half up."
    )
    retainage_status: RetainageStatus | None = Field(
        description="held (not billed yet), released (billed by the invoice "
        "retainage_released_by), or null when nothing is held."
    )
    retainage_released_by: int | None
    due_cents: int = Field(description="What the invoice asks for now: total − retainage.")
    paid_cents: int
    pending_cents: int
    balance_cents: int
    refunded_cents: int
    pdf_sha256: str
    pay_url: str
    workflow_id: str
    created_at: dt.datetime | None
    paid_at: dt.datetime | None
    voided_at: dt.datetime | None
    void_reason: str | None
    payments: list[PaymentOut]
    overpaid_cents: int | None = None
    payment_reviews: list[PaymentReviewOut] = []


class InvoiceListOut(Out):
    items: list[InvoiceOut]


class PaymentReviewListOut(Out):
    items: list[PaymentReviewOut]


class InvoiceBalanceOut(Out):
    id: int
    status: InvoiceStatus
    total_cents: int
    paid_cents: int
    balance_cents: int


class RetainageHeldOut(Out):
    currency: str
    cents: int


class ProjectRetainageOut(ProjectOut):
    """A project with the retainage held on its invoices (CONTRACT §12)."""

    retainage_held_cents: int = Field(
        description="Held back on the project's invoices and not yet billed by a release "
        "invoice (in the currency of those invoices; see retainage_held for several)."
    )
    retainage_held: list[RetainageHeldOut]
    retainage_released_cents: int


class PaymentRecordedOut(PaymentOut):
    invoice: InvoiceBalanceOut
