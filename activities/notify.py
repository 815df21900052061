"""Email (SMTP via aiosmtplib) and SMS (official twilio client). Each send is recorded under a
dedupe key first checked, so a retried activity does not message anyone twice; without SMTP or
Twilio settings the message lands in the dev outbox instead.

A message to an approver arrives with placeholders for their signing link and reply code
(workflows.types.SIGN_URL, SMS_CODE), filled in here from the database so the secrets never
travel through Temporal. The copy recorded in `outbound_messages` has every link token and
reply code masked, except in the dev outbox, where a developer has to click the links.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.sms_texts import approver_sms, localized
from portico import i18n, quiet_hours, redact, tokens
from portico.db import DirectRead
from portico.files import FileStore
from portico.models import Approval, Approver, Client, Document, OutboundMessage, Project, SmsOptOut
from portico.phones import bare_phone
from portico.services.approval_records import RecordSnapshot
from portico.settings import Settings
from workflows.types import SIGN_URL, SMS_CODE, EmailMessage, SmsMessage

TEMPLATES = Path(__file__).parent / "templates"

# Read for every email and text, straight on the driver (portico.db.DirectRead): whether its
# dedupe key was sent, and who it goes to (their link secrets and language, their client's
# language and time zone) in one statement.
_SENT_AT = DirectRead(
    select(OutboundMessage.created_at).where(OutboundMessage.dedupe_key == bindparam("key"))
)
_RECIPIENT = DirectRead(
    select(
        Approver.link_nonce,
        Approver.sms_code,
        Approver.token_hash,
        Approver.locale,
        Client.locale,
        Client.timezone,
    )
    .select_from(Approver)
    .outerjoin(Approval, Approval.id == Approver.approval_id)
    .outerjoin(Document, Document.id == Approval.document_id)
    .outerjoin(Project, Project.id == Document.project_id)
    .outerjoin(Client, Client.id == Project.client_id)
    .where(Approver.id == bindparam("approver_id"))
)


def email_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() per email
        extensions=["jinja2.ext.i18n"],
    )
    i18n.install(env)  # each message is rendered inside i18n.use(its reader's locale)
    return env


def render_email(env: Environment, template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, html) from `emails/<template>.html` and its (inherited) blocks."""
    tmpl = env.get_template(f"emails/{template}.html")
    ctx = tmpl.new_context(context)
    html = "".join(tmpl.root_render_func(ctx))  # also collects the blocks of parent templates

    def part(name: str) -> str:
        # The templates autoescape for HTML; the subject and text part are plain text.
        return unescape("".join(ctx.blocks[name][0](ctx))).strip()

    return " ".join(part("subject").split()), part("text") + "\n", html


def twilio_client(settings: Settings) -> Any:
    """The official client; PORTICO_TWILIO_API_BASE points its REST calls elsewhere (tests)."""
    from twilio.rest import Client

    client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
    if settings.twilio_api_base:
        client.api.base_url = settings.twilio_api_base.rstrip("/")
    return client


@dataclass(frozen=True)
class ApproverSecrets:
    """An approver's signing link (None: an older request, whose messages carry it already)
    and reply code: filled into their messages, masked in the recorded copies."""

    sign_url: str | None
    sms_code: str

    def fill(self, text: str) -> str:
        if SIGN_URL in text:
            if self.sign_url is None:
                raise ApplicationError(
                    "This approver's signing link is not derived; the message cannot carry it.",
                    type="LinkUnavailable",
                    non_retryable=True,
                )
            text = text.replace(SIGN_URL, self.sign_url)
        return text.replace(SMS_CODE, self.sms_code)


@dataclass(frozen=True)
class Recipient:
    """The approver a message goes to, as `_RECIPIENT` reads them (no approver: all None)."""

    secrets: ApproverSecrets | None
    locale: str | None = None
    client_locale: str | None = None
    client_timezone: str | None = None


