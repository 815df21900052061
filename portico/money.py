"""Money: the one way an amount is written for people, read from people, and the one rule for a
line's total.

Amounts are integer minor units (cents) with an ISO currency code (CONTRACT §3). The PDF
renderer, the invoice ledger, the portal pages and the workflow's message texts all use these,
so an invoice's PDF, page, email and stored total never disagree by a cent.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

from babel.numbers import format_currency

from portico import i18n

__all__ = ["PLAIN", "BadAmount", "format_money", "line_total", "parse_cents", "totals"]


# The locale-free form workflows write into their histories: '$1,234.50' for USD, '1,234.50 EUR'
# otherwise. A workflow may not load locale data (file reads inside the sandbox) and its texts
# must not depend on who runs or replays it; readers get their own form from the activities.
PLAIN = "plain"


def format_money(amount_cents: int | None, currency: str, locale: str | None = None) -> str:
    """An amount as a reader of `locale` (default: the current one, portico.i18n) writes it:
    '$1,250.00' (en-US), '1 250,00 $' (CAD in fr-CA), '$1,250.00' (MXN in es-MX); '' for None.
    `locale=PLAIN` is the workflows' form (no locale data)."""
    if amount_cents is None:
        return ""
    code = (currency or "").strip().upper() or "USD"
    if locale == PLAIN:
        whole, cents = divmod(abs(int(amount_cents)), 100)
        sign = "-" if amount_cents < 0 else ""
        text = f"{whole:,}.{cents:02d}"
        return f"{sign}${text}" if code == "USD" else f"{sign}{text} {code}"
    return _in_locale(int(amount_cents), code, i18n.region(locale))


@functools.lru_cache(maxsize=4096)
def _in_locale(amount_cents: int, code: str, region: str) -> str:
    """Babel's formatting, remembered: it parses the locale's pattern on every call, and a
    page writes the same few amounts again and again (the signing page, docs/benchmarks.md)."""
    amount = Decimal(amount_cents) / 100
    return format_currency(amount, code, locale=region, currency_digits=False)


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_total(quantity: Any, unit_price_cents: int) -> int:
    """Quantity × unit price, rounded half-up to whole cents."""
    with localcontext() as ctx:
        ctx.prec = 60
        return _half_up(Decimal(str(quantity)) * Decimal(unit_price_cents))


def totals(line_items: list[dict[str, Any]], tax_rate: Decimal | None) -> tuple[int, int, int]:
    """(subtotal, tax, total) in cents; tax rounded half-up on the subtotal."""
    subtotal = sum(line_total(i["quantity"], i["unit_price_cents"]) for i in line_items)
    tax = 0
    if tax_rate:
        with localcontext() as ctx:
            ctx.prec = 60
            tax = _half_up(Decimal(subtotal) * tax_rate / 100)
    return subtotal, tax, subtotal + tax


_AMOUNT = re.compile(r"\$?\s*([0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)")


class BadAmount(ValueError):
    """Not an amount of money; the message is a sentence for the person who typed it."""


def parse_cents(text: str) -> int:
    """Cents from a decimal with at most two decimals, thousands separators allowed."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise BadAmount("Enter an amount such as 1250.00.")
    digits = match.group(1).replace(",", "")
    try:
        value = Decimal(digits)
    except InvalidOperation as err:
        raise BadAmount("Enter an amount such as 1250.00.") from err
    cents = value * 100
    if cents != cents.to_integral_value():
        raise BadAmount("Enter at most two decimals (cents).")
    return int(cents)
