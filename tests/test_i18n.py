"""Locales (CONTRACT section 10): who reads what, and money and dates per locale."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.parse import Approve, Decline, Stop, language_hint, parse
from portico import i18n
from portico.money import format_money

NBSP = "\u00a0"


def test_money_per_locale() -> None:
    assert format_money(125000, "USD", "en") == "$1,250.00"
    assert format_money(125000, "CAD", "fr") == f"1{NBSP}250,00{NBSP}$"
    assert format_money(125000, "USD", "fr") == f"1{NBSP}250,00{NBSP}${NBSP}US"
    assert format_money(125000, "MXN", "es") == "$1,250.00"
    assert format_money(-125, "USD", "en") == "-$1.25"
    assert format_money(None, "USD", "fr") == ""


def test_money_follows_the_current_locale() -> None:
    with i18n.use("fr"):
        assert format_money(123450, "CAD") == f"1{NBSP}234,50{NBSP}$"
    assert format_money(123450, "USD") == "$1,234.50"  # back to English outside


def test_dates_per_locale_in_the_readers_zone() -> None:
    moment = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
    assert i18n.format_datetime(moment, "en", "America/New_York") == "Mar 5, 2026, 9:30\u202fAM EST"
    assert i18n.format_datetime(moment, "fr", "America/Toronto") == "5 mars 2026, 09 h 30 EST"
    assert i18n.format_datetime(moment, "es", "America/Mexico_City") == (
        "5 mar 2026, 8:30\u202fa.m. CST"
    )
    assert i18n.format_datetime("2026-03-05T14:30:00+00:00", "en", "UTC") == (
        "Mar 5, 2026, 2:30\u202fPM UTC"
    )
    assert i18n.format_date(date(2026, 3, 5), "en") == "Mar 5, 2026"
    assert i18n.format_date(date(2026, 3, 5), "fr") == "5 mars 2026"
    assert i18n.format_date(date(2026, 3, 5), "es") == "5 mar 2026"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ("de-DE,es-MX;q=0.7,en;q=0.5", "es"),
        ("en-US", "en"),
        ("de, it", None),
        ("", None),
        ("fr;q=0, es;q=0.2", "es"),
        ("garbage;q=x, es", "es"),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.negotiate(header) == expected


def test_who_reads_what() -> None:
    assert i18n.resolve("es", "fr", default="en") == "es"  # approver before client
    assert i18n.resolve(None, "fr-CA", default="en") == "fr"
    assert i18n.resolve(None, None, default="es") == "es"
    assert i18n.resolve("de", None) == "en"


def test_time_zones_are_checked() -> None:
    assert i18n.valid_timezone("America/Toronto")
    assert not i18n.valid_timezone("Mars/Olympus")
    assert not i18n.valid_timezone("../../etc/passwd")
    assert not i18n.valid_timezone("")


YES = st.sampled_from(["YES", "yes", "Oui", "OUI", "oui", "SI", "si", "Sí", "SÍ", "sí", "Y"])
NO = st.sampled_from(["NO", "no", "No", "NON", "non", "Non"])
CODES = st.integers(min_value=0, max_value=99_999_999).map(str).filter(lambda c: len(c) >= 4)
WORDS = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), max_codepoint=0x24F), min_size=1
)


@given(YES, CODES, st.one_of(st.none(), WORDS))
def test_yes_in_any_language(word: str, code: str, notes: str | None) -> None:
    text = f"{word} {code}" + (f" {notes}" if notes else "")
    assert parse(text) == Approve(code, notes)


@given(NO, CODES, WORDS)
def test_no_in_any_language(word: str, code: str, reason: str) -> None:
    assert parse(f"{word} {code} {reason}") == Decline(code, reason)


@given(st.sampled_from(["ARRET", "arrêt", "Arrêt", "ARRÊT", "alto", "Alto", "STOP"]))
def test_stop_in_french_and_spanish(word: str) -> None:
    assert parse(word) == Stop()


def test_language_hints() -> None:
    assert language_hint("OUI 1234") == "fr"
    assert language_hint("non 1234 trop cher") == "fr"
    assert language_hint("Sí 1234") == "es"
    assert language_hint("alto") == "es"
    assert language_hint("NO 1234 caro") is None  # English and Spanish alike
    assert language_hint("YES 1234") is None
