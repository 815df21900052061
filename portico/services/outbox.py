"""The transactional outbox: a message a request promises (a magic link, an invitation, a staff
notice) is recorded as an `outbox_messages` row in that request's own transaction, and delivered
by a workflow (`message-{id}`, workflows/outbox.py) that retries for days. A 2xx therefore means
the message goes out exactly once even if web dies the moment after, or the relay is down
(CONTRACT section 8).

- `add(session, message)` records a message inside any caller's transaction; the worker's sweep
  hands it to Temporal a few seconds after it commits.
- `Outbox.transaction()` (and `Outbox.send`) also hand the transaction's messages to Temporal
  right after the commit, so they leave at once; a hand-off that fails is left to the sweep.

Starting a row's workflow twice is harmless (reject-duplicate id, use-existing on conflict), so
web replicas and sweeping workers never need to agree on who starts what.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.clock import utcnow
from portico.models import OutboxMessage
from portico.services import handoff
from portico.services.gateway import TemporalGateway
from portico.services.handoff import DELIVERED as DELIVERED  # the states, used as outbox.X
from portico.services.handoff import FAILED as FAILED
from portico.services.handoff import PENDING as PENDING
from portico.settings import Settings
from workflows.types import (
    OUTBOX_WORKFLOW,
    EmailMessage,
    OutboxDelivery,
    SmsMessage,
    outbox_workflow_id,
)

log = logging.getLogger(__name__)

SIGN_IN, INVITE, STAFF_SIGN_IN = "sign_in", "invite", "staff_sign_in"
ADDED = "portico.services.outbox.added"  # session.info key: rows added in the current transaction
SWEEP_BATCH = handoff.SWEEP_BATCH

Message = EmailMessage | SmsMessage


@dataclass(frozen=True)
class PortalLink:
    """A portal magic link the delivery mints, so no raw token is ever stored or put in a
    workflow's history. `sign_in`: a link for each client with the message's address (none for
    an unknown address); `invite`: a link for `client_id`; `staff_sign_in`: a staff console link
    for the active staff member with the message's address (none for anyone else)."""

    purpose: str  # sign_in | invite | staff_sign_in
    ttl_seconds: int
    client_id: int | None = None
    ip: str | None = None


def add(session: AsyncSession, message: Message, link: PortalLink | None = None) -> OutboxMessage:
    """Record `message` in the session's transaction (delivered once that commits)."""
    row = OutboxMessage(
        channel="sms" if isinstance(message, SmsMessage) else "email",
        dedupe_key=message.dedupe_key,
        message=asdict(message),
        link=asdict(link) if link is not None else None,
        status=PENDING,
        created_at=utcnow(),
    )
    session.add(row)
    session.info.setdefault(ADDED, []).append(row)
    return row


def message_of(row: OutboxMessage) -> Message:
    if row.channel == "sms":
        return SmsMessage(**row.message)
    return EmailMessage(**row.message)


def link_of(row: OutboxMessage) -> PortalLink | None:
    return PortalLink(**row.link) if row.link else None


def staff_emails(
    settings: Settings, key: str, template: str, context: dict[str, Any]
) -> list[EmailMessage]:
    """One email per PORTICO_STAFF_EMAILS address (each its own row: one bad address does not
    hold back the others)."""
    return [
        EmailMessage(dedupe_key=f"{key}:staff:{n}", to=address, template=template, context=context)
        for n, address in enumerate(settings.staff_emails)
    ]


def add_staff_emails(
    session: AsyncSession, settings: Settings, key: str, template: str, context: dict[str, Any]
) -> list[OutboxMessage]:
    """Record a staff notice (`staff_emails`) in the session's transaction."""
    return [add(session, m) for m in staff_emails(settings, key, template, context)]


def staff_texts(settings: Settings, key: str, body: str) -> list[SmsMessage]:
    """One SMS per PORTICO_STAFF_PHONES number (sent at once: staff asked for these)."""
    return [
        SmsMessage(dedupe_key=f"{key}:staff-sms:{n}", to=phone, body=body)
        for n, phone in enumerate(settings.staff_phones)
    ]


def add_staff_texts(
    session: AsyncSession, settings: Settings, key: str, body: str
) -> list[OutboxMessage]:
    """Record a staff notice by SMS (`staff_texts`) in the session's transaction."""
    return [add(session, m) for m in staff_texts(settings, key, body)]


def delivery(settings: Settings, row: OutboxMessage) -> OutboxDelivery:
    return OutboxDelivery(
        outbox_id=row.id,
        channel=row.channel,
        sms_task_queue=settings.sms_task_queue,
        retry_initial=timedelta(seconds=settings.outbox_retry_seconds),
        retry_maximum=timedelta(seconds=settings.outbox_retry_max_seconds),
        give_up_after=timedelta(hours=settings.outbox_give_up_hours),
    )


class Outbox:
    """Hands recorded messages to Temporal: after a commit (web) and by sweeping (worker)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction whose `add`ed messages are handed to Temporal once it has committed."""
        async with self.sessions() as session:
            async with session.begin():
                yield session
            rows: list[OutboxMessage] = session.info.pop(ADDED, [])
        await self.hand_off(rows)

    async def send(self, message: Message, link: PortalLink | None = None) -> OutboxMessage:
        async with self.transaction() as session:
            return add(session, message, link)

    async def hand_off(self, rows: Sequence[OutboxMessage]) -> int:
        """Start each row's workflow and note it; returns how many were handed off. When
        Temporal does not answer, the rest are left for the sweep."""
        return await handoff.start_rows(self.sessions, OutboxMessage, rows, self._start)

    async def _start(self, row: OutboxMessage) -> bool:
        return await handoff.start_once(
            self.temporal,
            OUTBOX_WORKFLOW,
            delivery(self.settings, row),
            workflow_id=outbox_workflow_id(row.id),
            task_queue=self.settings.task_queue,
        )

    async def sweep(self, older_than: timedelta) -> int:
        """Hand off rows committed at least `older_than` ago and not handed off (their web
        process died, or Temporal was down, between the commit and the start)."""
        return await self.hand_off(await handoff.due_rows(self.sessions, OutboxMessage, older_than))

    async def sweep_forever(self) -> None:
        """The worker's sweep, every PORTICO_OUTBOX_SWEEP_SECONDS until cancelled."""
        every = timedelta(seconds=self.settings.outbox_sweep_seconds)
        await handoff.sweep_forever(lambda: self.sweep(every), every, SWEEP_BATCH)
