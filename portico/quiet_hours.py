"""Quiet hours for non-urgent SMS: no reminders in the middle of the recipient's night.

The recipient's zone is guessed from the number's country code where a country has one zone
that most of its people live in; everything else (including +1, which spans many zones) uses
the configured default. Pure functions with the clock passed in, so they test with fixed times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portico.phones import bare_phone

# Calling code -> IANA zone; None means "use the default zone" (North America spans many).
COUNTRY_ZONES: dict[str, str | None] = {
    "1": None,
    "27": "Africa/Johannesburg",
    "31": "Europe/Amsterdam",
    "32": "Europe/Brussels",
    "33": "Europe/Paris",
    "34": "Europe/Madrid",
    "39": "Europe/Rome",
    "41": "Europe/Zurich",
    "43": "Europe/Vienna",
    "44": "Europe/London",
    "45": "Europe/Copenhagen",
    "46": "Europe/Stockholm",
    "47": "Europe/Oslo",
    "48": "Europe/Warsaw",
    "49": "Europe/Berlin",
    "61": "Australia/Sydney",
    "64": "Pacific/Auckland",
    "65": "Asia/Singapore",
    "81": "Asia/Tokyo",
    "82": "Asia/Seoul",
    "91": "Asia/Kolkata",
    "351": "Europe/Lisbon",
    "353": "Europe/Dublin",
    "358": "Europe/Helsinki",
    "972": "Asia/Jerusalem",
}
OFF = frozenset({"", "off", "none", "no", "false", "0"})


@dataclass(frozen=True)
class QuietHours:
    """A nightly window in local time, e.g. 21:00-08:00; `start == end` never happens."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # wraps past midnight


def parse_quiet_hours(spec: str) -> QuietHours | None:
    """'21-8' or '21:30-07:45' -> QuietHours; 'off' (or empty) -> None. Raises ValueError."""
    text = spec.strip().lower()
    if text in OFF:
        return None
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start, end = _clock(start_text), _clock(end_text)
    except ValueError as err:
        raise ValueError(
            f"PORTICO_QUIET_HOURS must look like 21-8 or 21:30-7:45, not {spec!r}"
        ) from err
    if start == end:
        raise ValueError("PORTICO_QUIET_HOURS: start and end must differ (use 'off' to disable)")
    return QuietHours(start, end)


def _clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes or 0))


def zone_for(phone: str, default: ZoneInfo) -> ZoneInfo:
    """The recipient's likely zone from the longest matching calling code, else `default`."""
    number = bare_phone(phone)
    if not number.startswith("+"):
        return default
    digits = number[1:]
    for length in (3, 2, 1):
        if digits[:length] in COUNTRY_ZONES:
            name = COUNTRY_ZONES[digits[:length]]
            return ZoneInfo(name) if name else default
    return default


def delay_until_allowed(
    now: datetime, zone: ZoneInfo, quiet: QuietHours | None
) -> timedelta | None:
    """How long to hold a non-urgent SMS at `now` (aware); None when it may go out now."""
    if quiet is None:
        return None
    local = now.astimezone(zone)
    if not quiet.contains(local.time()):
        return None
    ends = datetime.combine(local.date(), quiet.end, tzinfo=zone)
    if ends <= local:
        ends = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=zone)
    # Subtract in UTC: aware datetimes sharing a tzinfo subtract as wall-clock times (DST!).
    return ends.astimezone(UTC) - now.astimezone(UTC)


def release_offset(key: str, spread: timedelta) -> timedelta:
    """Where in the morning's `spread` a held message goes out: derived from its key, so the
    same message always gets the same moment (a retry does not move it) and a night's texts
    leave over the spread instead of in one burst."""
    seconds = int(spread.total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(key.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)
