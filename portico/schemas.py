"""Validated inputs of the staff API (and the CLI), with the limits of CONTRACT section 3, and
the shapes of its answers (`...Out`), from which web/api/openapi.py writes the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from portico import i18n

# Row ids are 32-bit INTEGER columns on PostgreSQL: a bigger number names nothing (and must not
# reach the database, which would fail on it instead of answering 404).
MAX_ID = 2**31 - 1


def _not_a_bool(value: Any) -> Any:
    """JSON `true` is no number: pydantic would take it for 1 (document 1, 1 day, 1 cent)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _not_null(value: Any) -> Any:
    """An optional field of a partial update that has no "nothing" value: leave it out."""
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep its value")
    return value


# The limits go before the validator: after it, pydantic cannot put them in the JSON schema
# (it would write `"ge": 1` instead of `"minimum": 1`, which no client reads).
NotBool = BeforeValidator(_not_a_bool)
Int = Annotated[int, NotBool]
Id = Annotated[int, Field(le=MAX_ID), NotBool]
Days = Annotated[int, Field(ge=1, le=180), NotBool]
# The most any total may come to (line items, amounts): far below the 64-bit columns.
MAX_TOTAL_CENTS = 10**13
Cents = Annotated[int, Field(ge=0, le=MAX_TOTAL_CENTS), NotBool]


def _date_text(value: Any) -> Any:
    """A date is `YYYY-MM-DD` text (pydantic would also take a number of seconds since 1970)."""
    if not isinstance(value, str | date):
        raise ValueError("must be a date, like 2025-01-31")
    return value


IsoDate = Annotated[date, BeforeValidator(_date_text)]
T = TypeVar("T")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # `null`, which the schema itself refuses


# Optional in a partial update but never null: the schema says so (no `null` in it).
Omittable = Annotated[
    T | SkipJsonSchema[None], BeforeValidator(_not_null), Field(json_schema_extra=_no_default)
]
_DIGITS = re.compile(r"-?[0-9]+")
# No spaces nor control characters. `\s` differs between regex engines (Rust's, which pydantic
# uses, has U+0085 but not U+FEFF; ECMAScript's, which OpenAPI tools use, the other way round),
# so those are named; U+001C..U+001E end a line for Python's email headers.
_ADDRESS_PART = r"[^@\s\x00-\x1f\x7f-\x9f\ufeff]+"
EMAIL_PATTERN = rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$"
PHONE_PATTERN = r"^(whatsapp:)?\+[1-9]\d{6,14}$"


def parse_id(raw: str) -> int | None:
    """An id from a path, query or SMS: ASCII digits only (`"²".isdigit()` is true, `int("²")`
    fails), with an optional minus sign, None when it is not a number at all. Numbers that
    cannot be an id (negative, zero, too big) come back as numbers all the same (any too long
    as MAX_ID + 1), for `known_id` to tell apart: the API answers 404 for them, as for any id
    that names nothing."""
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        return None
    return int(raw) if len(raw) <= 12 else MAX_ID + 1


def known_id(value: int | None) -> bool:
    """Whether `value` can be the id of a row at all."""
    return value is not None and 0 < value <= MAX_ID


ITEMS_TOTAL_RULE = f"The lines must add up to at most {MAX_TOTAL_CENTS} cents either way."


def check_items_total(items: Iterable[Any]) -> None:
    """Refuse line items adding up beyond MAX_TOTAL_CENTS (either way), before anything is
    rendered or stored."""
    total = sum(Decimal(item.quantity) * item.unit_price_cents for item in items)
    if abs(total) > MAX_TOTAL_CENTS:
        raise ValueError(f"the line items must add up to at most {MAX_TOTAL_CENTS} cents")


DOCUMENT_KINDS = (
    "ticket",
    "estimate",
    "change_order",
    "purchase_order",
    "rfi",
    "proposal",
    "contract",
)
Kind = Literal[
    "ticket", "estimate", "change_order", "purchase_order", "rfi", "proposal", "contract"
]


