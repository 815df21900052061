"""CSV exports for the accountant (CONTRACT section 11): a row per invoice line in QuickBooks
Online's import columns, and payments; money as decimals; commas, quotes and newlines survive a
round trip through a CSV reader, and no cell a person typed runs as a spreadsheet formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from portico.services.exports import INVOICE_COLUMNS, PAYMENT_COLUMNS, safe_text
from tests.support.portal_support import create_invoice, seed_client

NASTY = [
    '=HYPERLINK("http://evil.test","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "comma, inside",
    'a "quoted" word',
    "two\nlines",
]


async def export(stack, name: str, query: str = "") -> tuple[int, list[list[str]], str]:
    response = await stack.http.get(f"/api/v1/exports/{name}{query}", headers=stack.auth)
    text = await response.text()
    return response.status, list(csv.reader(io.StringIO(text))), response.content_type


async def test_invoice_lines_round_trip_defused(stack):
    _, project = await seed_client(stack, name="=cmd|' /C calc'!A0")
    items = [
        {"description": text, "quantity": "1.5", "unit_price_cents": 1000 + n}
        for n, text in enumerate(NASTY)
    ]
    invoice = await create_invoice(stack, project["id"], number="=INV-1", line_items=items)
    status, rows, kind = await export(stack, "invoices.csv")
    assert status == 200 and kind == "text/csv"
    assert tuple(rows[0]) == INVOICE_COLUMNS
    lines = rows[1:]
    assert len(lines) == len(NASTY)
    today = datetime.now(UTC).date().isoformat()
    for row, text, item in zip(lines, NASTY, items, strict=True):
        record = dict(zip(INVOICE_COLUMNS, row, strict=True))
        assert record["ItemDescription"] == safe_text(text)
        assert not record["ItemDescription"].startswith(("=", "+", "-", "@", "\t"))
        assert record["ItemDescription"].lstrip("'") == text  # nothing else changed
        assert record["InvoiceNo"] == "'=INV-1"
        assert record["Customer"] == "'=cmd|' /C calc'!A0 Co"
        assert record["InvoiceDate"] == today and record["DueDate"] == invoice["due_date"]
        assert record["ItemQuantity"] == "1.5"
        assert record["ItemRate"] == f"{item['unit_price_cents'] / 100:.2f}"
        assert record["Currency"] == "USD"
    total = sum(round(float(r[7]) * 100) for r in lines)
    assert total == invoice["total_cents"]  # the lines add up to the invoice


async def test_payments_and_date_range(stack):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    body = {"amount_cents": 120000, "method": "check", "reference": "=1+2"}
    await stack.api("POST", f"/invoices/{invoice['id']}/payments", 201, json=body)
    status, rows, _ = await export(stack, "payments.csv")
    assert status == 200 and tuple(rows[0]) == PAYMENT_COLUMNS
    [row] = [dict(zip(PAYMENT_COLUMNS, r, strict=True)) for r in rows[1:]]
    today = datetime.now(UTC).date()
    assert row == {
        "Date": today.isoformat(),
        "InvoiceNo": invoice["number"],
        "Customer": "Dana Client Co",
        "Method": "check",
        "Reference": "'=1+2",
        "Amount": "1200.00",
        "Currency": "USD",
        "Status": "succeeded",
    }
    tomorrow = (today + timedelta(days=1)).isoformat()
    for name, rows_today in (("payments.csv", 1), ("invoices.csv", 2)):  # 2 invoice lines
        _, inside, _ = await export(stack, name, f"?from={today}&to={today}")
        _, later, _ = await export(stack, name, f"?from={tomorrow}")
        assert len(inside) == 1 + rows_today and later == [inside[0]]
    _, backwards, _ = await export(stack, "invoices.csv", f"?from={tomorrow}&to={today}")
    assert backwards == [list(INVOICE_COLUMNS)]  # nothing in an empty range
    for query in ("?from=yesterday", "?to=2025-02-30", "?from=12345", "?to="):
        status, _, _ = await export(stack, "invoices.csv", query)
        assert status == 422, query
    response = await stack.http.get("/api/v1/exports/invoices.csv")
    assert response.status == 401
