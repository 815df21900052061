"""Inputs and answers of the hand-off API (CONTRACT section 11): webhook endpoints and their
deliveries."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import ConfigDict, Field, field_validator

from portico.schemas import Out, Strict, UtcDatetime

ALL_EVENTS = "*"
EventType = Literal[
    "approval.sent",
    "approval.viewed",
    "approval.partially_approved",
    "approval.approved",
    "approval.declined",
    "approval.expired",
    "approval.voided",
    "invoice.sent",
    "invoice.paid",
    "invoice.reopened",
    "payment.succeeded",
    "payment.refunded",
]
# an absolute http(s) URL with a host name or IPv4 address, no credentials
RECEIVER_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][\x21-\x7e]*)?$"
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookIn(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    url: Annotated[
        str,
        Field(
            max_length=2000,
            pattern=RECEIVER_URL,
            description="http(s) URL of the receiver; one on a loopback, link-local or private "
            "address is refused (422) unless PORTICO_WEBHOOKS_ALLOW_PRIVATE=true.",
        ),
    ]
    # ["*"] (every event, now and later) or a list of event types
    events: (
        Annotated[list[Literal["*"]], Field(min_length=1, max_length=1)]
        | Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
    )
    description: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # each once, in the order given


class WebhookOut(Out):
    id: int
    url: str
    events: list[Literal["*"]] | list[EventType]
    description: str | None
    created_at: UtcDatetime


class WebhookCreatedOut(WebhookOut):
    """The only answer that shows the signing secret."""

    secret: Annotated[str, Field(pattern=r"^whsec_")]


class WebhookListOut(Out):
    items: list[WebhookOut]


class WebhookDeliveryOut(Out):
    event_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    last_error: str | None


class WebhookDeliveryListOut(Out):
    items: list[WebhookDeliveryOut]
