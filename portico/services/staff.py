"""Staff members of the console and their sign-in: single-use links and server-side sessions.

Every secret (link token, session id) is random and stored only as its SHA-256. Sessions live
in SQL, so every web replica sees a sign-out or a removed member at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import tokens
from portico.errors import Conflict, NotFound
from portico.models import StaffMember, StaffSession, StaffSignInLink, utcnow
from portico.portal_schemas import EMAIL_PATTERN
from portico.schemas import Strict
from portico.services import magic_links

LINK_TTL = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
ROLES = ("admin", "staff")
Role = Literal["admin", "staff"]


def normalize_email(email: str) -> str:
    return email.strip().lower()


class StaffMemberIn(Strict):
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    role: Role = "staff"

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return normalize_email(value)


@dataclass(frozen=True)
class StaffIdentity:
    """Who a valid console cookie belongs to."""

    session_hash: str
    staff_id: int
    email: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit trail names this person's actions (CONTRACT section 9)."""
        return f"staff:{self.email}"


@dataclass(frozen=True)
class IssuedLink:
    member: StaffMember
    token: str
    expires_at: datetime


class StaffAuth:
    """The members table and console sign-in; `clock` is injected by tests."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.clock = clock

    # --- members ----------------------------------------------------------------------------

    async def add(self, data: StaffMemberIn) -> StaffMember:
        """Add a member, or bring a removed one back (with the given name and role)."""
        async with self.sessions() as session, session.begin():
            member = await self._by_email(session, data.email)
            if member is not None and member.active:
                raise Conflict(f"{data.email} is already a staff member.", code="staff_exists")
            if member is None:
                member = StaffMember(email=data.email, created_at=self.clock())
                session.add(member)
            member.name, member.role, member.active = data.name, data.role, True
        return member

    async def members(self) -> list[StaffMember]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(StaffMember)
                    .where(StaffMember.active.is_(True))
                    .order_by(StaffMember.email)
                )
            )

    async def remove(self, email: str) -> StaffMember:
        """Deactivate a member and end their sessions (their name stays in audit trails)."""
        async with self.sessions() as session, session.begin():
            member = await self._by_email(session, email)
            if member is None or not member.active:
                raise NotFound(f"{normalize_email(email)} is not a staff member.")
            member.active = False
            await session.execute(
                update(StaffSession)
                .where(StaffSession.staff_id == member.id, StaffSession.ended_at.is_(None))
                .values(ended_at=self.clock())
            )
        return member

    @staticmethod
    async def _by_email(session: AsyncSession, email: str) -> StaffMember | None:
        return await session.scalar(
            select(StaffMember).where(StaffMember.email == normalize_email(email))
        )

    # --- sign-in links ----------------------------------------------------------------------

    async def issue_link(self, email: str) -> IssuedLink | None:
        """A fresh single-use link for an active member; None for anyone else."""
        async with self.sessions() as session, session.begin():
            member = await self._by_email(session, email)
            if member is None or not member.active:
                return None
            token = tokens.new_token()
            at = self.clock()
            session.add(
                StaffSignInLink(
                    staff_id=member.id,
                    token_hash=tokens.hash_token(token),
                    created_at=at,
                    expires_at=at + LINK_TTL,
                )
            )
        return IssuedLink(member, token, at + LINK_TTL)

    async def peek(self, token: str) -> StaffSignInLink | None:
        """The link if it can still be used; reading it never uses it up."""
        return await magic_links.peek(self.sessions, StaffSignInLink, token, self.clock())

    async def consume(self, token: str, ip: str | None, user_agent: str | None) -> str | None:
        """Use the link up (once, atomically) and open a session; returns the session id."""
        at = self.clock()
        async with self.sessions() as session, session.begin():
            if not await magic_links.use_up(session, StaffSignInLink, token, at):
                return None
            member = await session.scalar(
                select(StaffMember)
                .join(StaffSignInLink, StaffSignInLink.staff_id == StaffMember.id)
                .where(StaffSignInLink.token_hash == tokens.hash_token(token))
            )
            if member is None or not member.active:
                return None
            session_id, row = magic_links.open_session(
                StaffSession, at, ABSOLUTE_TIMEOUT, ip, user_agent, staff_id=member.id
            )
            session.add(row)
        return session_id

    # --- sessions ---------------------------------------------------------------------------

    async def identify(self, session_id: str | None) -> StaffIdentity | None:
        """The signed-in member, or None when the session is unknown, ended, idle for 12 h,
        too old, or its member was removed."""
        if not magic_links.plausible(session_id):
            return None
        assert session_id is not None
        at = self.clock()
        session_hash = tokens.hash_token(session_id)
        async with self.sessions() as session:
            found = (
                await session.execute(
                    select(StaffSession, StaffMember)
                    .join(StaffMember, StaffMember.id == StaffSession.staff_id)
                    .where(StaffSession.session_hash == session_hash)
                )
            ).first()
            if found is None:
                return None
            row, member = found
            if not magic_links.alive(row, at, IDLE_TIMEOUT) or not member.active:
                return None
            await magic_links.touch(session, StaffSession, row, at)
        return StaffIdentity(session_hash, member.id, member.email, member.name, member.role)

    async def end(self, session_id: str | None) -> None:
        await magic_links.end(self.sessions, StaffSession, session_id, self.clock())