Channel = Literal["email", "sms"]
LOCALES = ("en", "fr", "es")  # CONTRACT section 10
Locale = Literal["en", "fr", "es"]
ALL_CHANNELS: tuple[Channel, ...] = ("email", "sms")


NUL = "\x00"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False


class Strict(BaseModel):
    """Every input: unknown fields refused, text trimmed, and no NUL character anywhere in a
    field (PostgreSQL cannot store one: it must be a 422, not a failed INSERT)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _holds_nul(value):
            raise ValueError("must not contain the NUL character (\\u0000)")
        return value


def _iana_zone(value: str | None) -> str | None:
    if value is not None and not i18n.valid_timezone(value):
        raise ValueError("must be an IANA time zone, like America/Toronto")
    return value


# An IANA time zone name (`America/Toronto`); dates and times are shown to the client in it.
# The schema lists the zones this machine knows, which is exactly what is accepted.
TimeZone = Annotated[
    str,
    AfterValidator(_iana_zone),
    WithJsonSchema(
        {"type": "string", "enum": sorted(i18n.TIMEZONES), "examples": ["America/Toronto"]}
    ),
]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)]


class ClientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=40, pattern=PHONE_PATTERN)
    company: str | None = Field(None, max_length=200)
    locale: Locale | None = Field(
        None, description="The client's language (null: PORTICO_DEFAULT_LOCALE)."
    )
    timezone: TimeZone | None = Field(
        None, description="IANA time zone the client reads times in (null: the default)."
    )


class ClientPatch(Strict):
    """`PATCH /clients/{id}`: the fields given change; `phone`, `company`, `locale` and
    `timezone` may be null (cleared); `name` and `email` cannot."""

    name: Omittable[str] = Field(None, min_length=1, max_length=200)
    email: Omittable[Email] = None
    phone: str | None = Field(None, max_length=40, pattern=PHONE_PATTERN)
    company: str | None = Field(None, max_length=200)
    locale: Locale | None = None
    timezone: TimeZone | None = None


class ProjectIn(Strict):
    client_id: Id
    name: str = Field(min_length=1, max_length=200)
    number: str | None = Field(None, max_length=60)


def decimal_input(pattern: str, low: Decimal, high: Decimal) -> BeforeValidator:
    """A decimal field's input: text matching `pattern`, or a JSON number from `low` to `high`.
    A float is no exact decimal (0.1 is 0.1000000000000000055...), so one with more than 4
    places is rounded to 4: JSON Schema cannot say "at most 4 decimal places" of a number."""
    text = re.compile(pattern)

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            if not text.fullmatch(value):
                raise ValueError(f"must be a number from {low} to {high}, at most 4 decimals")
            return Decimal(value)
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError("must be a number, like 1.5")
        if not low <= value <= high:  # also refuses NaN
            raise ValueError(f"must be from {low} to {high}")
        number = Decimal(str(value))
        exponent = number.as_tuple().exponent
        return number.quantize(_PLACES) if isinstance(exponent, int) and exponent < -4 else number

    return BeforeValidator(parse)


def decimal_schema(pattern: str, low: Decimal, high: Decimal) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": float(low), "maximum": float(high)},
                {"type": "string", "pattern": pattern},
            ],
            "description": "A number (rounded to 4 decimal places) or a decimal text.",
        }
    )


_PLACES = Decimal("0.0001")
# More than 0 (some digit is not 0), at most 8 digits before the point and 4 after.
QUANTITY_PATTERN = r"^(?=[0-9.]*[1-9])[0-9]{1,8}(\.[0-9]{1,4})?$"
MIN_QUANTITY, MAX_QUANTITY = Decimal("0.0001"), Decimal("99999999.9999")
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=12, decimal_places=4),
    decimal_input(QUANTITY_PATTERN, MIN_QUANTITY, MAX_QUANTITY),
    decimal_schema(QUANTITY_PATTERN, MIN_QUANTITY, MAX_QUANTITY),
]


class LineItem(Strict):
    description: str = Field(min_length=1, max_length=3000)
    quantity: Quantity
    unit_price_cents: Int = Field(ge=-(10**12), le=10**12)


class DocumentMeta(Strict):
    project_id: Id
    kind: Kind
    title: str = Field(min_length=1, max_length=300)
    number: str = Field(min_length=1, max_length=60)
    amount_cents: Cents | None = None
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    portal_visible: StrictBool = False

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class DocumentFromItems(DocumentMeta):
    line_items: list[LineItem] = Field(min_length=1, max_length=500, description=ITEMS_TOTAL_RULE)
    notes: str | None = Field(None, max_length=5000)

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


class VersionMeta(Strict):
    """A new version of a document: the fields left out keep the previous version's values."""

    title: str | None = Field(None, min_length=1, max_length=300)
    amount_cents: Cents | None = None
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$")
    portal_visible: StrictBool | None = None
    notify_client: StrictBool = True  # tell the approvers of voided requests why (void notice)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class VersionFromItems(VersionMeta):
    line_items: list[LineItem] = Field(min_length=1, max_length=500, description=ITEMS_TOTAL_RULE)
    notes: str | None = Field(None, max_length=5000)

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


