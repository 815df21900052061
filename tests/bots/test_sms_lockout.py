"""Guessing reply codes (issue 10, finding 4): codes are 4 digits, so after 5 wrong ones in an
hour a number's codes are not accepted, a right one included, until the hour has passed.
End to end through the signed Twilio webhook, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bots import attempts
from portico.models import SmsCodeAttempt, SmsOptOut
from tests.bots.test_sms_bot import PHONE_1, STRANGER, codes, show, sms_request
from tests.support.fake_twilio import post_sms
from web.http.keys import SERVICE

LOCKED_REPLY = "too many wrong codes"
REFUSAL = "does not match an open request"


def wrong_codes(right: set[str], n: int) -> list[str]:
    """`n` distinct 4-digit codes none of which is in `right`."""
    return [c for c in (f"{i:04d}" for i in range(1000, 10_000)) if c not in right][:n]


async def recorded(stack, phone: str = PHONE_1) -> list[SmsCodeAttempt]:
    async with stack.sessions() as session:
        rows = await session.scalars(
            select(SmsCodeAttempt).where(SmsCodeAttempt.phone == phone).order_by(SmsCodeAttempt.id)
        )
        return list(rows)


async def still_open(stack, approval_id: int) -> None:
    shown = await show(stack, approval_id)
    assert shown["status"] == "pending"
    assert shown["approvers"][0]["status"] in ("pending", "viewed")
    assert not [e for e in shown["events"] if e["type"] in ("approved", "declined")]


def move_clock(stack, by: timedelta) -> None:
    stack.http.app[SERVICE].clock = lambda: datetime.now(UTC) + by


async def test_brute_force_is_refused_after_five_wrong_codes(sms_stack):
    # The attacker holds the number and the code of one request, and guesses the other's.
    own = await sms_request(sms_stack, n=1)
    target = await sms_request(sms_stack, n=1)
    own_code = (await codes(sms_stack, own["id"]))[0]
    target_code = (await codes(sms_stack, target["id"]))[0]

    replies = []
    for guess in wrong_codes({own_code, target_code}, 20):
        status, reply = await post_sms(sms_stack, PHONE_1, f"YES {guess}")
        assert status == 200
        replies.append(reply)
    assert all(REFUSAL in r for r in replies[:4])
    assert all(LOCKED_REPLY in r for r in replies[4:])  # the fifth wrong one locks the number
    assert "use the link in our message" in replies[4]
    assert "nothing was changed" in replies[4]

    for text in (f"YES {target_code}", f"NO {target_code} no", f"YES {own_code}"):
        _, reply = await post_sms(sms_stack, PHONE_1, text)
        assert LOCKED_REPLY in reply
        assert "CO-17" not in reply  # the right code is not even looked at
    # WhatsApp from the same number shares the lock.
    _, reply = await post_sms(sms_stack, f"whatsapp:{PHONE_1}", f"YES {target_code}")
    assert LOCKED_REPLY in reply
    await still_open(sms_stack, own["id"])
    await still_open(sms_stack, target["id"])

    rows = await recorded(sms_stack)
    assert [r.outcome for r in rows] == ["wrong"] * 5 + ["locked"] * 19

    # Another number is not locked by this one's guesses.
    _, reply = await post_sms(sms_stack, STRANGER, f"YES {target_code}")
    assert REFUSAL in reply


async def test_the_right_code_within_the_limit_still_works(sms_stack):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    for guess in wrong_codes({code}, 4):
        _, reply = await post_sms(sms_stack, PHONE_1, f"YES {guess}")
        assert REFUSAL in reply
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code} typo'd it")
    assert "You approved Change order CO-17" in reply
    shown = await show(sms_stack, created["id"])
    assert shown["approvers"][0]["status"] == "approved"
    assert [r.outcome for r in await recorded(sms_stack)] == ["wrong"] * 4 + ["accepted"]

    # A right code does not reset the count: one more wrong one locks the number.
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {wrong_codes({code}, 5)[4]}")
    assert LOCKED_REPLY in reply


async def test_the_lock_lifts_by_itself_after_the_hour(sms_stack):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    for guess in wrong_codes({code}, 5):
        await post_sms(sms_stack, PHONE_1, f"YES {guess}")

    move_clock(sms_stack, timedelta(minutes=59))
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert LOCKED_REPLY in reply
    await still_open(sms_stack, created["id"])

    move_clock(sms_stack, timedelta(minutes=61))
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert "You approved Change order CO-17" in reply
    assert (await show(sms_stack, created["id"]))["approvers"][0]["decided_via"] == "sms"
    assert [r.outcome for r in await recorded(sms_stack)] == ["wrong"] * 5 + [
        "locked",
        "accepted",
    ]


async def test_concurrent_replies_cannot_slip_past_the_limit(sms_stack):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    guesses = wrong_codes({code}, 12)
    results = await asyncio.gather(*(post_sms(sms_stack, PHONE_1, f"YES {g}") for g in guesses))
    assert all(status == 200 for status, _ in results)
    outcomes = Counter(r.outcome for r in await recorded(sms_stack))
    assert outcomes == {"wrong": 5, "locked": 7}
    assert sum(LOCKED_REPLY in reply for _, reply in results) == 8  # 7 locked + the 5th wrong

    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert LOCKED_REPLY in reply
    await still_open(sms_stack, created["id"])


async def test_stop_help_and_start_keep_working_while_locked(sms_stack):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    for guess in wrong_codes({code}, 5):
        await post_sms(sms_stack, PHONE_1, f"YES {guess}")

    _, reply = await post_sms(sms_stack, PHONE_1, "STOP")
    assert "unsubscribed" in reply
    async with sms_stack.sessions() as session:
        row = await session.scalar(select(SmsOptOut).where(SmsOptOut.phone == PHONE_1))
    assert row is not None and row.opted_out
    _, reply = await post_sms(sms_stack, PHONE_1, "HELP")
    assert "YES <code>" in reply and "link" in reply
    _, reply = await post_sms(sms_stack, PHONE_1, "START")
    assert "resubscribed" in reply
    async with sms_stack.sessions() as session:
        row = await session.scalar(select(SmsOptOut).where(SmsOptOut.phone == PHONE_1))
    assert row is not None and not row.opted_out
    _, reply = await post_sms(sms_stack, PHONE_1, f"YES {code}")
    assert LOCKED_REPLY in reply  # still locked for codes
    await still_open(sms_stack, created["id"])


async def test_attempts_are_recorded_without_the_code(sms_stack, caplog: pytest.LogCaptureFixture):
    created = await sms_request(sms_stack, n=1)
    code = (await codes(sms_stack, created["id"]))[0]
    wrong = wrong_codes({code}, 1)[0]
    caplog.set_level(logging.INFO, logger="bots")
    before = datetime.now(UTC)
    await post_sms(sms_stack, PHONE_1, f"YES {wrong}", sid="SM" + "a" * 32)
    await post_sms(sms_stack, f"whatsapp:{PHONE_1}", f"YES {wrong}")
    await post_sms(sms_stack, PHONE_1, f"NO {code} price too high")

    first, second, third = await recorded(sms_stack)
    assert [r.outcome for r in (first, second, third)] == ["wrong", "wrong", "accepted"]
    assert first.message_sid == "SM" + "a" * 32
    assert all(r.phone == PHONE_1 for r in (first, second, third))  # the bare number
    assert before <= first.created_at <= third.created_at <= datetime.now(UTC)
    # Keyed by the secret: not the code, nor a plain hash anyone can reverse by trying all.
    secret = sms_stack.settings.secret_key
    assert first.code_digest == second.code_digest == attempts.code_digest(secret, PHONE_1, wrong)
    assert third.code_digest == attempts.code_digest(secret, PHONE_1, code)
    assert third.code_digest != attempts.code_digest("another-secret", PHONE_1, code)
    assert code != third.code_digest and len(third.code_digest) == 32

    logged = [r.getMessage() for r in caplog.records if r.name.startswith("bots")]
    assert f"SMS reply code from {PHONE_1}: wrong" in logged
    assert f"SMS reply code from {PHONE_1}: accepted" in logged
    without_phone = [m.replace(PHONE_1, "") for m in logged]
    assert not [m for m in without_phone if code in m or wrong in m]
