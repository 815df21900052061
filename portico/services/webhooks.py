"""Outbound webhooks (CONTRACT section 11; docs/integrations.md).

An event is recorded where it happens, in that transaction (`record`): a `webhook_events` row
and a `webhook_deliveries` row per endpoint that wants it: a transactional outbox. Each
delivery is then handed to Temporal (`WebhookDeliveryWorkflow`, `webhook-{id}`) right after the
commit, or by the worker's sweep if that process died first (portico/services/handoff.py).
The worker POSTs it per the Standard Webhooks specification, signed with the endpoint's secret.

Receivers are untrusted: only http(s); loopback, link-local, private and other non-global
addresses are refused (unless PORTICO_WEBHOOKS_ALLOW_PRIVATE) when the endpoint is added, and
again on every attempt, by the resolver the connection itself uses (so a name that re-resolves
to an inside address is refused too: DNS rebinding); redirects are not followed, and at most
1 KiB of an answer is kept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, selectinload
from standardwebhooks import Webhook
from yarl import URL

from portico.errors import Conflict, Invalid, NotFound
from portico.integration_schemas import (
    ALL_EVENTS,
    WebhookCreatedOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    WebhookIn,
    WebhookListOut,
    WebhookOut,
)
from portico.models import (
    Approval,
    AuditEvent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from portico.services import handoff
from portico.services.approval_records import EventHook
from portico.services.approvals import approval_out, iso
from portico.services.gateway import TemporalGateway
from portico.services.handoff import DELIVERED as DELIVERED  # the states, used as outbox.X
from portico.services.handoff import FAILED as FAILED
from portico.services.handoff import PENDING as PENDING
from portico.settings import Settings
from workflows.types import WEBHOOK_WORKFLOW, AuditEventInput, WebhookDeliveryInput
from workflows.types import webhook_workflow_id as workflow_id

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
MAX_RESPONSE_BYTES = 1024
SWEEP_BATCH = handoff.SWEEP_BATCH
ADDED = "portico.services.webhooks.added"  # session.info: delivery ids of the current transaction
HANDOFF = "portico.services.webhooks.handoff"  # session.info (from the sessionmaker): who hands off
LISTENING = "portico.services.webhooks.listening"
USER_AGENT = "Portico-Webhooks/1"


# --- the signing secret ---------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _sealing_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"portico-webhook-secret-v1", hashlib.sha256).digest()


def seal(secret_key: str, secret: str) -> str:
    """The endpoint secret encrypted (AES-GCM) with a key derived from PORTICO_SECRET_KEY."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(secret_key)).encrypt(nonce, secret.encode(), b"webhook")
    return base64.b64encode(nonce + sealed).decode()


