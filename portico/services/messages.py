"""Each client's message thread with the business (CONTRACT section 14).

A message is recorded together with what it promises, in one transaction (the outbox): a
client's message (portal, SMS) tells staff by email (PORTICO_STAFF_EMAILS) and SMS
(PORTICO_STAFF_PHONES); a staff reply (API, console) is emailed to the client and, when they
have a phone that did not reply STOP, texted (waiting out the client's quiet hours). Every
message sent has a dedupe key derived from the thread message's id, so it leaves exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import i18n
from portico.clock import utcnow
from portico.errors import NotFound
from portico.i18n import gettext as _
from portico.message_schemas import Channel, MessageOut
from portico.models import Client, ClientMessage, SmsOptOut
from portico.phones import bare_phone
from portico.services import outbox
from portico.settings import Settings
from workflows.types import EmailMessage, SmsMessage

IN, OUT = "in", "out"
THREAD_LIMIT = 500  # the most recent messages a page or the API shows
SMS_EXCERPT = 480  # characters of a message a text carries (the rest is in the portal)
STAFF_EXCERPT = 300


@dataclass(frozen=True)
class Thread:
    client: Client
    messages: list[ClientMessage]  # oldest first
    earlier: bool  # older messages exist beyond THREAD_LIMIT


def message_out(message: ClientMessage) -> MessageOut:
    return MessageOut.model_validate(message)


def excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class ClientMessages:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: outbox.Outbox,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox

    async def thread(self, client_id: int, limit: int = THREAD_LIMIT) -> Thread:
        """The client's thread, the latest `limit` messages, oldest first; NotFound for an
        unknown client."""
        async with self.sessions() as session:
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound(f"Client {client_id} does not exist.")
            newest = list(
                await session.scalars(
                    select(ClientMessage)
                    .where(ClientMessage.client_id == client_id)
                    .order_by(ClientMessage.id.desc())
                    .limit(limit + 1)
                )
            )
        return Thread(client, list(reversed(newest[:limit])), len(newest) > limit)

    async def client_with_phone(self, phone: str) -> Client | None:
        """The client whose phone is this number (SMS or WhatsApp alike); of several sharing
        it, the newest."""
        bare = bare_phone(phone)
        if not bare:
            return None
        async with self.sessions() as session:
            return await session.scalar(
                select(Client)
                .where(or_(Client.phone == bare, Client.phone == f"whatsapp:{bare}"))
                .order_by(Client.id.desc())
                .limit(1)
            )

    async def opted_out(self, phone: str) -> bool:
        async with self.sessions() as session:
            return await _opted_out(session, phone)

    async def from_client(
        self,
        client_id: int,
        body: str,
        *,
        channel: Channel,
        author: str,
        dedupe_key: str | None = None,
    ) -> ClientMessage:
        """Record the client's message and, with it, the staff notices."""
        return await self._record(client_id, IN, body, channel, author, dedupe_key)

    async def reply(
        self,
        client_id: int,
        body: str,
        *,
        channel: Channel,
        author: str,
        dedupe_key: str | None = None,
    ) -> ClientMessage:
        """Record a staff reply and, with it, the email (and SMS) to the client."""
        return await self._record(client_id, OUT, body, channel, author, dedupe_key)

    async def _record(
        self,
        client_id: int,
        direction: str,
        body: str,
        channel: Channel,
        author: str,
        dedupe_key: str | None,
    ) -> ClientMessage:
        try:
            async with self.outbox.transaction() as session:
                client = await session.get(Client, client_id)
                if client is None:
                    raise NotFound(f"Client {client_id} does not exist.")
                if dedupe_key is not None:
                    found = await self._by_key(session, dedupe_key)
                    if found is not None:  # sent before (a double click, a redelivered SMS)
                        return found
                message = ClientMessage(
                    client_id=client_id,
                    direction=direction,
                    author=author[:400],
                    body=body.replace("\r\n", "\n").strip(),
                    channel=channel,
                    dedupe_key=dedupe_key,
                    created_at=utcnow(),
                )
                session.add(message)
                await session.flush()
                notices = (
                    self._staff_notices(client, message)
                    if direction == IN
                    else await self._client_notices(session, client, message)
                )
                for notice in notices:
                    outbox.add(session, notice)
        except IntegrityError:
            if dedupe_key is None:
                raise
            async with self.sessions() as session:  # a concurrent submission recorded it
                found = await self._by_key(session, dedupe_key)
            if found is None:
                raise
            return found
        return message

    @staticmethod
    async def _by_key(session: AsyncSession, dedupe_key: str) -> ClientMessage | None:
        return await session.scalar(
            select(ClientMessage).where(ClientMessage.dedupe_key == dedupe_key)
        )

    def _staff_notices(
        self, client: Client, message: ClientMessage
    ) -> Sequence[EmailMessage | SmsMessage]:
        key = f"client-message-{message.id}"
        name = f"{client.name} ({client.company})" if client.company else client.name
        url = self.settings.url(f"/staff/clients/{client.id}#messages")
        context = {
            "company_name": self.settings.company_name,
            "client_name": name,
            "client_id": client.id,
            "body": message.body,
            "channel": message.channel,
            "thread_url": url,
        }
        text = (
            f"{self.settings.company_name}: message from {name}: "
            f"{excerpt(message.body, STAFF_EXCERPT)} Reply at {url}"
        )
        return [
            *outbox.staff_emails(self.settings, key, "staff_client_message", context),
            *outbox.staff_texts(self.settings, key, text),
        ]

    async def _client_notices(
        self, session: AsyncSession, client: Client, message: ClientMessage
    ) -> list[EmailMessage | SmsMessage]:
        key = f"client-message-{message.id}"
        url = self.settings.url("/portal/messages")
        notices: list[EmailMessage | SmsMessage] = [
            EmailMessage(
                dedupe_key=f"{key}:email",
                to=client.email,
                template="client_message",
                context={
                    "company_name": self.settings.company_name,
                    "client_name": client.name,
                    "body": message.body,
                    "thread_url": url,
                },
                locale=client.locale,
                timezone=client.timezone,
            )
        ]
        if client.phone and not await _opted_out(session, client.phone):
            with i18n.use(client.locale or self.settings.default_locale):
                text = _(
                    "%(company)s: %(excerpt)s\nReply to this text or at %(url)s",
                    company=self.settings.company_name,
                    excerpt=excerpt(message.body, SMS_EXCERPT),
                    url=url,
                )
            # Not urgent: a reply written late waits out the client's night (quiet hours).
            notices.append(
                SmsMessage(dedupe_key=f"{key}:sms", to=client.phone, body=text, urgent=False)
            )
        return notices


async def _opted_out(session: AsyncSession, phone: str) -> bool:
    found = await session.scalar(
        select(SmsOptOut.opted_out).where(SmsOptOut.phone == bare_phone(phone))
    )
    return bool(found)
