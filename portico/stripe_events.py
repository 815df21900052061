"""Stripe webhook events parsed into typed values (CONTRACT §6).

A valid signature proves an event came from Stripe, not that it makes sense: every object
Portico acts on is parsed with pydantic into bounded values (amounts are ints from 0 to
MAX_STRIPE_CENTS, currencies three letters, metadata strings), and anything else becomes an
`Ignored` with a reason, never an exception. Whether the event matches what Portico asked
Stripe for is the ledger's business (`portico.services.billing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from portico.schemas import known_id, parse_id

# Stripe's largest charge has 8 digits; this bound keeps sums far from 2**63 (BigInteger).
MAX_STRIPE_CENTS = 10**12
# the metadata key naming the StripeCheckout row, on the session and on its PaymentIntent
CHECKOUT_REF = "portico_checkout"

Cents = Annotated[int, Field(strict=True, ge=0, le=MAX_STRIPE_CENTS)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$"), AfterValidator(str.upper)]
StripeId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Short = Annotated[str, StringConstraints(max_length=100)]
# Stripe's own limits: keys up to 40 characters, values up to 500, all strings
Metadata = dict[
    Annotated[str, StringConstraints(max_length=40)],
    Annotated[str, StringConstraints(max_length=500)],
]


def _expanded_id(value: Any) -> Any:
    """An expandable field holds `"pi_1"` or the expanded object `{"id": "pi_1", ...}`."""
    return value.get("id") if isinstance(value, dict) else value


ExpandableId = Annotated[StripeId | None, BeforeValidator(_expanded_id)]


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventEnvelope(_Object):
    """The event around the object; `data` is checked only for the types Portico acts on."""

    id: StripeId
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    data: Any = None


class EventData(_Object):
    object: dict[str, Any]


class CheckoutSessionObject(_Object):
    object: Literal["checkout.session"] = "checkout.session"
    id: StripeId
    amount_total: Cents | None = None
    currency: Currency | None = None
    payment_status: Short = ""
    payment_intent: ExpandableId = None
    client_reference_id: Short | None = None
    metadata: Metadata = Field(default_factory=dict)


class PaymentError(_Object):
    message: Annotated[str, StringConstraints(max_length=500)] | None = None


class PaymentIntentObject(_Object):
    object: Literal["payment_intent"] = "payment_intent"
    id: StripeId
    amount: Cents
    amount_received: Cents = 0
    currency: Currency
    payment_method_types: Annotated[list[Short], Field(max_length=20)] = ["card"]
    last_payment_error: PaymentError | None = None
    metadata: Metadata = Field(default_factory=dict)


class ChargeObject(_Object):
    object: Literal["charge"] = "charge"
    id: StripeId
    amount: Cents
    amount_refunded: Cents | None = None
    refunded: Annotated[bool, Field(strict=True)] = False
    currency: Currency
    payment_intent: ExpandableId = None


class EvidenceDetails(_Object):
    due_by: Annotated[int, Field(strict=True, ge=0, le=2**40)] | None = None


class DisputeObject(_Object):
    object: Literal["dispute"] = "dispute"
    id: StripeId
    amount: Cents
    charge: ExpandableId = None
    currency: Currency
    payment_intent: ExpandableId = None
    status: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    evidence_details: EvidenceDetails | None = None


StripeObject = CheckoutSessionObject | PaymentIntentObject | ChargeObject | DisputeObject

CHECKOUT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
)
INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")


@dataclass(frozen=True)
class Ignored:
    """An event Portico takes no action on; `reason` is a short code, `detail` for the log."""

    reason: str  # not_handled | malformed | not_portico | no_payment
    detail: str


@dataclass(frozen=True)
class StripeChange:
    """What a checkout or payment-intent event reports about one payment."""

    invoice_id: int
    status: str  # pending | succeeded | failed
    method: str
    amount_cents: int
    currency: str
    session_id: str | None
    payment_intent_id: str | None
    checkout_ref: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class StripeAdjustment:
    """What a refund or dispute event reports about an existing Stripe payment: a state (the
    charge's cumulative refunds, the dispute's status), never a delta."""

    kind: str  # refund | dispute
    payment_intent_id: str | None
    charge_id: str | None
    amount_cents: int  # refund: the charge's amount; dispute: the disputed amount
    currency: str
    refunded_cents: int = 0  # refund: the charge's `amount_refunded`
    dispute_id: str | None = None
    dispute_status: str | None = None
    evidence_due_by: int | None = None  # dispute: unix time


def object_model(kind: str) -> type[StripeObject] | None:
    """The object an event type carries, for the types Portico acts on."""
    if kind in CHECKOUT_EVENTS:
        return CheckoutSessionObject
    if kind in INTENT_EVENTS:
        return PaymentIntentObject
    if kind == "charge.refunded":
        return ChargeObject
    if kind.startswith("charge.dispute."):
        return DisputeObject
    return None


def describe(err: ValidationError, where: str) -> str:
    """Where and why the object is malformed, without the values (they may hold secrets,
    such as a PaymentIntent's client_secret)."""
    parts = [
        f"{'.'.join([where, *(str(p) for p in e['loc'])])}: {e['msg']}"
        for e in err.errors(include_input=False, include_url=False)[:3]
    ]
    return "; ".join(parts)[:300]


def parse_object(event: EventEnvelope) -> StripeObject | Ignored:
    model = object_model(event.type)
    if model is None:
        return Ignored("not_handled", f"Portico does not act on {event.type} events.")
    try:
        data = EventData.model_validate(event.data)
    except ValidationError as err:
        return Ignored("malformed", describe(err, "data"))
    try:
        return model.model_validate(data.object)
    except ValidationError as err:
        return Ignored("malformed", describe(err, "data.object"))


def invoice_id_of(metadata: dict[str, str], fallback: str | None = None) -> int | None:
    raw = metadata.get("invoice_id") or fallback
    value = parse_id(raw) if raw else None
    return value if known_id(value) else None


def interpret(event: EventEnvelope) -> StripeChange | StripeAdjustment | Ignored:
    """Map a Stripe event to a payment change or adjustment, or say why it is ignored."""
    obj = parse_object(event)
    if isinstance(obj, CheckoutSessionObject):
        return _session_change(event.type, obj)
    if isinstance(obj, PaymentIntentObject):
        return _intent_change(event.type, obj)
    if isinstance(obj, ChargeObject):
        refunded = obj.amount_refunded
        if refunded is None:  # an old-style charge: only the `refunded` flag
            refunded = obj.amount if obj.refunded else 0
        return StripeAdjustment(
            kind="refund",
            payment_intent_id=obj.payment_intent,
            charge_id=obj.id,
            amount_cents=obj.amount,
            currency=obj.currency,
            refunded_cents=refunded,
        )
    if isinstance(obj, DisputeObject):
        if obj.payment_intent is None and obj.charge is None:
            return Ignored("not_portico", "The dispute names no charge or payment intent.")
        return StripeAdjustment(
            kind="dispute",
            payment_intent_id=obj.payment_intent,
            charge_id=obj.charge,
            amount_cents=obj.amount,
            currency=obj.currency,
            dispute_id=obj.id,
            dispute_status=obj.status,
            evidence_due_by=obj.evidence_details.due_by if obj.evidence_details else None,
        )
    return obj


def _session_change(kind: str, obj: CheckoutSessionObject) -> StripeChange | Ignored:
    invoice_id = invoice_id_of(obj.metadata, obj.client_reference_id)
    if invoice_id is None:
        return Ignored("not_portico", "The Checkout Session names no Portico invoice.")
    common: dict[str, Any] = {
        "invoice_id": invoice_id,
        "amount_cents": obj.amount_total or 0,
        "currency": obj.currency or "",
        "session_id": obj.id,
        "payment_intent_id": obj.payment_intent,
        "checkout_ref": obj.metadata.get(CHECKOUT_REF),
    }
    if kind == "checkout.session.completed":
        if obj.payment_status == "paid":
            return StripeChange(status="succeeded", method="card", **common)
        if obj.payment_status == "unpaid":  # ACH debit: settles days later
            return StripeChange(status="pending", method="us_bank_account", **common)
        return Ignored("no_payment", f"The session's payment_status is {obj.payment_status!r}.")
    if kind == "checkout.session.async_payment_succeeded":
        return StripeChange(status="succeeded", method="us_bank_account", **common)
    return StripeChange(
        status="failed",
        method="us_bank_account",
        failure_reason="The bank payment failed.",
        **common,
    )


def _intent_change(kind: str, obj: PaymentIntentObject) -> StripeChange | Ignored:
    invoice_id = invoice_id_of(obj.metadata)
    if invoice_id is None:
        return Ignored("not_portico", "The PaymentIntent names no Portico invoice.")
    succeeded = kind == "payment_intent.succeeded"
    types = obj.payment_method_types
    return StripeChange(
        invoice_id=invoice_id,
        status="succeeded" if succeeded else "failed",
        method=types[0] if len(types) == 1 else "stripe",
        amount_cents=obj.amount_received if succeeded else obj.amount,
        currency=obj.currency,
        session_id=None,
        payment_intent_id=obj.id,
        checkout_ref=obj.metadata.get(CHECKOUT_REF),
        failure_reason=obj.last_payment_error.message if obj.last_payment_error else None,
    )
