"""Amounts typed by people ("1250.00", "1,250.5", "$80") as integer minor units."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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
