"""Stripe webhook events (CONTRACT §6): each verified event applied exactly once to the
payment it reports, checked against the Checkout Session Portico created.

Each Stripe event id is inserted into `stripe_events` in the same transaction as its payment
(under the invoice's row lock, portico/services/billing/invoice_rows.py), so a duplicate
delivery, even a concurrent one, fails on the unique key and changes nothing.

Refunds (`charge.refunded`) and disputes (`charge.dispute.*`) adjust the Stripe payment they
belong to (found by payment intent, else charge id). Both are applied as the *state* Stripe
reports (the charge's cumulative `amount_refunded`, the dispute's `status`), never as deltas, and
that state only moves forward, so repeated or out-of-order events converge on the same result.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import stripe
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.errors import BadRequest, NotFound
from portico.ledger import CLOSED_DISPUTE, SETTLED_PAYMENT, settled_status, still_due
from portico.models import Invoice, Payment, PaymentAnnouncement, StripeCheckout, StripeEvent
from portico.money import format_money as money
from portico.services.billing.announcements import PaymentHandOff, event_announcement, event_key
from portico.services.billing.invoice_rows import (
    lock_invoice,
    owner_of,
    payment_webhook,
    payments_of,
    recompute,
)
from portico.services.billing.outcomes import (
    AdjustmentOutcome,
    EventResult,
    Flag,
    PaymentOutcome,
    Review,
)
from portico.settings import Settings
from portico.stripe_events import (
    EventEnvelope,
    Ignored,
    StripeAdjustment,
    StripeChange,
    interpret,
)

log = logging.getLogger(__name__)


def terms_mismatch(
    change: StripeChange, currency: str, amount_cents: int, what: str
) -> Flag | None:
    """A payment event must be in `currency` and, unless it failed, for exactly `amount_cents`
    (what Portico asked Stripe for, or the payment already recorded)."""
    if change.currency != currency:
        return Flag(
            "currency_mismatch",
            f"The event is in {change.currency or 'no currency'}; {what} is in {currency}.",
        )
    if change.status != "failed" and change.amount_cents != amount_cents:
        return Flag(
            "amount_mismatch",
            f"The event is for {money(change.amount_cents, currency)}; "
            f"{what} is for {money(amount_cents, currency)}.",
        )
    return None


def checkout_mismatch(change: StripeChange, checkout: StripeCheckout) -> Flag | None:
    """Whether an event contradicts the Checkout Session Portico created."""
    if change.invoice_id != checkout.invoice_id:
        return Flag(
            "invoice_mismatch",
            f"The event names invoice {change.invoice_id}; its Checkout Session was made "
            f"for invoice {checkout.invoice_id}.",
        )
    if change.session_id and checkout.session_id and change.session_id != checkout.session_id:
        return Flag(
            "session_mismatch",
            f"The event's session {change.session_id} is not {checkout.session_id}.",
        )
    return terms_mismatch(change, checkout.currency, checkout.amount_cents, "the Checkout Session")


def overpayment(amount_cents: int, due_cents: int, currency: str) -> Flag | None:
    """A verified payment of more than is still due: booked (the money arrived), and flagged
    so staff refund the excess."""
    excess = amount_cents - max(0, due_cents)
    if excess <= 0:
        return None
    return Flag(
        "overpaid",
        f"{money(amount_cents, currency)} arrived when {money(max(0, due_cents), currency)} "
        f"was due: refund {money(excess, currency)} in Stripe.",
    )


TRANSITIONS = {
    "pending": ("succeeded", "failed"),
    "failed": ("succeeded",),
    "succeeded": (),
}


def record_outcome(
    row: StripeEvent,
    meaning: StripeChange | StripeAdjustment | Ignored,
    result: PaymentOutcome | AdjustmentOutcome | Review | Ignored,
) -> None:
    """Write on the event's row what it reported and what became of it."""
    if isinstance(meaning, StripeChange | StripeAdjustment):
        row.amount_cents = meaning.amount_cents
        row.currency = meaning.currency[:3] or None
        row.payment_intent_id = meaning.payment_intent_id
    if isinstance(meaning, StripeChange):
        row.invoice_id = meaning.invoice_id
    flag: Flag | None = None
    if isinstance(result, Ignored):
        row.outcome, row.reason, row.detail = "ignored", result.reason, result.detail
    elif isinstance(result, Review):
        flag = result.flag
        if result.invoice is not None:
            row.invoice_id = result.invoice.id
    else:
        row.outcome = "applied"
        row.invoice_id = result.invoice.id
        flag = result.flag if isinstance(result, PaymentOutcome) else None
    if flag is not None:
        row.outcome, row.reason, row.detail = "flagged", flag.reason, flag.detail


