"""portico.money: the one money formatter and the one line-total rule, as every place shows them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from portico.money import format_money, line_total, totals
from portico.pdf import pdf_text, render_line_items_pdf
from workflows import messages
from workflows.types import ApprovalInput, ApproverInput, DocumentInfo


def test_format_money() -> None:
    assert format_money(123450, "USD") == "$1,234.50"
    assert format_money(123450, "usd") == "$1,234.50"
    assert format_money(123450, " usd ") == "$1,234.50"
    assert format_money(123450, "eur") == "€1,234.50"  # Babel, en-US (tests/test_i18n.py)
    assert format_money(5, "USD") == "$0.05"
    assert format_money(-125, "USD") == "-$1.25"
    assert format_money(0, "GBP") == "£0.00"
    assert format_money(None, "USD") == ""


def test_line_total_rounds_half_up_whatever_the_quantity_type() -> None:
    assert line_total("1.5", 333) == 500  # 499.5 rounds up
    assert line_total(1.5, 333) == line_total(Decimal("1.5"), 333) == 500
    assert line_total(0.1, 5) == 1  # 0.5 up, not the float's 0.49999…
    assert line_total(2, 100) == 200
    items = [{"quantity": "1.5", "unit_price_cents": 333}, {"quantity": 2, "unit_price_cents": 100}]
    assert totals(items, None) == (700, 0, 700)
    assert totals(items, Decimal("7.5")) == (700, 53, 753)


def test_the_pdf_and_the_ledger_agree_on_every_line() -> None:
    """The rendered PDF prints, and returns, the totals the invoice ledger stores."""
    items = [
        {"description": "Outlets", "quantity": 0.1, "unit_price_cents": 5},
        {"description": "Labour", "quantity": "2.675", "unit_price_cents": 10001},
        {"description": "Wire", "quantity": 3, "unit_price_cents": 1999},
    ]
    data, total = render_line_items_pdf(
        kind="estimate",
        number="E-1",
        title="Kitchen",
        currency="EUR",
        line_items=items,
        company_name="ACME",
        client_name="Dana",
        project_name="Home",
        issued_on=date(2025, 1, 2),
    )
    assert total == totals(items, None)[0]
    text = pdf_text(data)
    for item in items:
        assert format_money(line_total(item["quantity"], item["unit_price_cents"]), "EUR") in text
    assert format_money(total, "EUR") in text


def test_approver_messages_write_amounts_as_the_pdf_does() -> None:
    doc = DocumentInfo(
        id=1, kind="change_order", number="CO-1", title="Extra", amount_cents=125000, currency="usd"
    )
    inp = ApprovalInput(
        approval_id=1,
        document=doc,
        approvers=[ApproverInput(id=1, name="Dana", email="d@example.com")],
        routing="sequential",
        created_at=datetime(2025, 1, 2, tzinfo=UTC),
    )
    assert messages.document_line(inp) == 'Change order CO-1 "Extra" ($1,250.00)'
    assert messages.email_context(inp)["amount"] == format_money(125000, "usd")
