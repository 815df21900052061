"""Quiet hours and opt-outs in the send_sms activity, with fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from portico.models import SmsOptOut
from portico.phones import bare_phone
from portico.quiet_hours import (
    QuietHours,
    delay_until_allowed,
    parse_quiet_hours,
    release_offset,
    zone_for,
)
from portico.settings import Settings
from tests.support.helpers import outbox
from workflows.types import SmsMessage

NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(time(21), time(8))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The default night (PORTICO_QUIET_HOURS, 21:00 to 08:00 where the recipient is); the
    suite's other tests run with quiet hours off."""
    default = Settings.model_fields["quiet_hours"].default
    assert default == "21-8"
    return settings.model_copy(update={"quiet_hours": default})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_parse_quiet_hours():
    assert parse_quiet_hours("21-8") == NIGHT
    assert parse_quiet_hours(" 21:30 - 07:45 ") == QuietHours(time(21, 30), time(7, 45))
    assert parse_quiet_hours("0-6") == QuietHours(time(0), time(6))
    for off in ("off", "", "none", "OFF"):
        assert parse_quiet_hours(off) is None
    for bad in ("21", "25-8", "night", "8-8", "21-8-9"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)


def test_zone_comes_from_the_country_code_when_unambiguous():
    assert zone_for("+15550100001", NEW_YORK) is NEW_YORK  # +1 spans many zones
    assert zone_for("whatsapp:+447700900123", NEW_YORK).key == "Europe/London"
    assert zone_for("+61 2 5550 1234", NEW_YORK).key == "Australia/Sydney"
    assert zone_for("+49 30 1234567", NEW_YORK).key == "Europe/Berlin"
    assert zone_for("+33612345678", NEW_YORK).key == "Europe/Paris"
    assert zone_for("+353851234567", NEW_YORK).key == "Europe/Dublin"  # longest code wins
    assert zone_for("+7 495 1234567", NEW_YORK) is NEW_YORK  # not in the table
    assert zone_for("5550100001", NEW_YORK) is NEW_YORK  # no country code


def test_delay_until_the_end_of_the_night():
    # 23:00 in New York (EST): held until 08:00 the next morning, 9 hours.
    assert delay_until_allowed(at("2026-01-15T23:00:00-05:00"), NEW_YORK, NIGHT) == timedelta(
        hours=9
    )
    # 06:30, same morning: 1.5 hours.
    assert delay_until_allowed(at("2026-01-15T06:30:00-05:00"), NEW_YORK, NIGHT) == timedelta(
        hours=1, minutes=30
    )
    # Daytime and the edges: send now.
    for clock in ("12:00", "08:00", "20:59"):
        assert delay_until_allowed(at(f"2026-01-15T{clock}:00-05:00"), NEW_YORK, NIGHT) is None
    assert delay_until_allowed(at("2026-01-15T21:00:00-05:00"), NEW_YORK, NIGHT) == timedelta(
        hours=11
    )
    # Disabled.
    assert delay_until_allowed(at("2026-01-15T23:00:00-05:00"), NEW_YORK, None) is None
    # A window that does not wrap midnight.
    early = QuietHours(time(0), time(6))
    assert delay_until_allowed(at("2026-01-15T23:30:00-05:00"), NEW_YORK, early) is None
    assert delay_until_allowed(at("2026-01-16T05:00:00-05:00"), NEW_YORK, early) == timedelta(
        hours=1
    )


def test_delay_counts_real_hours_across_a_dst_change():
    # US clocks go forward at 02:00 on 2026-03-08: 22:00 -> 08:00 local is only 9 real hours.
    delay = delay_until_allowed(at("2026-03-07T22:00:00-05:00"), NEW_YORK, NIGHT)
    assert delay == timedelta(hours=9)
    # ...and back on 2026-11-01: 11 real hours.
    assert delay_until_allowed(at("2026-10-31T22:00:00-04:00"), NEW_YORK, NIGHT) == timedelta(
        hours=11
    )


def reminder(to: str, key: str, urgent: bool = False) -> SmsMessage:
    return SmsMessage(dedupe_key=key, to=to, body="Acme: reminder", urgent=urgent)


