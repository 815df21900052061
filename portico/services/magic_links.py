"""The mechanics the portal's magic links and the console's sign-in links share: single-use
links, and the server-side sessions they open.

Every secret (link token, session id) is random and stored only as its SHA-256. A link is
used up by one atomic UPDATE, so two clicks open one session; a session ends when it is
ended, too old or idle, and its `last_seen_at` is rewritten at most every TOUCH_EVERY.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import tokens
from portico.models import MagicLink, PortalSession, StaffSession, StaffSignInLink

TOUCH_EVERY = timedelta(seconds=60)  # how stale last_seen_at may get before it is rewritten

Link = TypeVar("Link", MagicLink, StaffSignInLink)
Session = TypeVar("Session", PortalSession, StaffSession)


def plausible(secret: str | None) -> bool:
    """Whether a token or session id from outside could be one of ours (else no query)."""
    return bool(secret) and 16 <= len(secret or "") <= 64


async def peek(
    sessions: async_sessionmaker[AsyncSession], model: type[Link], token: str, now: datetime
) -> Link | None:
    """The link if it can still be used; reading it never uses it up."""
    if not plausible(token):
        return None
    async with sessions() as session:
        link = await session.scalar(
            select(model).where(model.token_hash == tokens.hash_token(token))
        )
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    return link


async def use_up(session: AsyncSession, model: type[Link], token: str, at: datetime) -> bool:
    """Mark the link used, once and atomically; False if it was used, expired or unknown."""
    if not plausible(token):
        return False
    used = await session.execute(
        update(model)
        .where(
            model.token_hash == tokens.hash_token(token),
            model.used_at.is_(None),
            model.expires_at > at,
        )
        .values(used_at=at)
    )
    return used.rowcount == 1  # type: ignore[attr-defined]


def open_session(
    model: type[Session],
    at: datetime,
    lifetime: timedelta,
    ip: str | None,
    user_agent: str | None,
    **owner: int,
) -> tuple[str, Session]:
    """A new session row for `owner` (client_id=… or staff_id=…) and its id, the cookie's
    value (only its hash is stored)."""
    session_id = tokens.new_token()
    row = model(
        session_hash=tokens.hash_token(session_id),
        created_at=at,
        last_seen_at=at,
        expires_at=at + lifetime,
        ip=(ip or "")[:64] or None,
        user_agent=(user_agent or "")[:500] or None,
        **owner,
    )
    return session_id, row


def alive(row: PortalSession | StaffSession, at: datetime, idle: timedelta) -> bool:
    """Not ended, not past its lifetime, not idle for `idle`."""
    return row.ended_at is None and row.expires_at > at and row.last_seen_at + idle > at


async def touch(
    session: AsyncSession, model: type[Session], row: PortalSession | StaffSession, at: datetime
) -> None:
    """Record activity (for the idle timeout), at most every TOUCH_EVERY; commits."""
    if at - row.last_seen_at >= TOUCH_EVERY:
        await session.execute(update(model).where(model.id == row.id).values(last_seen_at=at))
        await session.commit()


async def end(
    sessions: async_sessionmaker[AsyncSession],
    model: type[Session],
    session_id: str | None,
    at: datetime,
) -> None:
    """End the session with this id (sign-out); nothing if there is none."""
    if not session_id:
        return
    async with sessions() as session, session.begin():
        await session.execute(
            update(model)
            .where(model.session_hash == tokens.hash_token(session_id), model.ended_at.is_(None))
            .values(ended_at=at)
        )