class StripeWebhook:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        handoff: PaymentHandOff,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.handoff = handoff

    def verify_event(self, payload: bytes, signature: str | None) -> EventEnvelope:
        """The event, if its Stripe-Signature is valid and recent; else BadRequest (400)."""
        secret = self.settings.stripe_webhook_secret
        if not secret:
            raise BadRequest("Stripe webhooks are not configured.", code="not_configured")
        try:
            text = payload.decode("utf-8")
            # the signature only: the client's own event parsing fails on some signed JSON
            stripe.WebhookSignature.verify_header(
                text, signature or "", secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
            return EventEnvelope.model_validate_json(text)
        except stripe.SignatureVerificationError as err:
            raise BadRequest("The Stripe signature is not valid.", code="bad_signature") from err
        except (ValueError, UnicodeDecodeError) as err:  # ValidationError is a ValueError
            raise BadRequest("The payload is not a Stripe event.", code="bad_payload") from err

    async def apply_event(self, event: EventEnvelope) -> EventResult:
        """Apply one verified event exactly once. An event that is malformed or not about a
        Portico payment is recorded as ignored; one that contradicts what Portico asked Stripe
        for is recorded as flagged. Stripe gets its 200 either way, so it does not retry them
        for days. What an applied or flagged event announces (receipt, staff notices) is
        committed with it and handed to the invoice's workflow; if that hand-off fails the
        answer is a 503, and Stripe's redelivery, a duplicate, hands the same row off again."""
        meaning = interpret(event)
        try:
            async with self.sessions() as session, session.begin():
                row = StripeEvent(event_id=event.id, type=event.type)
                session.add(row)
                await session.flush()  # a duplicate delivery stops here
                result: PaymentOutcome | AdjustmentOutcome | Review | Ignored
                if isinstance(meaning, StripeChange):
                    result = await self._apply_change(session, meaning)
                elif isinstance(meaning, StripeAdjustment):
                    result = await self._apply_adjustment(session, meaning)
                else:
                    result = meaning
                record_outcome(row, meaning, result)
                note = None
                if not isinstance(result, Ignored):
                    note = event_announcement(self.settings, event, result)
                    session.add(note)
        except IntegrityError:
            async with self.sessions() as session:
                seen = await session.scalar(
                    select(StripeEvent.id).where(StripeEvent.event_id == event.id)
                )
                earlier = await session.scalar(
                    select(PaymentAnnouncement).where(
                        PaymentAnnouncement.key == event_key(event.id)
                    )
                )
                invoice = None
                if earlier is not None and earlier.invoice_id is not None:
                    invoice = await session.get(Invoice, earlier.invoice_id)
            if seen is None:
                raise
            if earlier is not None and earlier.announced_at is None:
                await self.handoff.hand_off(earlier, invoice)
            return EventResult("duplicate")
        if isinstance(result, Ignored):
            log.info("stripe event %s %s ignored: %s", event.id, event.type, result.detail)
            return EventResult("ignored", ignored=result.reason)
        assert note is not None
        await self.handoff.hand_off(note, result.invoice)
        flag = result.flag if not isinstance(result, AdjustmentOutcome) else None
        if flag is not None:
            log.warning("stripe event %s %s flagged: %s", event.id, event.type, flag.detail)
        if isinstance(result, Review):
            return EventResult("flagged", flagged=result.flag.reason)
        return EventResult("applied", flagged=flag.reason if flag else None)

    async def _review(self, session: AsyncSession, invoice: Invoice, flag: Flag) -> Review:
        project, client = await owner_of(session, invoice)
        return Review(flag, invoice, client, project, await payments_of(session, invoice.id))

    async def _checkout_for(
        self, session: AsyncSession, change: StripeChange
    ) -> StripeCheckout | None:
        """The Checkout Session Portico created that the event is about (by the reference in
        its metadata, else by session id)."""
        if change.checkout_ref:
            checkout = await session.scalar(
                select(StripeCheckout).where(StripeCheckout.ref == change.checkout_ref)
            )
            if checkout is not None:
                return checkout
        if change.session_id:
            return await session.scalar(
                select(StripeCheckout).where(StripeCheckout.session_id == change.session_id)
            )
        return None

    @staticmethod
    async def _payment_for(
        session: AsyncSession, change: StripeChange, checkout: StripeCheckout | None
    ) -> Payment | None:
        """The payment already booked for this checkout, session or PaymentIntent, if any."""
        keys = []
        if checkout is not None:
            keys.append(Payment.stripe_checkout_id == checkout.id)
        if change.session_id:
            keys.append(Payment.stripe_checkout_session_id == change.session_id)
        if change.payment_intent_id:
            keys.append(Payment.stripe_payment_intent_id == change.payment_intent_id)
        return await session.scalar(
            select(Payment)
            .where(Payment.source == "stripe", or_(*keys))
            .order_by(Payment.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )

    async def _apply_change(
        self, session: AsyncSession, change: StripeChange
    ) -> PaymentOutcome | Review | Ignored:
        """Book or move the one payment of a Checkout Session, whichever event reports it
        (checkout.session.*, with or without its PaymentIntent, or payment_intent.*)."""
        try:
            invoice = await lock_invoice(session, change.invoice_id)
        except NotFound:
            return Review(Flag("unknown_invoice", f"Invoice {change.invoice_id} does not exist."))
        checkout = await self._checkout_for(session, change)
        payment = await self._payment_for(session, change, checkout)
        flag: Flag | None
        if payment is not None and payment.invoice_id != invoice.id:
            flag = Flag(
                "invoice_mismatch",
                f"Its payment is booked on invoice {payment.invoice_id}, "
                f"not on invoice {invoice.id}.",
            )
        elif checkout is not None:
            flag = checkout_mismatch(change, checkout)
        elif payment is not None:  # booked before Portico recorded its Checkout Sessions
            flag = terms_mismatch(
                change, payment.currency, payment.amount_cents, "the payment recorded"
            )
        elif change.status == "failed":
            return Ignored("no_payment", "A failed attempt; Portico recorded no such payment.")
        else:
            flag = Flag(
                "unknown_checkout",
                "No Checkout Session Portico created matches its metadata or session id.",
            )
        if (
            flag is None
            and payment is not None
            and payment.stripe_payment_intent_id
            and change.payment_intent_id
            and payment.stripe_payment_intent_id != change.payment_intent_id
        ):
            flag = Flag(
                "payment_intent_mismatch",
                f"The payment was made by {payment.stripe_payment_intent_id}, "
                f"the event names {change.payment_intent_id}.",
            )
        if flag is not None:
            return await self._review(session, invoice, flag)
        due = still_due(invoice, await payments_of(session, invoice.id))
        now = datetime.now(UTC)
        became: str | None = None
        excess: Flag | None = None
        if payment is None:
            if change.status == "failed" and change.session_id is None:
                # a declined card inside Checkout: the client can still pay in that session
                return Ignored("no_payment", "A failed attempt; Portico recorded no payment.")
            payment = Payment(
                invoice_id=invoice.id,
                amount_cents=change.amount_cents,
                currency=change.currency,
                method=change.method,
                status=change.status,
                source="stripe",
                reference=change.session_id or change.payment_intent_id,
                stripe_checkout_id=checkout.id if checkout else None,
                stripe_checkout_session_id=change.session_id,
                stripe_payment_intent_id=change.payment_intent_id,
                failure_reason=change.failure_reason,
                settled_at=now if change.status == "succeeded" else None,
            )
            session.add(payment)
            became = change.status
            if change.status != "failed":
                excess = overpayment(change.amount_cents, due, invoice.currency)
        else:
            payment.stripe_checkout_id = payment.stripe_checkout_id or (
                checkout.id if checkout else None
            )
            payment.stripe_checkout_session_id = (
                payment.stripe_checkout_session_id or change.session_id
            )
            payment.stripe_payment_intent_id = (
                payment.stripe_payment_intent_id or change.payment_intent_id
            )
            if change.status in TRANSITIONS.get(payment.status, ()):
                if payment.status == "failed":  # a pending payment was counted as in flight
                    excess = overpayment(payment.amount_cents, due, invoice.currency)
                payment.status = change.status
                became = change.status
                if change.status == "succeeded":
                    payment.settled_at = now
                    payment.failure_reason = None
                    # a refund or dispute may have been recorded while it was settling
                    payment.status = settled_status(payment)
                else:
                    payment.failure_reason = change.failure_reason
        payments = await recompute(self.settings, session, invoice)
        if became is None:
            return Ignored("no_change", "The payment is already recorded in that state.")
        if became == "succeeded":
            await payment_webhook(session, "payment.succeeded", payment)
        project, client = await owner_of(session, invoice)
        return PaymentOutcome(invoice, payment, became, client, project, payments, excess)

    async def _apply_adjustment(
        self, session: AsyncSession, adjustment: StripeAdjustment
    ) -> AdjustmentOutcome | Review | Ignored:
        """Record a refund or dispute on its payment; Ignored if Portico has no such payment
        or the event changes nothing (a repeat, or older than what is recorded)."""
        keys = []
        if adjustment.payment_intent_id:
            keys.append(Payment.stripe_payment_intent_id == adjustment.payment_intent_id)
        if adjustment.charge_id:
            keys.append(Payment.stripe_charge_id == adjustment.charge_id)
        match = select(Payment).where(Payment.source == "stripe", or_(*keys)).order_by(Payment.id)
        invoice_id = await session.scalar(match.with_only_columns(Payment.invoice_id).limit(1))
        if invoice_id is None:
            log.warning(
                "stripe %s for unknown payment (intent %s, charge %s)",
                adjustment.kind,
                adjustment.payment_intent_id,
                adjustment.charge_id,
            )
            return Ignored("unknown_payment", "Portico has no payment of that charge.")
        invoice = await lock_invoice(session, invoice_id)  # then read the payment under the lock
        payment = await session.scalar(
            match.where(Payment.invoice_id == invoice.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        assert payment is not None
        if adjustment.currency != payment.currency:
            return await self._review(
                session,
                invoice,
                Flag(
                    "currency_mismatch",
                    f"The {adjustment.kind} is in {adjustment.currency}; "
                    f"the payment is in {payment.currency}.",
                ),
            )
        refunded_before = payment.refunded_cents or 0
        dispute_before = payment.dispute_status
        status_before = invoice.status
        state_before = (payment.status, payment.dispute_status, payment.disputed_cents)
        payment.stripe_payment_intent_id = (
            payment.stripe_payment_intent_id or adjustment.payment_intent_id
        )
        payment.stripe_charge_id = payment.stripe_charge_id or adjustment.charge_id
        notices: list[str] = []
        if adjustment.kind == "refund":
            # cumulative: only ever grows, so an older event arriving late changes nothing
            refunded = min(adjustment.refunded_cents, payment.amount_cents)
            if refunded > refunded_before:
                payment.refunded_cents = refunded
                notices.append("refunded")
        else:
            status = adjustment.dispute_status
            if dispute_before not in CLOSED_DISPUTE:  # a closed dispute stays closed
                payment.dispute_status = status
                payment.disputed_cents = min(adjustment.amount_cents, payment.amount_cents)
                if status not in CLOSED_DISPUTE and dispute_before is None:
                    notices.append("dispute_opened")
                elif status in CLOSED_DISPUTE:
                    notices.append("dispute_closed")
        if payment.status in SETTLED_PAYMENT:
            payment.status = settled_status(payment)
        payments = await recompute(self.settings, session, invoice)
        state = (payment.status, payment.dispute_status, payment.disputed_cents)
        if not notices and state == state_before:
            return Ignored("no_change", f"The {adjustment.kind} is already recorded.")
        if "refunded" in notices:
            await payment_webhook(session, "payment.refunded", payment)
        project, client = await owner_of(session, invoice)
        return AdjustmentOutcome(
            invoice=invoice,
            payment=payment,
            client=client,
            project=project,
            payments=payments,
            adjustment=adjustment,
            invoice_status_before=status_before,
            refunded_before=refunded_before,
            notices=notices,
        )
