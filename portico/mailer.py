"""Email sent by the web layer itself (magic links, receipts, staff notices): the same templates,
SMTP/outbox transport and dedupe table as the `send_email` activity, without a workflow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.notify import NotifyActivities
from portico.settings import Settings
from workflows.types import EmailMessage

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self._notify = NotifyActivities(settings, sessions)
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, message: EmailMessage) -> bool:
        """Send now (once per dedupe key); False, logged, when delivery failed."""
        try:
            await self._notify.send_email(message)
            return True
        except Exception:
            log.exception("could not send %s to %s", message.template, message.to)
            return False

    async def send_staff(self, key: str, template: str, context: dict) -> None:
        """Tell every PORTICO_STAFF_EMAILS address."""
        for n, address in enumerate(self.settings.staff_emails):
            await self.send(
                EmailMessage(
                    dedupe_key=f"{key}:staff:{n}", to=address, template=template, context=context
                )
            )

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background (kept until done), so an answer's timing says nothing
        about what the work found."""
        task = asyncio.get_running_loop().create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except Exception:
            log.exception("background email work failed")

    async def drain(self) -> None:
        """Wait for background sends (on shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
