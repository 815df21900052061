"""The lockout that makes guessing SMS reply codes useless.

Reply codes stay 4 digits (CONTRACT section 5 shows their shape and outside checkers rely on
it), so what protects them is a limit per sending number: once `MAX_WRONG` wrong codes came
from a number within `WINDOW`, codes from it are not checked at all (a right one is refused
too, so the lock is no oracle) until those wrong ones are older than `WINDOW`. The number is
the bare one, so SMS and WhatsApp share the limit; a right code never resets it (a holder of one
code could otherwise keep guessing the others).

Every check is one row in `sms_code_attempts`, written in the same transaction that counts the
number's recent wrong codes, after waiting for any other check of that number to commit:
on PostgreSQL a transaction-scoped advisory lock, on SQLite the database write lock the
attempt's INSERT takes before the count. Two replies delivered at the same moment therefore
never both slip under the limit.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portico.models import SmsCodeAttempt

MAX_WRONG: Final = 5
WINDOW: Final = timedelta(hours=1)

CHECKING: Final = "checking"  # only inside the transaction that checks it
ACCEPTED: Final = "accepted"  # the code is one of this number's
WRONG: Final = "wrong"
LOCKED: Final = "locked"  # not checked: the number was locked


def code_digest(secret_key: str, phone: str, code: str) -> str:
    """What is stored of a tried code: keyed, because 4 digits hashed plainly are reversed by
    hashing all 10 000 of them. Equal guesses from one number give equal digests."""
    message = f"sms-code-attempt:{phone}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def _lock_key(phone: str) -> int:
    """A signed 64-bit advisory-lock key for one number."""
    digest = hashlib.sha256(f"portico-sms-code:{phone}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(slots=True)
class CodeCheck:
    """One code being checked from one number, within the transaction that records it."""

    attempt: SmsCodeAttempt
    wrong_before: int

    @property
    def locked(self) -> bool:
        """The number was already locked: the code must not be checked."""
        return self.attempt.outcome == LOCKED

    def finish(self, matched: bool) -> None:
        """Record what checking the code found (nothing to do when the number was locked)."""
        if not self.locked:
            self.attempt.outcome = ACCEPTED if matched else WRONG

    @property
    def number_locked(self) -> bool:
        """The number is locked after this attempt (it was, or this was the last wrong code)."""
        return self.locked or (self.attempt.outcome == WRONG and self.wrong_before + 1 >= MAX_WRONG)


async def wrong_since(session: AsyncSession, phone: str, since: datetime) -> int:
    """How many wrong codes `phone` sent after `since`."""
    count = await session.scalar(
        select(func.count())
        .select_from(SmsCodeAttempt)
        .where(
            SmsCodeAttempt.phone == phone,
            SmsCodeAttempt.outcome == WRONG,
            SmsCodeAttempt.created_at > since,
        )
    )
    return int(count or 0)


async def start(
    session: AsyncSession,
    *,
    secret_key: str,
    phone: str,
    code: str,
    message_sid: str | None,
    now: datetime,
) -> CodeCheck:
    """Record a code checked from `phone` in the caller's transaction, once no other check of
    that number is in flight; it comes back `locked` when the code must not be checked. The
    caller looks the code up, calls `finish`, and commits."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        key = bindparam("key", _lock_key(phone), type_=BigInteger)
        await session.execute(select(func.pg_advisory_xact_lock(key)))
    attempt = SmsCodeAttempt(
        phone=phone,
        code_digest=code_digest(secret_key, phone, code),
        outcome=CHECKING,
        message_sid=message_sid,
        created_at=now,
    )
    session.add(attempt)
    await session.flush()  # SQLite: this INSERT waits for, then holds, the write lock
    wrong = await wrong_since(session, phone, now - WINDOW)
    if wrong >= MAX_WRONG:
        attempt.outcome = LOCKED
    return CodeCheck(attempt, wrong)
