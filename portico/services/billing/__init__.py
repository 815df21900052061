"""Invoices and payments (CONTRACT §3, §4, §6, §12), one module per part:

- `invoices.py` — creating (PDF, `invoice-{id}` workflow), reading, listing, voiding;
- `manual_payments.py` — checks, cash and bank transfers booked by staff;
- `checkout.py` — Stripe Checkout for what is due; `stripe_webhook.py` — Stripe's events;
- `announcements.py` — what a payment change announces, handed to the invoice's workflow
  (and swept by the worker when that hand-off failed);
- `retainage.py` — what a project's invoices hold back, and its release invoice;
- `deposits.py` — the signing page's "Pay deposit";
- `invoice_rows.py` (row lock, recomputing paid totals), `shown.py` (the typed API shapes),
  `notices.py` (the emails), `outcomes.py`, `links.py` (pay links).

The arithmetic is pure, in core: `portico/ledger.py`. `Billing` builds the parts once, with
their shared settings, sessions and Temporal gateway, for the web app.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.services.billing.announcements import PaymentHandOff
from portico.services.billing.checkout import Checkout
from portico.services.billing.invoices import Invoices
from portico.services.billing.manual_payments import ManualPayments
from portico.services.billing.retainage import Retainage
from portico.services.billing.stripe_webhook import StripeWebhook
from portico.services.gateway import TemporalGateway
from portico.settings import Settings


class Billing:
    """The billing parts, wired together (one per web app)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.invoices = Invoices(settings, sessions, temporal)
        self.handoff = PaymentHandOff(settings, sessions, temporal)
        self.manual = ManualPayments(settings, sessions, self.handoff)
        self.checkout = Checkout(settings, sessions, self.invoices)
        self.stripe = StripeWebhook(settings, sessions, self.handoff)
        self.retainage = Retainage(settings, sessions, self.invoices)

    @property
    def temporal(self) -> TemporalGateway:
        return self.invoices.temporal

    @temporal.setter
    def temporal(self, gateway: TemporalGateway) -> None:
        """Swap the Temporal gateway of every part (tests use it to cut Temporal off)."""
        self.invoices.temporal = gateway
        self.handoff.temporal = gateway
