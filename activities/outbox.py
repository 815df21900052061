"""Delivering outbox rows (portico/services/outbox.py) for OutboxMessageWorkflow: the message
is read from SQL and sent by the `send_email` / `send_sms` code, whose dedupe key makes a
repeated attempt harmless; portal links are minted here, at delivery, so their raw tokens
exist only in the email itself."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from portico.clock import utcnow
from portico.errors import PorticoError
from portico.models import OutboxMessage
from portico.services import outbox
from portico.services.portal_auth import IssuedLink, PortalAuth, email_hash
from portico.services.staff import StaffAuth
from portico.settings import Settings
from workflows.types import (
    DELIVER_OUTBOX,
    FINISH_OUTBOX,
    EmailMessage,
    OutboxOutcome,
    SmsMessage,
)


class OutboxActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        notify: NotifyActivities,
        auth: PortalAuth,
        staff: StaffAuth,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.notify = notify
        self.auth = auth
        self.staff = staff

    @activity.defn(name=DELIVER_OUTBOX)
    async def deliver(self, outbox_id: int) -> None:
        async with self.sessions() as session:
            row = await session.get(OutboxMessage, outbox_id)
        if row is None:
            raise ApplicationError(
                f"Outbox message {outbox_id} does not exist.",
                type="UnknownOutboxMessage",
                non_retryable=True,
            )
        if row.status != outbox.PENDING:
            return  # finished already
        message = outbox.message_of(row)
        if isinstance(message, SmsMessage):
            await self.notify.send_sms(message)
            return
        link = outbox.link_of(row)
        for each in [message] if link is None else await self._with_links(message, link):
            await self.notify.send_email(each)

    async def _with_links(
        self, message: EmailMessage, link: outbox.PortalLink
    ) -> list[EmailMessage]:
        """The email once per client the link is for, each with a freshly minted link (an
        attempt that failed before left only an unused link behind)."""
        if link.purpose == outbox.STAFF_SIGN_IN:
            return await self._with_staff_link(message)
        try:
            if link.purpose == outbox.SIGN_IN:
                issued = await self.auth.issue_sign_in_links(message.to, link.ip)
            else:
                assert link.client_id is not None
                ttl = timedelta(seconds=link.ttl_seconds)
                issued = [await self.auth.issue_invite(link.client_id, ttl)]
        except PorticoError as err:  # the portal was turned off, the client deleted
            raise ApplicationError(err.message, type="Undeliverable", non_retryable=True) from err
        return [self._linked(message, each) for each in issued]

    def _linked(self, message: EmailMessage, link: IssuedLink) -> EmailMessage:
        return dataclasses.replace(
            message,
            dedupe_key=f"{message.dedupe_key}:{link.client.id}",
            to=link.client.email,
            locale=link.client.locale or message.locale,
            timezone=link.client.timezone or message.timezone,
            context={
                **message.context,
                "client_name": link.client.name,
                "link_url": self.settings.url(f"/portal/link/{link.token}"),
            },
        )

    async def _with_staff_link(self, message: EmailMessage) -> list[EmailMessage]:
        """A staff console sign-in link for the active member with the address (else none)."""
        issued = await self.staff.issue_link(message.to)
        if issued is None:
            return []
        return [
            dataclasses.replace(
                message,
                dedupe_key=f"{message.dedupe_key}:{issued.member.id}",
                to=issued.member.email,
                context={
                    **message.context,
                    "name": issued.member.name,
                    "link_url": self.settings.url(f"/staff/link/{issued.token}"),
                },
            )
        ]

    @activity.defn(name=FINISH_OUTBOX)
    async def finish(self, outcome: OutboxOutcome) -> None:
        """Record how the delivery ended (once). A sign-in request's address is then kept only
        hashed, like the rate-limit counts: it may be no client's."""
        async with self.sessions() as session, session.begin():
            row = await session.get(OutboxMessage, outcome.outbox_id)
            if row is None or row.status != outbox.PENDING:
                return
            row.status = outcome.status
            row.error = outcome.error
            row.finished_at = utcnow()
            link = outbox.link_of(row)
            if link is not None and link.purpose in (outbox.SIGN_IN, outbox.STAFF_SIGN_IN):
                row.message = {**row.message, "to": email_hash(row.message["to"])}
