"""Visit dates of a service agreement: `starts_on` plus n intervals, each computed from the
start (never from the previous visit), so a month-end start keeps landing on month ends:
Jan 31 -> Feb 28 (29 in a leap year) -> Mar 31. A day the month does not have (the 31st of a
short month, 29 February in other years) moves to that month's last day."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

EVERY = ("week", "month", "quarter", "year")
MONTHS = {"month": 1, "quarter": 3, "year": 12}


def add_months(start: date, months: int) -> date:
    """`start` moved by whole months, clamped to the last day of the month it lands in."""
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last))


def visit_date(starts_on: date, every: str, n: int) -> date:
    """The date of visit `n` (1-based): the first is `starts_on` itself."""
    if every == "week":
        return starts_on + timedelta(weeks=n - 1)
    if every not in MONTHS:
        raise ValueError(f"every must be one of {', '.join(EVERY)}, not {every!r}")
    return add_months(starts_on, MONTHS[every] * (n - 1))


def visit_dates(starts_on: date, every: str, visits: int) -> list[date]:
    return [visit_date(starts_on, every, n) for n in range(1, visits + 1)]
