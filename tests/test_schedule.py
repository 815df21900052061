"""The visit dates of a service agreement: n intervals from the start, each from the start
(not from the previous visit), a day the month lacks moving to its last day."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico.schedule import EVERY, MONTHS, add_months, visit_date, visit_dates


def test_month_ends_stay_month_ends():
    assert visit_dates(date(2027, 1, 31), "month", 4) == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
    ]
    assert visit_dates(date(2028, 1, 31), "month", 2)[1] == date(2028, 2, 29)  # leap year


def test_quarters_years_and_weeks():
    assert visit_dates(date(2026, 11, 30), "quarter", 4) == [
        date(2026, 11, 30),
        date(2027, 2, 28),
        date(2027, 5, 30),
        date(2027, 8, 30),
    ]
    assert visit_dates(date(2028, 2, 29), "year", 5) == [
        date(2028, 2, 29),
        date(2029, 2, 28),
        date(2030, 2, 28),
        date(2031, 2, 28),
        date(2032, 2, 29),
    ]
    assert visit_dates(date(2026, 12, 29), "week", 3) == [
        date(2026, 12, 29),
        date(2027, 1, 5),
        date(2027, 1, 12),
    ]


def test_an_unknown_interval_is_refused():
    with pytest.raises(ValueError):
        visit_date(date(2027, 1, 1), "fortnight", 2)


starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(starts, st.sampled_from(EVERY), st.integers(min_value=1, max_value=120))
def test_every_visit_follows_the_rule(start, every, n):
    day = visit_date(start, every, n)
    if every == "week":
        assert day == start + timedelta(weeks=n - 1)
        return
    months = MONTHS[every] * (n - 1)
    index = start.year * 12 + start.month - 1 + months
    assert (day.year * 12 + day.month - 1) == index  # the right month
    last = calendar.monthrange(day.year, day.month)[1]
    assert day.day == min(start.day, last)  # the same day, or the month's last


@given(starts, st.sampled_from(EVERY), st.integers(min_value=1, max_value=120))
def test_visits_are_in_order_and_distinct(start, every, visits):
    dates = visit_dates(start, every, visits)
    assert len(dates) == visits and dates[0] == start
    assert all(a < b for a, b in zip(dates, dates[1:], strict=False))


@given(starts, st.integers(min_value=-1200, max_value=1200))
def test_add_months_never_drifts(start, months):
    moved = add_months(start, months)
    assert moved.day <= start.day
    assert add_months(start, months).day == min(
        start.day, calendar.monthrange(moved.year, moved.month)[1]
    )
