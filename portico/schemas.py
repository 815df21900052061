"""Validated inputs of the staff API (and the CLI), with the limits of CONTRACT section 3."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
ALL_CHANNELS: tuple[Channel, ...] = ("email", "sms")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ClientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=40, pattern=r"^(whatsapp:)?\+[1-9]\d{6,14}$")
    company: str | None = Field(None, max_length=200)


class ProjectIn(Strict):
    client_id: int
    name: str = Field(min_length=1, max_length=200)
    number: str | None = Field(None, max_length=60)


class LineItem(Strict):
    description: str = Field(min_length=1, max_length=3000)
    quantity: Decimal = Field(gt=0, max_digits=12, decimal_places=4)
    unit_price_cents: int = Field(ge=-(10**12), le=10**12)


class DocumentMeta(Strict):
    project_id: int
    kind: Kind
    title: str = Field(min_length=1, max_length=300)
    number: str = Field(min_length=1, max_length=60)
    amount_cents: int | None = Field(None, ge=0, le=10**13)
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    portal_visible: bool = False

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class DocumentFromItems(DocumentMeta):
    line_items: list[LineItem] = Field(min_length=1, max_length=500)
    notes: str | None = Field(None, max_length=5000)


class VersionMeta(Strict):
    """A new version of a document: the fields left out keep the previous version's values."""

    title: str | None = Field(None, min_length=1, max_length=300)
    amount_cents: int | None = Field(None, ge=0, le=10**13)
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
    document_id: int
    approvers: list[ApproverIn] = Field(min_length=1, max_length=5)
    routing: Literal["sequential", "any", "all"] = "sequential"
    expires_in_days: int | None = Field(None, ge=1, le=180)
    remind_every_days: int | None = Field(None, ge=1, le=180)
    message: str | None = Field(None, max_length=5000)
    channels: list[Channel] = Field(default_factory=lambda: list(ALL_CHANNELS), min_length=1)
    division: str | None = Field(None, max_length=100)
    notify_staff: list[StaffContactIn] | None = None

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
    days: int = Field(ge=1, le=180)


class RemindIn(Strict):
    extend_days: int | None = Field(None, ge=1, le=180)


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