def needs_one_of(*names: str) -> list[JsonValue]:
    """JSON Schema for "at least one of these fields, not null" (a pydantic model_validator)."""
    return [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]


class ApproverIn(Strict):
    model_config = ConfigDict(json_schema_extra={"anyOf": needs_one_of("email", "phone")})

    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=40, pattern=PHONE_PATTERN)
    locale: Locale | None = Field(
        None, description="The approver's language (null: the client's, else the default)."
    )

    @model_validator(mode="after")
    def _reachable(self) -> ApproverIn:
        if not (self.email or self.phone):
            raise ValueError("each approver needs an email or a phone number")
        return self


class StaffContactIn(Strict):
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)


def _reach_all_by(channel: Channel, contact: str) -> dict[str, Any]:
    """JSON Schema: when `channels` is given without `channel`, every approver has `contact`."""
    others = {"type": "array", "not": {"contains": {"const": channel}}}
    return {
        "if": {"required": ["channels"], "properties": {"channels": others}},
        "then": {
            "properties": {"approvers": {"items": needs_one_of(contact)[0]}},
        },
    }


class ApprovalIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [_reach_all_by("email", "phone"), _reach_all_by("sms", "email")]
        }
    )

    document_id: Id
    approvers: list[ApproverIn] = Field(min_length=1, max_length=5)
    routing: Literal["sequential", "any", "all"] = "sequential"
    expires_in_days: Days | None = None
    remind_every_days: Days | None = None
    message: str | None = Field(None, max_length=5000)
    channels: list[Channel] = Field(default_factory=lambda: list(ALL_CHANNELS), min_length=1)
    division: str | None = Field(None, max_length=100)
    notify_staff: list[StaffContactIn] | None = None

    @field_validator("channels")
    @classmethod
    def _once_each(cls, channels: list[Channel]) -> list[Channel]:
        return list(dict.fromkeys(channels))  # ["email", "email"] means ["email"]

    @model_validator(mode="after")
    def _channels_reach_everyone(self) -> ApprovalIn:
        for approver in self.approvers:
            by_email = "email" in self.channels and approver.email
            by_sms = "sms" in self.channels and approver.phone
            if not (by_email or by_sms):
                raise ValueError(
                    f"approver {approver.name!r} cannot be reached on channels {self.channels}"
                )
        return self


class VoidIn(Strict):
    reason: str | None = Field(None, max_length=2000)
    notify_client: StrictBool = False


class ExtendIn(Strict):
    days: Days


class RemindIn(Strict):
    extend_days: Days | None = None


