"""The invoice ledger's arithmetic: what a payment counts, what an invoice still asks for, and
retainage. Pure functions of the rows (no session, no clock), property-tested in
tests/test_ledger.py; the billing services (portico/services/billing/) apply them under the
invoice's row lock.

Retainage (CONTRACT §12): `retainage_cents = round_half_up(total_cents × percent / 100)`, the
one rounding rule, on the whole invoice total (tax included), so `due_cents + retainage_cents ==
total_cents` always. The invoice is `paid` when its `due_cents` is paid; what is held is billed
later by one release invoice of the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from portico.models import Invoice, Payment

__all__ = [
    "CLOSED_DISPUTE",
    "MAX_RETAINAGE_PERCENT",
    "PAYABLE",
    "SETTLED_PAYMENT",
    "balance_cents",
    "counted_cents",
    "dispute_open",
    "due_cents",
    "lost_cents",
    "overdue_at",
    "paid_status",
    "pending_cents",
    "retainage_cents",
    "settled_status",
    "still_due",
]

PAYABLE = ("open", "partially_paid")
# payments whose money arrived (before any refund or chargeback)
SETTLED_PAYMENT = ("succeeded", "refunded", "disputed", "dispute_lost")
# Stripe dispute statuses that end a dispute (anything else is an open dispute)
CLOSED_DISPUTE = ("won", "lost", "warning_closed", "prevented")
MAX_RETAINAGE_PERCENT = Decimal(50)


def overdue_at(due_date: date) -> datetime:
    """An invoice due on a date is overdue from the start of the next day (UTC)."""
    return datetime.combine(due_date + timedelta(days=1), time(0), tzinfo=UTC)


def retainage_cents(total_cents: int, percent: Decimal | str | None) -> int:
    """What is held back of `total_cents` at `percent` (0..50): total × percent / 100, rounded
    half up to the cent."""
    if not percent:
        return 0
    with localcontext() as ctx:
        ctx.prec = 60
        held = (Decimal(total_cents) * Decimal(percent) / 100).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    return int(held)


def due_cents(invoice: Invoice) -> int:
    """What the invoice asks to be paid now: its total less the retainage held back."""
    return invoice.total_cents - (invoice.retainage_cents or 0)


def dispute_open(payment: Payment) -> bool:
    return payment.dispute_status is not None and payment.dispute_status not in CLOSED_DISPUTE


def lost_cents(payment: Payment) -> int:
    """What a lost dispute (chargeback) took back from the payment."""
    return (payment.disputed_cents or 0) if payment.dispute_status == "lost" else 0


def counted_cents(payment: Payment) -> int:
    """What a payment contributes to its invoice's paid total: the money that arrived, less
    refunds and a lost dispute. An open dispute still counts until it is lost."""
    if payment.status not in SETTLED_PAYMENT:
        return 0
    return max(0, payment.amount_cents - (payment.refunded_cents or 0) - lost_cents(payment))


def settled_status(payment: Payment) -> str:
    """The status of a payment whose money arrived, given its refunds and dispute."""
    if dispute_open(payment):
        return "disputed"
    if lost_cents(payment) > 0:
        return "dispute_lost"
    if payment.amount_cents > 0 and (payment.refunded_cents or 0) >= payment.amount_cents:
        return "refunded"
    return "succeeded"


def pending_cents(payments: Iterable[Payment]) -> int:
    return sum(p.amount_cents for p in payments if p.status == "pending")


def balance_cents(invoice: Invoice, payments: Iterable[Payment]) -> int:
    """What can still be paid: the due part less succeeded and in-flight (ACH) payments."""
    return max(0, due_cents(invoice) - invoice.paid_cents - pending_cents(payments))


def still_due(invoice: Invoice, payments: Iterable[Payment]) -> int:
    """What a new payment may still cover: nothing on a void invoice, else the balance."""
    return 0 if invoice.status == "void" else balance_cents(invoice, payments)


def paid_status(paid_cents: int, due: int) -> str:
    """The status of a payable invoice that has `paid_cents` of its `due` part."""
    if paid_cents >= due:
        return "paid"
    return "partially_paid" if paid_cents > 0 else "open"