def unseal(secret_key: str, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(_sealing_key(secret_key)).decrypt(raw[:12], raw[12:], b"webhook").decode()
    except InvalidTag as err:
        raise ValueError("the webhook secret was sealed with another PORTICO_SECRET_KEY") from err


# --- receivers ------------------------------------------------------------------------------


class ReceiverRefused(Exception):
    """The receiver's address is one Portico does not send to (server-side request forgery)."""


def refused_address(address: str) -> bool:
    """Anything but a public unicast address: loopback, private, link-local (cloud metadata),
    shared, reserved, unspecified, multicast; IPv4-mapped IPv6 is judged as its IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def parse_receiver(url: str) -> URL:
    """The URL of a receiver, or Invalid: absolute http(s), a host, no credentials."""
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError) as err:
        raise Invalid("url is not a valid URL.") from err
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid("url must be an absolute http:// or https:// URL.")
    if parsed.user or parsed.password:
        raise Invalid("url must not carry a user name or password.")
    try:
        parsed.port  # noqa: B018 (a port beyond 65535 raises)
    except ValueError as err:
        raise Invalid("url has an invalid port.") from err
    return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to an address Portico does not send to:
    the connection uses exactly the addresses checked here."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            for each in found:
                if refused_address(each["host"]):
                    raise ReceiverRefused(f"{host} resolves to a non-public address.")
        return found

    async def close(self) -> None:
        await self._inner.close()


async def check_receiver(url: str, allow_private: bool) -> str:
    """The receiver's URL if Portico may send to it (an unresolvable name is checked again at
    each delivery); Invalid otherwise."""
    parsed = parse_receiver(url)
    if allow_private:
        return str(parsed)
    host = parsed.host or ""
    literal = _literal_ip(host)
    if literal is not None:
        if refused_address(literal):
            raise Invalid("url must not point at a loopback, link-local or private address.")
        return str(parsed)
    try:
        found = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, parsed.port, type=socket.SOCK_STREAM),
            timeout=3,
        )
    except (OSError, TimeoutError, UnicodeError):
        return str(parsed)
    if any(refused_address(str(info[4][0])) for info in found):
        raise Invalid("url's host resolves to a loopback, link-local or private address.")
    return str(parsed)


@dataclass(frozen=True)
class Attempt:
    """How one POST went: the status code and up to 1 KiB of the answer, or why none came."""

    status_code: int | None
    response: str | None = None
    error: str | None = None
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def payload(event: WebhookEvent) -> str:
    """The body Standard Webhooks receivers get: `{type, timestamp, data}`."""
    body = {"type": event.type, "timestamp": iso(event.created_at), "data": event.data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def post(
    url: str,
    headers: dict[str, str],
    body: str,
    *,
    timeout: float,
    allow_private: bool,
) -> Attempt:
    """One delivery attempt: no redirects, `timeout` seconds for all of it, 1 KiB kept."""
    host = URL(url).host or ""
    literal = _literal_ip(host)
    if literal is not None and not allow_private and refused_address(literal):
        return Attempt(None, error=f"{host} is not a public address.", refused=True)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), force_close=True)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as http,
            http.post(url, data=body.encode(), headers=headers, allow_redirects=False) as answer,
        ):
            kept = await answer.content.read(MAX_RESPONSE_BYTES)
            return Attempt(answer.status, kept.decode("utf-8", "replace"))
    except ReceiverRefused as err:
        return Attempt(None, error=str(err), refused=True)
    except TimeoutError:
        return Attempt(None, error=f"no answer within {timeout:g} s")
    except aiohttp.ClientError as err:
        return Attempt(None, error=f"{type(err).__name__}: {err}"[:500])


# --- recording events -----------------------------------------------------------------------


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return ALL_EVENTS in endpoint.events or event_type in endpoint.events


async def subscribers(session: AsyncSession, event_type: str, key: str) -> list[WebhookEndpoint]:
    """The endpoints an occurrence `key` of `event_type` is still to be recorded for: none if
    it was recorded already or no endpoint wants it (then its payload need not be built)."""
    if await session.scalar(select(WebhookEvent.id).where(WebhookEvent.key == key)):
        return []
    return [
        e
        for e in await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
        )
        if wants(e, event_type)
    ]


async def record(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    key: str,
    endpoints: list[WebhookEndpoint] | None = None,
) -> WebhookEvent | None:
    """Record `event_type` for every endpoint that wants it (`endpoints`, as `subscribers`
    found them, else looked up), in the session's transaction; delivered once that commits.
    `key` names the occurrence: recording it again is a no-op (None), as is an event no
    endpoint wants."""
    if endpoints is None:
        endpoints = await subscribers(session, event_type, key)
    if not endpoints:
        return None
    row = WebhookEvent(
        public_id="msg_" + secrets.token_urlsafe(18),
        key=key,
        type=event_type,
        data=json.loads(json.dumps(data, default=str)),
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    deliveries = [
        WebhookDelivery(endpoint_id=e.id, event_id=row.id, status=PENDING, round=0, attempts=0)
        for e in endpoints
    ]
    session.add_all(deliveries)
    await session.flush()
    _hand_off_after_commit(session, [d.id for d in deliveries])
    return row


def _hand_off_after_commit(session: AsyncSession, delivery_ids: list[int]) -> None:
    sync = session.sync_session
    sync.info.setdefault(ADDED, []).extend(delivery_ids)
    if not sync.info.get(LISTENING):
        sa_event.listen(sync, "after_commit", _after_commit)
        sa_event.listen(sync, "after_rollback", _after_rollback)
        sync.info[LISTENING] = True


def _after_commit(sync: Session) -> None:
    ids: list[int] = sync.info.pop(ADDED, [])
    dispatcher = sync.info.get(HANDOFF)
    if ids and isinstance(dispatcher, Webhooks):
        dispatcher.hand_off_soon(ids)


def _after_rollback(sync: Session) -> None:
    sync.info.pop(ADDED, None)


# --- the service ----------------------------------------------------------------------------


def endpoint_out(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut.model_validate(endpoint)


def delivery_out(delivery: WebhookDelivery, event: WebhookEvent) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        event_id=event.public_id,
        type=event.type,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        last_error=delivery.last_error,
    )


def next_attempt_at(settings: Settings, attempt: int, now: datetime) -> datetime:
    """When Temporal runs attempt `attempt + 1` (its back-off: from the initial delay,
    doubling, at most the maximum)."""
    delay = min(
        settings.webhook_retry_seconds * 2 ** max(0, attempt - 1),
        settings.webhook_retry_max_seconds,
    )
    return now + timedelta(seconds=delay)


class Webhooks:
    """Endpoints (the API), and handing deliveries to Temporal (web after a commit, the worker
    by sweeping)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: TemporalGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self._tasks: set[asyncio.Task[int]] = set()

    def attach(self) -> None:
        """Hand off, right after each commit, the deliveries its transaction recorded."""
        info = dict(self.sessions.kw.get("info") or {})
        info[HANDOFF] = self
        self.sessions.kw["info"] = info

    async def close(self) -> None:
        """Let hand-offs under way finish (what they miss, the sweep starts)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=handoff.START_TIMEOUT.total_seconds())

    # --- endpoints ----------------------------------------------------------------------

    async def create_endpoint(self, data: WebhookIn) -> WebhookCreatedOut:
        url = await check_receiver(data.url, self.settings.webhooks_allow_private)
        secret = new_secret()
        async with self.sessions() as session, session.begin():
            endpoint = WebhookEndpoint(
                url=url,
                events=list(data.events),
                description=(data.description or "").strip() or None,
                secret_sealed=seal(self.settings.secret_key, secret),
                created_at=utcnow(),
            )
            session.add(endpoint)
        return WebhookCreatedOut(**dict(endpoint_out(endpoint)), secret=secret)

    async def list_endpoints(self) -> WebhookListOut:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.deleted_at.is_(None))
                .order_by(WebhookEndpoint.id)
            )
            return WebhookListOut(items=[endpoint_out(e) for e in rows])

    async def get_endpoint(self, endpoint_id: int) -> WebhookOut:
        """One endpoint as the list shows it (never its secret); NotFound once deleted."""
        async with self.sessions() as session:
            return endpoint_out(await self._endpoint(session, endpoint_id))

    async def _endpoint(self, session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.deleted_at is not None:
            raise NotFound(f"Webhook {endpoint_id} does not exist.")
        return endpoint

    async def delete_endpoint(self, endpoint_id: int) -> None:
        """Nothing more is sent to it: its pending deliveries end now (an attempt already on
        the wire may still arrive)."""
        async with self.sessions() as session, session.begin():
            endpoint = await self._endpoint(session, endpoint_id)
            endpoint.deleted_at = utcnow()
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint_id,
                    WebhookDelivery.status == PENDING,
                )
                .values(status=FAILED, last_error="The endpoint was deleted.", next_attempt_at=None)
            )

    async def deliveries(self, endpoint_id: int, limit: int = 500) -> WebhookDeliveryListOut:
        async with self.sessions() as session:
            await self._endpoint(session, endpoint_id)
            rows = await session.execute(
                select(WebhookDelivery, WebhookEvent)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
            return WebhookDeliveryListOut(items=[delivery_out(d, e) for d, e in rows])

    async def retry(self, endpoint_id: int, event_id: str) -> WebhookDeliveryOut:
        """Send a failed delivery again (a new round: a new workflow, the same webhook-id)."""
        async with self.sessions() as session, session.begin():
            await self._endpoint(session, endpoint_id)
            found = (
                await session.execute(
                    select(WebhookDelivery, WebhookEvent)
                    .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                    .where(
                        WebhookDelivery.endpoint_id == endpoint_id,
                        WebhookEvent.public_id == event_id,
                    )
                    .with_for_update(of=WebhookDelivery)
                )
            ).first()
            if found is None:
                raise NotFound(f"Webhook {endpoint_id} has no delivery of event {event_id}.")
            delivery, event = found
            if delivery.status != FAILED:
                raise Conflict(
                    f"The delivery is {delivery.status}; only a failed one is sent again.",
                    code=f"delivery_{delivery.status}",
                )
            delivery.status = PENDING
            delivery.round += 1
            delivery.handed_off_at = None
            delivery.last_error = None
            delivery.next_attempt_at = utcnow()
            _hand_off_after_commit(session, [delivery.id])
        return delivery_out(delivery, event)

    async def record_approval_event(
        self, session: AsyncSession, approval_id: int, audit: AuditEventInput, status: str
    ) -> WebhookEvent | None:
        """The sync_approval activity's hook (activities/records.py)."""
        return await record_approval_event(session, self.settings, approval_id, audit, status)

    # --- hand-off -----------------------------------------------------------------------

    def delivery_input(self, delivery: WebhookDelivery) -> WebhookDeliveryInput:
        s = self.settings
        return WebhookDeliveryInput(
            delivery_id=delivery.id,
            task_queue=s.webhook_task_queue,
            attempt_timeout=timedelta(seconds=s.webhook_timeout_seconds),
            retry_initial=timedelta(seconds=s.webhook_retry_seconds),
            retry_maximum=timedelta(seconds=s.webhook_retry_max_seconds),
            give_up_after=timedelta(hours=s.webhook_give_up_hours),
        )

    def hand_off_soon(self, delivery_ids: list[int]) -> None:
        """Start the deliveries' workflows in the background (called after a commit)."""
        task = asyncio.get_running_loop().create_task(self.hand_off_ids(delivery_ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def hand_off_ids(self, delivery_ids: Sequence[int]) -> int:
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.id.in_(delivery_ids),
                        WebhookDelivery.status == PENDING,
                        WebhookDelivery.handed_off_at.is_(None),
                    )
                    .order_by(WebhookDelivery.id)
                )
            )
        return await self.hand_off(rows)

    async def hand_off(self, rows: Sequence[WebhookDelivery]) -> int:
        """Start each row's workflow and note it; the rest wait for the sweep when Temporal
        does not answer."""
        return await handoff.start_rows(self.sessions, WebhookDelivery, rows, self._start)

    async def _start(self, row: WebhookDelivery) -> bool:
        return await handoff.start_once(
            self.temporal,
            WEBHOOK_WORKFLOW,
            self.delivery_input(row),
            workflow_id=workflow_id(row.id, row.round),
            task_queue=self.settings.task_queue,
        )

    async def sweep(self, older_than: timedelta) -> int:
        """Hand off deliveries recorded at least `older_than` ago and never handed off."""
        return await self.hand_off(
            await handoff.due_rows(self.sessions, WebhookDelivery, older_than)
        )

    async def sweep_forever(self) -> None:
        every = timedelta(seconds=self.settings.outbox_sweep_seconds)
        await handoff.sweep_forever(lambda: self.sweep(every), every, SWEEP_BATCH)