# --- answers -------------------------------------------------------------------------------
# What the handlers answer, for the OpenAPI document (tests/web/test_openapi_fuzz.py checks every
# answer against it). Every field listed is always there; fields may be added, never renamed, so
# a client must accept more than these.

APPROVAL_STATUSES = ("pending", "partially_approved", "approved", "declined", "expired", "void")
ApprovalStatus = Literal["pending", "partially_approved", "approved", "declined", "expired", "void"]
ApproverStatus = Literal["waiting", "pending", "viewed", "approved", "declined", "skipped"]


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# A time in an answer: in UTC, so it is written `...Z` whatever zone the database gave it in.
UtcDatetime = Annotated[datetime, AfterValidator(_in_utc)]


class Out(BaseModel):
    # from_attributes: an answer is built straight from the row it shows (`model_validate(row)`).
    model_config = ConfigDict(extra="allow", from_attributes=True)


class ClientOut(Out):
    id: int
    name: str
    email: str
    phone: str | None
    company: str | None
    locale: Locale | None = None
    timezone: str | None = None
    created_at: UtcDatetime | None


class ProjectOut(Out):
    id: int
    client_id: int
    name: str
    number: str | None
    status: Literal["active", "complete"]
    created_at: UtcDatetime | None


class LineItemOut(Out):
    description: str
    quantity: str | float  # a decimal string as sent, or a number
    unit_price_cents: int


class DocumentOut(Out):
    id: int
    project_id: int
    kind: Kind
    title: str
    number: str
    amount_cents: int | None
    currency: str
    portal_visible: bool
    sha256: str
    size_bytes: int
    line_items: list[LineItemOut] | None
    version: int
    supersedes_id: int | None
    created_at: UtcDatetime | None


class AffectedApprovalOut(Out):
    id: int
    previous_status: ApprovalStatus
    status: ApprovalStatus
    action: Literal["voided", "void_pending", "marked_superseded", "already_closed"]
    superseded: bool


class VersionOut(DocumentOut):
    """201 for a new version, 200 (`created: false`) when the same one was sent again."""

    created: bool
    supersedes: DocumentOut
    affected_approvals: list[AffectedApprovalOut]


class ApproverOut(Out):
    id: int
    position: int
    name: str
    email: str | None
    phone: str | None
    locale: Locale | None = None
    status: ApproverStatus
    notified_at: UtcDatetime | None
    signed_at: UtcDatetime | None
    signature_name: str | None
    notes: str | None
    decline_reason: str | None
    decided_via: str | None
    view_count: int
    first_viewed_at: UtcDatetime | None
    viewed_seconds: int


class EventOut(Out):
    seq: int
    at: UtcDatetime
    type: str
    actor: str
    data: dict[str, Any]
    hash: str


class ApprovalSummaryOut(Out):
    """A request as `GET /approvals` lists it (no events)."""

    id: int
    status: ApprovalStatus
    routing: Literal["sequential", "any", "all"]
    workflow_id: str
    expires_at: UtcDatetime | None
    remind_every_days: int | None
    message: str | None
    channels: list[Channel]
    division: str | None
    void_reason: str | None
    created_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    signed_pdf_sha256: str | None
    signed_pdf_status: Literal["ready", "failed", "pending"] | None = None
    signed_pdf_error: str | None = None
    superseded: bool
    superseded_by_document_id: int | None
    document: DocumentOut
    approvers: Sequence[ApproverOut]


class ApprovalOut(ApprovalSummaryOut):
    events: list[EventOut]


class CreatedApproverOut(ApproverOut):
    sign_url: str


class ApprovalCreatedOut(ApprovalOut):
    approvers: list[CreatedApproverOut]


class ApprovalListOut(Out):
    items: list[ApprovalSummaryOut]


class DeadlineOut(Out):
    """The answer to extend and remind."""

    id: int
    status: ApprovalStatus
    expires_at: UtcDatetime | None


def describe_errors(exc: Exception) -> str:
    """One readable sentence from a pydantic ValidationError."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