@dataclass(frozen=True)
class Reader:
    """Who reads a message: their locale and time zone (CONTRACT section 10)."""

    locale: str
    timezone: str


class NotifyActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        record: RecordSnapshot | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock  # injectable so quiet hours test with fixed times
        self.record = record  # for a request email's `record_sent`
        self.quiet_hours = quiet_hours.parse_quiet_hours(settings.quiet_hours)
        self.quiet_spread = timedelta(minutes=settings.quiet_hours_spread_minutes)
        self.default_zone = ZoneInfo(settings.default_timezone)
        self.env = email_environment()
        self.files = FileStore(settings.files_dir)
        self._twilio: Any = None

    async def _already_sent(self, dedupe_key: str) -> bool:
        return await self._sent_at(dedupe_key) is not None

    async def _sent_at(self, dedupe_key: str) -> datetime | None:
        rows = await _SENT_AT.all(self.sessions, {"key": dedupe_key})
        return rows[0][0] if rows else None

    async def _record_sent(self, message: EmailMessage, sent_at: datetime) -> datetime | None:
        """Write the request's `sent` snapshot as of `sent_at` (a retry rewrites nothing: the
        event's key is in the chain, and the time is the recorded send's)."""
        snapshot = message.record_sent
        if snapshot is None:
            return None
        assert self.record is not None  # checked before sending
        await self.record(snapshot.sent_at(message.approver_id, sent_at))
        return sent_at

    async def _recipient(self, approver_id: int | None) -> Recipient:
        if approver_id is None:
            return Recipient(None)
        rows = await _RECIPIENT.all(self.sessions, {"approver_id": approver_id})
        if not rows:
            raise ApplicationError(
                f"Approver {approver_id} does not exist.",
                type="UnknownApprover",
                non_retryable=True,
            )
        nonce, sms_code, token_hash, locale, client_locale, client_timezone = rows[0]
        return Recipient(
            self._secrets(approver_id, nonce, sms_code, token_hash),
            locale,
            client_locale,
            client_timezone,
        )

    def _secrets(
        self, approver_id: int, nonce: str | None, sms_code: str, token_hash: str
    ) -> ApproverSecrets:
        if nonce is None:
            return ApproverSecrets(None, sms_code)
        token = tokens.signing_token(self.settings.secret_key, approver_id, nonce)
        if tokens.hash_token(token) != token_hash:
            raise ApplicationError(
                f"The signing link of approver {approver_id} does not match: PORTICO_SECRET_KEY "
                "differs from the one the request was created with (is the worker's the same as "
                "the web's?).",
                type="LinkUnavailable",
                non_retryable=True,
            )
        return ApproverSecrets(self.settings.url(f"/s/{token}"), sms_code)

    def _reader(
        self, template: str | None, recipient: Recipient, locale: str | None, zone: str | None
    ) -> Reader:
        """The message's language: the one it names, else its approver's, else the client's,
        else PORTICO_DEFAULT_LOCALE; staff messages are English. Read when the message is
        written, so a language changed meanwhile applies, and no history carries it."""
        settings = self.settings
        if template is not None and template.startswith("staff_"):
            return Reader(i18n.DEFAULT_LOCALE, zone or settings.default_timezone)
        return Reader(
            i18n.resolve(
                locale, recipient.locale, recipient.client_locale, default=settings.default_locale
            ),
            zone or recipient.client_timezone or settings.default_timezone,
        )

    def _keeps_full_text(self, transport: str) -> bool:
        """Only the dev outbox keeps sent texts whole, links and all: no relay at all, or the
        embedded SMTP sink of `portico dev`."""
        return transport == "outbox" or (transport == "smtp" and self.settings.smtp_dev_sink)

    @staticmethod
    def _stored(text: str, secrets: ApproverSecrets | None) -> str:
        """A text as `outbound_messages` keeps it elsewhere: link tokens and codes masked."""
        masked = redact.mask_links(text)
        return redact.mask_values(masked, [secrets.sms_code]) if secrets else masked

    async def _record(self, **values: Any) -> None:
        async with self.sessions() as session, session.begin():
            session.add(OutboundMessage(**values))
        # an IntegrityError here means a concurrent attempt recorded it first: fine

    @activity.defn(name="send_email")
    async def send_email(self, message: EmailMessage) -> datetime | None:
        """Send one email once; returns when it went out if it carries `record_sent`."""
        if message.record_sent is not None and self.record is None:
            raise ApplicationError(
                "This worker cannot record a request's `sent` event (no recorder given).",
                type="Misconfigured",
                non_retryable=True,
            )
        sent_at = await self._sent_at(message.dedupe_key)
        if sent_at is not None:  # a retry: it went out, but its record may not have
            return await self._record_sent(message, sent_at)
        if "@" not in message.to:
            raise ApplicationError(f"Not an email address: {message.to}", type="InvalidRecipient")
        recipient = await self._recipient(message.approver_id)
        secrets = recipient.secrets
        context = {"public_url": self.settings.public_url, **message.context}
        if secrets is not None:
            context = {k: secrets.fill(v) if isinstance(v, str) else v for k, v in context.items()}
        reader = self._reader(message.template, recipient, message.locale, message.timezone)
        with i18n.use(reader.locale, reader.timezone):
            if not message.template.startswith("staff_"):  # staff read the facts as sent
                context = localized(context)
            subject, text, html = render_email(self.env, message.template, context)
        mime = MimeMessage()
        mime["From"] = self.settings.mail_from
        mime["To"] = message.to
        mime["Subject"] = subject
        mime["Message-ID"] = make_msgid(domain="portico")
        mime.set_content(text)
        mime.add_alternative(html, subtype="html")
        if message.attach_signed_pdf_of is not None:
            await self._attach_signed_pdf(mime, message.attach_signed_pdf_of)
        transport = "outbox"
        if self.settings.smtp_host:
            await aiosmtplib.send(
                mime,
                hostname=self.settings.smtp_host,
                port=self.settings.smtp_port or 25,
                username=self.settings.smtp_username,
                password=self.settings.smtp_password,
                start_tls=self.settings.smtp_starttls,
                timeout=30,
            )
            transport = "smtp"
        full = self._keeps_full_text(transport)
        sent_at = self.clock()
        try:
            await self._record(
                dedupe_key=message.dedupe_key,
                channel="email",
                to=message.to,
                subject=subject,
                body=text if full else self._stored(text, secrets),
                html=html if full else self._stored(html, secrets),
                transport=transport,
                provider_id=mime["Message-ID"],
                created_at=sent_at,
            )
        except IntegrityError:  # a concurrent attempt recorded it first: its time stands
            sent_at = await self._sent_at(message.dedupe_key) or sent_at
        return await self._record_sent(message, sent_at)

    async def _attach_signed_pdf(self, mime: MimeMessage, approval_id: int) -> None:
        async with self.sessions() as session:
            approval = await session.get(Approval, approval_id)
        if approval is None or not approval.signed_pdf_path:
            return
        data = self.files.read(approval.signed_pdf_path)
        mime.add_attachment(
            data, maintype="application", subtype="pdf", filename=f"signed-{approval_id}.pdf"
        )

    @activity.defn(name="send_sms")
    async def send_sms(self, message: SmsMessage) -> None:
        """Send one SMS, unless the recipient opted out (recorded, then reported to the workflow
        as a non-retryable OptedOut so the audit trail shows it) or, for a non-urgent text, it is
        night where they are (QuietHours: see `_hold_for_quiet_hours`)."""
        if await self._already_sent(message.dedupe_key):
            return
        recipient = await self._recipient(message.approver_id)
        secrets = recipient.secrets
        if await self._opted_out(message.to):
            await self._record_sms(
                message,
                "opted_out",
                None,
                self._stored(self._sms_body(message, recipient), secrets),
            )
            raise ApplicationError(
                "The recipient replied STOP to our texts; SMS not sent.",
                type="OptedOut",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        if not message.urgent:
            self._hold_for_quiet_hours(message.to, message.dedupe_key)
        body = self._sms_body(message, recipient)
        body = secrets.fill(body) if secrets else body
        transport, provider_id = "outbox", None
        if self.settings.twilio_enabled:
            provider_id = await asyncio.to_thread(self._send_twilio, message.to, body)
            transport = "twilio"
        stored = body if self._keeps_full_text(transport) else self._stored(body, secrets)
        await self._record_sms(message, transport, provider_id, stored)

    def _sms_body(self, message: SmsMessage, recipient: Recipient) -> str:
        """The text in its reader's language (from `template`), else the workflow's `body`."""
        if message.template is None:
            return message.body
        reader = self._reader(message.template, recipient, message.locale, None)
        with i18n.use(reader.locale, reader.timezone):
            return approver_sms(message.template, message.context)

    async def _record_sms(
        self, message: SmsMessage, transport: str, provider_id: str | None, body: str
    ) -> None:
        with contextlib.suppress(IntegrityError):  # a concurrent attempt recorded it first
            await self._record(
                dedupe_key=message.dedupe_key,
                channel="sms",
                to=message.to,
                subject=None,
                body=body,
                html=None,
                transport=transport,
                provider_id=provider_id,
            )

    async def _opted_out(self, to: str) -> bool:
        async with self.sessions() as session:
            found = await session.scalar(
                select(SmsOptOut.opted_out).where(SmsOptOut.phone == bare_phone(to))
            )
        return bool(found)

    def _hold_for_quiet_hours(self, to: str, key: str) -> None:
        """Fail this attempt with a retry at the end of the recipient's night, at the text's
        own moment within PORTICO_QUIET_HOURS_SPREAD_MINUTES (`quiet_hours.release_offset`).

        Quiet hours depend on time zone data and the wall clock, which a workflow must not read
        (replays would decide differently), so the activity decides: it raises a *retryable*
        QuietHours error whose `next_retry_delay` tells Temporal when to try again. Temporal
        honours that delay beyond the retry policy's maximum interval, the workflow's 2-day SMS
        schedule-to-close window covers any night, and nothing sleeps in a worker meanwhile.
        """
        zone = quiet_hours.zone_for(to, self.default_zone)
        delay = quiet_hours.delay_until_allowed(self.clock(), zone, self.quiet_hours)
        if delay is not None:
            delay += quiet_hours.release_offset(key, self.quiet_spread)
            raise ApplicationError(
                f"Quiet hours in {zone.key}; sending in {delay}.",
                type="QuietHours",
                next_retry_delay=delay,
                category=ApplicationErrorCategory.BENIGN,
            )

    def _send_twilio(self, to: str, body: str) -> str:
        from twilio.base.exceptions import TwilioRestException

        if self._twilio is None:
            self._twilio = twilio_client(self.settings)
        sender: dict[str, str] = {}
        if self.settings.twilio_messaging_service_sid:
            sender["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        else:
            sender["from_"] = self._sender_for(to)
        try:
            sent = self._twilio.messages.create(to=to, body=body, **sender)
        except TwilioRestException as err:
            if err.code == 21610:  # the recipient replied STOP to this sender at Twilio's end
                raise ApplicationError(
                    "The recipient has unsubscribed from our texts; SMS not sent.",
                    type="OptedOut",
                    non_retryable=True,
                    category=ApplicationErrorCategory.BENIGN,
                ) from err
            if err.status == 400:  # invalid number, unsubscribed recipient: retrying won't help
                raise ApplicationError(str(err.msg), type="InvalidRecipient") from err
            raise
        return str(sent.sid)

    def _sender_for(self, to: str) -> str:
        sender = self.settings.twilio_from_number or ""
        if to.startswith("whatsapp:") and not sender.startswith("whatsapp:"):
            return f"whatsapp:{sender}"
        return sender
