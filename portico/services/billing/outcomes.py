"""What applying a payment change came to: the values the Stripe webhook, the manual payment
and the notices pass each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portico.models import Client, Invoice, Payment, Project
from portico.stripe_events import StripeAdjustment


@dataclass(frozen=True)
class Flag:
    """Why a Stripe event needs a person: it is recorded, staff are emailed, the API shows it."""

    reason: str
    detail: str


@dataclass
class PaymentOutcome:
    """A payment whose status changed (`became`), with what the emails need."""

    invoice: Invoice
    payment: Payment
    became: str
    client: Client
    project: Project
    payments: list[Payment]
    flag: Flag | None = None  # booked, and staff must look at it (an overpayment)


@dataclass
class Review:
    """A Stripe event flagged for staff, with the invoice it names when there is one."""

    flag: Flag
    invoice: Invoice | None = None
    client: Client | None = None
    project: Project | None = None
    payments: list[Payment] = field(default_factory=list)


@dataclass(frozen=True)
class EventResult:
    """The webhook's answer: `result` plus the reason it was ignored or flagged."""

    result: str  # applied | duplicate | ignored | flagged
    ignored: str | None = None
    flagged: str | None = None

    def json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"received": True, "result": self.result}
        if self.ignored:
            answer["ignored"] = self.ignored
        if self.flagged:
            answer["flagged"] = self.flagged
        return answer


@dataclass
class AdjustmentOutcome:
    """A Stripe payment whose refunds or dispute changed, with what the staff notices need."""

    invoice: Invoice
    payment: Payment
    client: Client
    project: Project
    payments: list[Payment]
    adjustment: StripeAdjustment
    invoice_status_before: str
    refunded_before: int
    notices: list[str]  # refunded | dispute_opened | dispute_closed