# --- approval events (recorded by the sync_approval activity) -------------------------------

# audit event type -> webhook event type, for those that always make one
APPROVAL_EVENTS = {
    "declined": "approval.declined",
    "expired": "approval.expired",
    "voided": "approval.voided",
}


async def _first_of_its_kind(
    session: AsyncSession, approval_id: int, audit_type: str, actor: str | None = None
) -> bool:
    """Whether the audit event just added is the approval's only one of `audit_type` (by
    `actor`): the request's first send, an approver's first open."""
    query = select(func.count(AuditEvent.id)).where(
        AuditEvent.approval_id == approval_id, AuditEvent.type == audit_type
    )
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    return (await session.scalar(query) or 0) == 1


def approval_event_hook(settings: Settings) -> EventHook:
    """record_approval_event as an ApprovalRecords hook (the web's writer of decisions)."""

    async def hook(
        session: AsyncSession, approval_id: int, audit: AuditEventInput, status: str
    ) -> WebhookEvent | None:
        return await record_approval_event(session, settings, approval_id, audit, status)

    return hook


async def record_approval_event(
    session: AsyncSession,
    settings: Settings,
    approval_id: int,
    audit: AuditEventInput,
    status: str,
) -> WebhookEvent | None:
    """The webhook event an approval's new audit event makes, if any (CONTRACT section 11),
    with the approval as `GET /approvals/{id}` shows it. `approval.approved` waits for the
    signed PDF (its SHA-256 and URL are part of it), or for the news that it failed."""
    event_type: str | None = APPROVAL_EVENTS.get(audit.type)
    key = f"{audit.event_key}:webhook"
    first_of: str | None = None  # only the first such event makes one
    if audit.type == "sent":
        event_type, first_of = "approval.sent", "sent"
    elif audit.type == "viewed":
        event_type, first_of = "approval.viewed", "viewed"
    elif audit.type == "approved" and status == "partially_approved":
        event_type = "approval.partially_approved"
    elif audit.type in ("signed_pdf", "signed_pdf_failed") and status == "approved":
        event_type, key = "approval.approved", f"approval-{approval_id}:approved"
    if event_type is None:
        return None
    # Who wants it, before anything else is read: with no subscriber, nothing is built.
    endpoints = await subscribers(session, event_type, key)
    if not endpoints:
        return None
    await session.flush()  # the audit event and state just added are read below
    actor = audit.actor if first_of == "viewed" else None
    if first_of and not await _first_of_its_kind(session, approval_id, first_of, actor):
        return None
    approval = await session.scalar(
        select(Approval)
        .where(Approval.id == approval_id)
        .options(selectinload(Approval.approvers), selectinload(Approval.document))
        .execution_options(populate_existing=True)
    )
    assert approval is not None
    events = list(
        await session.scalars(
            select(AuditEvent).where(AuditEvent.approval_id == approval_id).order_by(AuditEvent.seq)
        )
    )
    data = approval_out(approval, events).model_dump(mode="json")
    if event_type == "approval.approved":
        data["signed_pdf_url"] = (
            settings.url(f"/api/v1/approvals/{approval_id}/signed.pdf")
            if approval.signed_pdf_path
            else None
        )
    return await record(session, event_type, data, key, endpoints)


async def forget(session: AsyncSession, key: str) -> None:
    """Undo a recorded event whose cause was undone in a later transaction (an invoice whose
    workflow could not start): its deliveries not yet made never will be."""
    event_id = await session.scalar(select(WebhookEvent.id).where(WebhookEvent.key == key))
    if event_id is None:
        return
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
    await session.execute(delete(WebhookEvent).where(WebhookEvent.id == event_id))