async def test_send_sms_holds_non_urgent_texts_at_night_in_the_recipients_zone(settings, sessions):

    # 03:00 UTC = 22:00 in New York, but 03:00 in London and 14:00 in Sydney.
    clock = at("2026-01-16T03:00:00+00:00")
    settings = settings.model_copy(update={"quiet_hours_spread_minutes": 0})  # exact ends
    notify = NotifyActivities(settings, sessions, clock=lambda: clock)
    env = ActivityEnvironment()

    with pytest.raises(ApplicationError) as held:
        await env.run(notify.send_sms, reminder("+15550100001", "k1"))
    assert held.value.type == "QuietHours"
    assert not held.value.non_retryable
    assert held.value.next_retry_delay == timedelta(hours=10)  # until 08:00 New York time

    with pytest.raises(ApplicationError) as held_uk:
        await env.run(notify.send_sms, reminder("+447700900123", "k2"))
    assert held_uk.value.next_retry_delay == timedelta(hours=5)

    await env.run(notify.send_sms, reminder("+61255501234", "k3"))  # afternoon in Sydney
    await env.run(notify.send_sms, reminder("+15550100001", "k4", urgent=True))  # urgent: now
    sent = await outbox(sessions)
    assert [(m.dedupe_key, m.transport) for m in sent] == [("k3", "outbox"), ("k4", "outbox")]

    daytime = NotifyActivities(settings, sessions, clock=lambda: at("2026-01-16T15:00:00+00:00"))
    await env.run(daytime.send_sms, reminder("+15550100001", "k1"))  # the retry, at 10:00
    assert [m.dedupe_key for m in await outbox(sessions)] == ["k3", "k4", "k1"]


async def test_a_nights_texts_go_out_over_the_morning_not_at_once(settings, sessions):
    """Held texts are released over PORTICO_QUIET_HOURS_SPREAD_MINUTES after the night ends,
    each at a moment of its own that a retry does not move; released, they are sent."""
    night = at("2026-01-16T03:00:00+00:00")  # 22:00 in New York: the night ends in 10 hours
    notify = NotifyActivities(settings, sessions, clock=lambda: night)
    assert settings.quiet_hours_spread_minutes == 30
    env = ActivityEnvironment()

    async def held_for(key: str) -> timedelta:
        with pytest.raises(ApplicationError) as held:
            await env.run(notify.send_sms, reminder("+15550100001", key))
        assert held.value.type == "QuietHours"
        delay = held.value.next_retry_delay
        assert delay is not None
        return delay

    delays = {key: await held_for(key) for key in (f"spread-{i}" for i in range(40))}
    assert all(timedelta(hours=10) <= d < timedelta(hours=10, minutes=30) for d in delays.values())
    assert len(set(delays.values())) > 30  # spread, not one burst at 08:00
    assert max(delays.values()) - min(delays.values()) > timedelta(minutes=20)
    assert await held_for("spread-7") == delays["spread-7"]  # a retry keeps its moment

    key, delay = "spread-7", delays["spread-7"]
    released = NotifyActivities(settings, sessions, clock=lambda: night + delay)
    await env.run(released.send_sms, reminder("+15550100001", key))
    assert [m.dedupe_key for m in await outbox(sessions)] == [key]


async def test_send_sms_skips_opted_out_numbers_and_records_it(settings, sessions):
    async with sessions() as session, session.begin():
        session.add(SmsOptOut(phone=bare_phone("+1 555 010 0001"), opted_out=True))
        session.add(SmsOptOut(phone="+15550100002", opted_out=False))  # opted back in
    notify = NotifyActivities(settings, sessions)
    env = ActivityEnvironment()
    for to in ("+15550100001", "whatsapp:+15550100001"):
        with pytest.raises(ApplicationError) as refused:
            await env.run(notify.send_sms, reminder(to, f"stop-{to}", urgent=True))
        assert refused.value.type == "OptedOut"
        assert refused.value.non_retryable
    await env.run(notify.send_sms, reminder("+15550100002", "ok", urgent=True))
    sent = await outbox(sessions)
    assert [(m.to, m.transport) for m in sent] == [
        ("+15550100001", "opted_out"),
        ("whatsapp:+15550100001", "opted_out"),
        ("+15550100002", "outbox"),
    ]


def test_bad_quiet_hours_setting_fails_at_startup(settings, sessions):
    with pytest.raises(ValueError, match="PORTICO_QUIET_HOURS"):
        NotifyActivities(settings.model_copy(update={"quiet_hours": "late"}), sessions)


@given(st.text(max_size=80), st.integers(min_value=0, max_value=240 * 60))
def test_a_release_offset_is_within_the_spread_and_stable(key: str, seconds: int):
    spread = timedelta(seconds=seconds)
    offset = release_offset(key, spread)
    assert offset == release_offset(key, spread)
    assert offset == timedelta(0) if seconds == 0 else timedelta(0) <= offset < spread
