"""Validated inputs of the staff API (and the CLI), with the limits of CONTRACT section 3."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# Row ids are 32-bit INTEGER columns on PostgreSQL: a bigger number names nothing (and must not
# reach the database, which would fail on it instead of answering 404).
MAX_ID = 2**31 - 1


def _not_a_bool(value: Any) -> Any:
    """JSON `true` is no number: pydantic would take it for 1 (document 1, 1 day, 1 cent)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


Int = Annotated[int, BeforeValidator(_not_a_bool)]
Id = Annotated[Int, Field(le=MAX_ID)]
# The most any total may come to (line items, amounts): far below the 64-bit columns.
MAX_TOTAL_CENTS = 10**13
_DIGITS = re.compile(r"[0-9]+")


def parse_id(raw: str) -> int | None:
    """An id from a path, query or SMS: ASCII digits only (`"²".isdigit()` is true, `int("²")`
    fails), None when it is not a number at all. Numbers too big to be an id come back as such
    (any of them as MAX_ID + 1, however long), for `known_id` to tell apart."""
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        return None
    return int(raw) if len(raw) <= 12 else MAX_ID + 1


def known_id(value: int | None) -> bool:
    """Whether `value` can be the id of a row at all."""
    return value is not None and 0 < value <= MAX_ID


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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ClientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=40, pattern=r"^(whatsapp:)?\+[1-9]\d{6,14}$")
    company: str | None = Field(None, max_length=200)
    locale: Locale | None = None


class ProjectIn(Strict):
    client_id: Id
    name: str = Field(min_length=1, max_length=200)
    number: str | None = Field(None, max_length=60)


class LineItem(Strict):
    description: str = Field(min_length=1, max_length=3000)
    quantity: Decimal = Field(gt=0, max_digits=12, decimal_places=4)
    unit_price_cents: Int = Field(ge=-(10**12), le=10**12)


class DocumentMeta(Strict):
    project_id: Id
    kind: Kind
    title: str = Field(min_length=1, max_length=300)
    number: str = Field(min_length=1, max_length=60)
    amount_cents: Int | None = Field(None, ge=0, le=10**13)
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    portal_visible: bool = False

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class DocumentFromItems(DocumentMeta):
    line_items: list[LineItem] = Field(min_length=1, max_length=500)
    notes: str | None = Field(None, max_length=5000)

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


class VersionMeta(Strict):
    """A new version of a document: the fields left out keep the previous version's values."""

    title: str | None = Field(None, min_length=1, max_length=300)
    amount_cents: Int | None = Field(None, ge=0, le=10**13)
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$")
    portal_visible: bool | None = None
    notify_client: bool = True  # tell the approvers of voided requests why (void notice)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class VersionFromItems(VersionMeta):
    line_items: list[LineItem] = Field(min_length=1, max_length=500)
    notes: str | None = Field(None, max_length=5000)

    @field_validator("line_items")
    @classmethod
    def _total(cls, items: list[LineItem]) -> list[LineItem]:
        check_items_total(items)
        return items


class ApproverIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=40, pattern=r"^(whatsapp:)?\+[1-9]\d{6,14}$")

    @model_validator(mode="after")
    def _reachable(self) -> ApproverIn:
        if not (self.email or self.phone):
            raise ValueError("each approver needs an email or a phone number")
        return self


class StaffContactIn(Strict):
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)


class ApprovalIn(Strict):
    document_id: Id
    approvers: list[ApproverIn] = Field(min_length=1, max_length=5)
    routing: Literal["sequential", "any", "all"] = "sequential"
    expires_in_days: Int | None = Field(None, ge=1, le=180)
    remind_every_days: Int | None = Field(None, ge=1, le=180)
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
    notify_client: bool = False


class ExtendIn(Strict):
    days: Int = Field(ge=1, le=180)


class RemindIn(Strict):
    extend_days: Int | None = Field(None, ge=1, le=180)


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
