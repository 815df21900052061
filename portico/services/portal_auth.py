"""Client portal sign-in: single-use magic links, database-backed rate limits, and sessions.

Every secret (link token, session id) is random and stored only as its SHA-256. Rate limits and
sessions live in SQL so any number of web replicas share them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import i18n, tokens
from portico.clock import utcnow
from portico.errors import Conflict, NotFound, PorticoError
from portico.models import Client, MagicLink, PortalSession, PortalSignInRequest
from portico.services import magic_links, outbox
from portico.services.portal import load_portal_settings
from portico.services.staff import LINK_TTL as STAFF_LINK_TTL
from portico.settings import Settings
from workflows.types import EmailMessage

SIGN_IN_TTL = timedelta(minutes=15)
INVITE_TTL = timedelta(days=7)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
RATE_WINDOW = timedelta(minutes=15)
EMAIL_LIMIT = 5  # sign-in requests per address per window
IP_LIMIT = 20  # sign-in requests per client IP per window
MAX_CLIENTS_PER_EMAIL = 5


class RateLimited(PorticoError):
    status, code = 429, "rate_limited"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_hash(email: str) -> str:
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


@dataclass(frozen=True)
class PortalIdentity:
    """Who a valid portal cookie belongs to."""

    session_hash: str
    client_id: int
    expires_at: datetime
    # The client's language and time zone (CONTRACT section 10); None: the defaults.
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class IssuedLink:
    client: Client
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Invitation:
    client: Client
    expires_at: datetime  # about: the link's validity starts when it is mailed


class PortalAuth:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: outbox.Outbox,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox

    async def enabled(self) -> bool:
        async with self.sessions() as session:
            return (await load_portal_settings(session)).enabled

    # --- magic links ------------------------------------------------------------------------

    async def request_sign_in(self, email: str, ip: str) -> None:
        """Count this request and record the sign-in email to send, in one transaction;
        RateLimited when the address or the IP asked too often (the request still counts).

        Every address is recorded alike: the worker looks up the clients and mints their
        links (none for an unknown address), so neither this answer nor its timing tells
        whether the address is known."""
        async with self.outbox.transaction() as session:
            limited = await self._count_request(session, email, ip)
            if not limited:
                minutes = int(SIGN_IN_TTL.total_seconds() // 60)
                outbox.add(
                    session,
                    self._link_email(
                        f"magic-link:{uuid.uuid4().hex}",
                        email,
                        f"in {minutes} minutes",
                        expires={"expires_minutes": minutes},
                        locale=i18n.current(),
                    ),
                    outbox.PortalLink(outbox.SIGN_IN, int(SIGN_IN_TTL.total_seconds()), ip=ip[:64]),
                )
        if limited:
            raise RateLimited("Too many sign-in requests. Please wait a few minutes and try again.")

    async def request_staff_sign_in(self, email: str, ip: str, company_name: str) -> None:
        """The staff console's sign-in request: counted in the same limits as the portal's and
        recorded alike for every address (the worker mints a link only for an active staff
        member), so the answer and its timing tell nothing."""
        async with self.outbox.transaction() as session:
            limited = await self._count_request(session, email, ip)
            if not limited:
                minutes = int(STAFF_LINK_TTL.total_seconds() // 60)
                outbox.add(
                    session,
                    EmailMessage(
                        dedupe_key=f"staff-link:{uuid.uuid4().hex}",
                        to=email,
                        template="staff_sign_in",
                        context={
                            "company_name": company_name,
                            "expires_in": f"in {minutes} minutes",
                        },
                    ),
                    outbox.PortalLink(outbox.STAFF_SIGN_IN, int(STAFF_LINK_TTL.total_seconds())),
                )
        if limited:
            raise RateLimited("Too many sign-in requests. Please wait a few minutes and try again.")

    async def _count_request(self, session: AsyncSession, email: str, ip: str) -> bool:
        """Count this sign-in request; True when the address or the IP asked too often."""
        at = utcnow()
        key = email_hash(email)
        session.add(PortalSignInRequest(email_hash=key, ip=ip[:64], created_at=at))
        await session.flush()
        since = at - RATE_WINDOW
        by_email = await session.scalar(
            select(func.count())
            .select_from(PortalSignInRequest)
            .where(PortalSignInRequest.email_hash == key, PortalSignInRequest.created_at > since)
        )
        by_ip = await session.scalar(
            select(func.count())
            .select_from(PortalSignInRequest)
            .where(PortalSignInRequest.ip == ip[:64], PortalSignInRequest.created_at > since)
        )
        await session.execute(
            delete(PortalSignInRequest).where(
                PortalSignInRequest.created_at < at - timedelta(days=1)
            )
        )
        return (by_email or 0) > EMAIL_LIMIT or (by_ip or 0) > IP_LIMIT

    async def invite(self, client_id: int, ttl: timedelta = INVITE_TTL) -> Invitation:
        """Record the client's invitation email; its link is minted when it is delivered."""
        async with self.outbox.transaction() as session:
            client = await self._invitee(session, client_id)
            days = round(ttl.total_seconds() / 86400)
            outbox.add(
                session,
                self._link_email(
                    f"portal-invite:{uuid.uuid4().hex}",
                    client.email,
                    f"in {days} day{'s' if days != 1 else ''}",
                    invite=True,
                    expires={"expires_days": days},
                ),
                outbox.PortalLink(outbox.INVITE, int(ttl.total_seconds()), client_id=client.id),
            )
        return Invitation(client, utcnow() + ttl)

    def _link_email(
        self,
        key: str,
        to: str,
        expires_in: str,
        invite: bool = False,
        expires: dict[str, int] | None = None,
        locale: str | None = None,
    ) -> EmailMessage:
        """The `portal_sign_in` email without its link (`link_url`, `client_name` are added
        per client when it is delivered: see `issue_sign_in_links`, `issue_invite`). It is
        written in the client's language, else `locale` (the page it was asked from).
        `expires_in` is the English wording older templates read."""
        return EmailMessage(
            dedupe_key=key,
            to=to,
            template="portal_sign_in",
            context={
                "company_name": self.settings.company_name,
                "expires_in": expires_in,
                "invite": invite,
                **(expires or {}),
            },
            locale=locale,
        )

    async def issue_sign_in_links(self, email: str, ip: str | None) -> list[IssuedLink]:
        """A fresh link for each client with this address (none for an unknown one)."""
        address = normalize_email(email)
        async with self.sessions() as session, session.begin():
            if not (await load_portal_settings(session)).enabled:
                return []
            clients = list(
                await session.scalars(
                    select(Client)
                    .where(func.lower(Client.email) == address)
                    .order_by(Client.id)
                    .limit(MAX_CLIENTS_PER_EMAIL)
                )
            )
            return [await self._mint(session, c, "sign_in", SIGN_IN_TTL, ip) for c in clients]

    async def issue_invite(self, client_id: int, ttl: timedelta = INVITE_TTL) -> IssuedLink:
        async with self.sessions() as session, session.begin():
            client = await self._invitee(session, client_id)
            return await self._mint(session, client, "invite", ttl, None)

    @staticmethod
    async def _invitee(session: AsyncSession, client_id: int) -> Client:
        if not (await load_portal_settings(session)).enabled:
            raise Conflict("The client portal is turned off.", code="portal_disabled")
        client = await session.get(Client, client_id)
        if client is None:
            raise NotFound(f"Client {client_id} does not exist.")
        return client

    async def _mint(
        self, session: AsyncSession, client: Client, purpose: str, ttl: timedelta, ip: str | None
    ) -> IssuedLink:
        token = tokens.new_token()
        expires = utcnow() + ttl
        session.add(
            MagicLink(
                client_id=client.id,
                token_hash=tokens.hash_token(token),
                purpose=purpose,
                expires_at=expires,
                requested_ip=(ip or "")[:64] or None,
            )
        )
        await session.flush()
        return IssuedLink(client, token, expires)

    async def peek(self, token: str) -> MagicLink | None:
        """The link if it can still be used; reading it never uses it up."""
        return await magic_links.peek(self.sessions, MagicLink, token, utcnow())

    async def consume(self, token: str, ip: str | None, user_agent: str | None) -> str | None:
        """Use the link up (once, atomically) and open a session; returns the session id."""
        at = utcnow()
        async with self.sessions() as session, session.begin():
            if not await magic_links.use_up(session, MagicLink, token, at):
                return None
            client_id = await session.scalar(
                select(MagicLink.client_id).where(MagicLink.token_hash == tokens.hash_token(token))
            )
            if not (await load_portal_settings(session)).enabled:
                raise Conflict("The client portal is turned off.", code="portal_disabled")
            assert client_id is not None
            session_id, row = magic_links.open_session(
                PortalSession, at, ABSOLUTE_TIMEOUT, ip, user_agent, client_id=client_id
            )
            session.add(row)
        return session_id

    # --- sessions ---------------------------------------------------------------------------

    async def identify(self, session_id: str | None) -> PortalIdentity | None:
        """The signed-in client, or None when the session is unknown, ended or timed out."""
        if not magic_links.plausible(session_id):
            return None
        assert session_id is not None
        at = utcnow()
        session_hash = tokens.hash_token(session_id)
        async with self.sessions() as session:
            row = await session.scalar(
                select(PortalSession).where(PortalSession.session_hash == session_hash)
            )
            if row is None or not magic_links.alive(row, at, IDLE_TIMEOUT):
                return None
            if not (await load_portal_settings(session)).enabled:
                return None
            await magic_links.touch(session, PortalSession, row, at)
            language = (
                await session.execute(
                    select(Client.locale, Client.timezone).where(Client.id == row.client_id)
                )
            ).first()
        locale, zone = language if language is not None else (None, None)
        return PortalIdentity(session_hash, row.client_id, row.expires_at, locale, zone)

    async def end(self, session_id: str | None) -> None:
        await magic_links.end(self.sessions, PortalSession, session_id, utcnow())
