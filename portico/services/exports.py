"""CSV exports for the accountant (CONTRACT section 11): invoices, a row per line, in the
columns QuickBooks Online's invoice import reads, and payments. Rows are streamed from the
database in batches, so memory stays flat however many there are.

Cells are quoted by the csv module (commas, quotes, newlines); text a person typed that starts
with `=`, `+`, `-`, `@` (or a tab or carriage return) gets a leading `'`, so a spreadsheet shows
it instead of running it as a formula (CSV injection). Money is a decimal (`1250.00`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.models import Client, Invoice, Payment, Project
from portico.money import line_total

INVOICE_COLUMNS = (
    "InvoiceNo",
    "Customer",
    "InvoiceDate",
    "DueDate",
    "ItemDescription",
    "ItemQuantity",
    "ItemRate",
    "ItemAmount",
    "Currency",
)
PAYMENT_COLUMNS = (
    "Date",
    "InvoiceNo",
    "Customer",
    "Method",
    "Reference",
    "Amount",
    "Currency",
    "Status",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BATCH = 500


def safe_text(value: str | None) -> str:
    """Text a person typed, defused for spreadsheets."""
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def decimal_amount(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):.2f}"


def quantity_text(quantity: Any) -> str:
    return format(Decimal(str(quantity)).normalize(), "f")


def customer(client: Client) -> str:
    return client.company or client.name


def invoice_rows(invoice: Invoice, client: Client) -> list[list[str]]:
    """A row per line item, one for the tax, and one negative row for the retainage held
    back, so ItemAmount adds up to what the invoice asks for now (its due_cents); the
    release invoice bills the retainage later with a line per original invoice."""
    head = [safe_text(invoice.number), safe_text(customer(client))]
    dates = [invoice.issued_on.isoformat(), invoice.due_date.isoformat()]
    rows = []
    for item in invoice.line_items:
        amount = line_total(item["quantity"], item["unit_price_cents"])
        rows.append(
            [
                *head,
                *dates,
                safe_text(str(item["description"])),
                quantity_text(item["quantity"]),
                decimal_amount(int(item["unit_price_cents"])),
                decimal_amount(amount),
                invoice.currency,
            ]
        )
    if invoice.tax_cents:
        rate = Decimal(invoice.tax_rate_percent or "0").normalize()
        tax = decimal_amount(invoice.tax_cents)
        rows.append([*head, *dates, f"Tax ({rate:f}%)", "1", tax, tax, invoice.currency])
    if invoice.retainage_cents:
        rate = Decimal(invoice.retainage_percent or "0").normalize()
        held = decimal_amount(-invoice.retainage_cents)
        rows.append(
            [*head, *dates, f"Retainage held ({rate:f}%)", "1", held, held, invoice.currency]
        )
    return rows


def payment_row(payment: Payment, invoice: Invoice, client: Client) -> list[str]:
    when = payment.settled_at or payment.created_at
    return [
        when.astimezone(UTC).date().isoformat(),
        safe_text(invoice.number),
        safe_text(customer(client)),
        payment.method,
        safe_text(payment.reference),
        decimal_amount(payment.amount_cents),
        payment.currency,
        payment.status,
    ]


def _encode(rows: Iterable[Iterable[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class Exports:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def _stream(self, query: Select[*tuple[Any, ...]]) -> AsyncIterator[list[Any]]:
        """The query's rows in batches of BATCH, read with a server-side cursor."""
        async with self.sessions() as session:
            result = await session.stream(query.execution_options(yield_per=BATCH))
            async for batch in result.partitions():
                yield [tuple(row) for row in batch]

    async def invoices_csv(self, start: date | None, end: date | None) -> AsyncIterator[bytes]:
        """invoices.csv: the invoices issued from `start` to `end` (inclusive), not void."""
        query = (
            select(Invoice, Client)
            .join(Project, Project.id == Invoice.project_id)
            .join(Client, Client.id == Project.client_id)
            .where(Invoice.status != "void")
            .order_by(Invoice.issued_on, Invoice.id)
        )
        if start is not None:
            query = query.where(Invoice.issued_on >= start)
        if end is not None:
            query = query.where(Invoice.issued_on <= end)
        yield _encode([INVOICE_COLUMNS])
        async for batch in self._stream(query):
            yield _encode(row for invoice, client in batch for row in invoice_rows(invoice, client))

    async def payments_csv(self, start: date | None, end: date | None) -> AsyncIterator[bytes]:
        """payments.csv: the payments made (settled, else recorded) from `start` to `end`
        (inclusive, UTC days)."""
        paid_at = func.coalesce(Payment.settled_at, Payment.created_at)
        query = (
            select(Payment, Invoice, Client)
            .join(Invoice, Invoice.id == Payment.invoice_id)
            .join(Project, Project.id == Invoice.project_id)
            .join(Client, Client.id == Project.client_id)
            .order_by(paid_at, Payment.id)
        )
        if start is not None:
            query = query.where(paid_at >= _day_start(start))
        if end is not None:
            query = query.where(paid_at < _day_start(end + timedelta(days=1)))
        yield _encode([PAYMENT_COLUMNS])
        async for batch in self._stream(query):
            yield _encode(payment_row(*row) for row in batch)
