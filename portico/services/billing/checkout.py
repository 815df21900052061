"""Paying online: a Stripe Checkout Session for what is still due of an invoice (its due part
less payments; retainage is not asked for), recorded before Stripe is asked so the webhook can
check every event against it (portico/services/billing/stripe_webhook.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.errors import Conflict, Invalid, NotFound, Unavailable
from portico.ledger import PAYABLE, balance_cents
from portico.models import Invoice, StripeCheckout
from portico.money import format_money as money
from portico.services.billing.invoices import Invoices
from portico.settings import Settings
from portico.stripe_events import CHECKOUT_REF

log = logging.getLogger(__name__)

STRIPE_MIN_CENTS = 50  # Stripe's minimum charge in USD
ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Stripe keeps an idempotency key for at least 24 hours
IDEMPOTENCY_WINDOW = timedelta(hours=23)


def stripe_client(settings: Settings) -> Any:
    """The official client; PORTICO_STRIPE_API_BASE points its REST calls elsewhere."""
    options: dict[str, Any] = {}
    if settings.stripe_api_base:
        options["base_addresses"] = {"api": settings.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(settings.stripe_secret_key or "", max_network_retries=2, **options)


class Checkout:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        invoices: Invoices,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.invoices = invoices
        self._stripe: Any = None

    def stripe_client(self) -> Any:
        if self._stripe is None:
            self._stripe = stripe_client(self.settings)
        return self._stripe

    async def start(self, token: str, amount_cents: int | None, attempt: str) -> str:
        """A Stripe Checkout Session for the balance (or part of it); returns its URL."""
        if not self.settings.stripe_enabled:
            raise NotFound("Online payment is not available; see the bank details.")
        invoice, payments, _project, client = await self.invoices.by_pay_token(token)
        if invoice.status not in PAYABLE:
            raise Conflict(f"This invoice is {invoice.status.replace('_', ' ')}.")
        balance = balance_cents(invoice, payments)
        amount = balance if amount_cents is None else amount_cents
        if balance <= 0:
            raise Conflict("Nothing is left to pay (a bank payment may still be processing).")
        if amount > balance:
            raise Invalid(f"You can pay at most {money(balance, invoice.currency)}.")
        if amount < min(STRIPE_MIN_CENTS, balance):
            raise Invalid(f"The smallest payment is {money(STRIPE_MIN_CENTS, invoice.currency)}.")
        if not ATTEMPT.match(attempt):
            attempt = secrets.token_urlsafe(12)
        checkout = await self._record_checkout(invoice, amount, balance, attempt)
        methods = ["card", "us_bank_account"] if invoice.currency == "USD" else ["card"]
        metadata = {
            "invoice_id": str(invoice.id),
            "invoice_number": invoice.number,
            CHECKOUT_REF: checkout.ref,
        }
        base = f"/pay/{token}"
        params: dict[str, Any] = {
            "mode": "payment",
            "payment_method_types": methods,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": invoice.currency.lower(),
                        "unit_amount": amount,
                        "product_data": {"name": f"Invoice {invoice.number}"},
                    },
                }
            ],
            "client_reference_id": str(invoice.id),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": self.settings.url(f"{base}?checkout=success"),
            "cancel_url": self.settings.url(f"{base}?checkout=cancelled"),
        }
        if client.email:
            params["customer_email"] = client.email
        key = f"portico-checkout-{checkout.ref}"
        try:
            session = await asyncio.to_thread(
                self.stripe_client().v1.checkout.sessions.create,
                params,
                {"idempotency_key": key},
            )
        except stripe.StripeError as err:
            log.warning("stripe checkout for invoice %s failed: %s", invoice.id, err)
            raise Unavailable(
                "The payment provider did not answer; nothing was charged. Please try again."
            ) from err
        await self._link_session(checkout, str(session.id))
        return str(session.url)

    async def _record_checkout(
        self, invoice: Invoice, amount: int, balance: int, attempt: str
    ) -> StripeCheckout:
        """The StripeCheckout row of this Pay form (one per invoice, amount and attempt, so a
        double click is one Checkout Session), written before Stripe is asked. A form older
        than Stripe keeps idempotency keys gets a fresh attempt, so one row never names two
        sessions."""
        for _ in range(3):
            ref = f"{invoice.id}-{amount}-{attempt}"
            try:
                async with self.sessions() as session, session.begin():
                    row = StripeCheckout(
                        invoice_id=invoice.id,
                        ref=ref,
                        amount_cents=amount,
                        currency=invoice.currency,
                        due_cents=balance,
                    )
                    session.add(row)
                return row
            except IntegrityError:
                async with self.sessions() as session:
                    earlier = await session.scalar(
                        select(StripeCheckout).where(StripeCheckout.ref == ref)
                    )
                fresh = datetime.now(UTC) - IDEMPOTENCY_WINDOW
                if earlier is not None and earlier.created_at > fresh:
                    return earlier
                attempt = secrets.token_urlsafe(12)
        raise Unavailable("Could not start the payment; please try again.")

    async def _link_session(self, checkout: StripeCheckout, session_id: str) -> None:
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(StripeCheckout)
                    .where(StripeCheckout.id == checkout.id, StripeCheckout.session_id.is_(None))
                    .values(session_id=session_id)
                )
        except IntegrityError:  # Stripe gave one session to two forms: events will be flagged
            log.error("checkout session %s is already linked elsewhere", session_id)
