"""portico.ledger: the invoice arithmetic, retainage included (CONTRACT §12), property-tested.

For any percent (0..50, 4 decimals) and any line items: retainage + due = total, the retainage is
total × percent / 100 rounded half up to the cent, the invoice is paid exactly when its due part
is, and a project's release invoice bills the sum held on its invoices (that it does so once,
also under concurrent calls, is tests/web/test_retainage.py)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from portico.ledger import (
    balance_cents,
    due_cents,
    paid_status,
    retainage_cents,
)
from portico.models import Invoice, Payment
from portico.money import totals
from portico.services.billing.retainage import release_line

percents = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False)
items = st.lists(
    st.fixed_dictionaries(
        {
            "quantity": st.decimals(
                min_value=Decimal("0.0001"), max_value=1000, places=4, allow_nan=False
            ).map(str),
            "unit_price_cents": st.integers(min_value=1, max_value=10**8),
        }
    ),
    min_size=1,
    max_size=20,
)
taxes = st.none() | st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


def invoice(total: int, percent: Decimal | None, paid: int = 0) -> Invoice:
    return Invoice(
        total_cents=total,
        retainage_percent=str(percent) if percent else None,
        retainage_cents=retainage_cents(total, percent),
        paid_cents=paid,
        status="open",
    )


def test_the_rounding_rule_is_half_up_on_the_cent() -> None:
    assert retainage_cents(10_005, Decimal(10)) == 1001  # 1000.5 rounds up
    assert retainage_cents(10_004, Decimal(10)) == 1000  # 1000.4 rounds down
    assert retainage_cents(333, Decimal("12.5")) == 42  # 41.625
    assert retainage_cents(100_000, Decimal("0")) == 0
    assert retainage_cents(100_000, None) == 0
    assert retainage_cents(100_000, "5") == 5000  # stored as decimal text
    assert retainage_cents(1, Decimal(50)) == 1  # half a cent rounds up


@given(items, taxes, percents)
def test_due_and_retainage_add_up_to_the_total(lines, tax, percent) -> None:
    _, _, total = totals(lines, tax)
    held = retainage_cents(total, percent)
    shown = invoice(total, percent)
    assert due_cents(shown) + shown.retainage_cents == total
    assert 0 <= held <= total // 2 + 1
    exact = Decimal(total) * percent / 100
    assert abs(Decimal(held) - exact) <= Decimal("0.5")
    assert held == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(st.integers(min_value=1, max_value=10**13), percents, st.data())
def test_paid_exactly_when_the_due_part_is_paid(total, percent, data) -> None:
    shown = invoice(total, percent)
    due = due_cents(shown)
    paid = data.draw(st.integers(min_value=0, max_value=total))
    shown.paid_cents = paid
    assert paid_status(paid, due) == (
        "paid" if paid >= due else "open" if paid == 0 else "partially_paid"
    )
    assert balance_cents(shown, []) == max(0, due - paid)
    pending = Payment(amount_cents=data.draw(st.integers(0, total)), status="pending")
    assert balance_cents(shown, [pending]) == max(0, due - paid - pending.amount_cents)


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=10**10), percents), max_size=30))
def test_a_release_invoice_bills_the_held_sum(invoices) -> None:
    """The release invoice has a line per held invoice; by the one line-total rule its total
    is the sum held, and the originals' due parts plus it are what was invoiced."""
    rows = [invoice(total, percent) for total, percent in invoices]
    held = [row for row in rows if row.retainage_cents]
    lines = [
        release_line(f"INV-{n}", row.retainage_percent, row.retainage_cents)
        for n, row in enumerate(held)
    ]
    _, _, billed = totals(lines, None)
    assert billed == sum(row.retainage_cents for row in rows)
    assert sum(due_cents(row) for row in rows) + billed == sum(t for t, _ in invoices)
