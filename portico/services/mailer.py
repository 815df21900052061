"""Email sent by the web layer itself, in-process (payment receipts and payment notices): the
same templates, SMTP/outbox transport and dedupe table as the `send_email` activity, without a
workflow. New code records messages with `portico.services.outbox.add` instead, so a failing
relay loses nothing.

The sender is injected by the composition root (web/app.py passes the notify activity's
`send_email`), so this layer does not import the side-effect layer above it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from portico.services.outbox import staff_emails
from portico.settings import Settings
from workflows.types import EmailMessage

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings: Settings, send: Callable[[EmailMessage], Awaitable[None]]) -> None:
        self.settings = settings
        self._send = send

    async def send(self, message: EmailMessage) -> bool:
        """Send now (once per dedupe key); False, logged, when delivery failed."""
        try:
            await self._send(message)
            return True
        except Exception:
            log.exception("could not send %s to %s", message.template, message.to)
            return False

    async def send_staff(self, key: str, template: str, context: dict) -> None:
        """Tell every PORTICO_STAFF_EMAILS address."""
        for message in staff_emails(self.settings, key, template, context):
            await self.send(message)
