"""Helpers for the portal, invoice and payment tests: a browser-like HTTP client with its own
cookies, seeding through the staff API, and signing in with the mailed magic link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from portico.models import OutboundMessage, OutboxMessage, PaymentAnnouncement
from portico.services import outbox
from portico.services.gateway import TemporalGateway
from portico.smtp_sink import SinkHandler, free_port
from tests.support.helpers import wait_until
from web.http.portal_keys import BILLING

MAGIC = re.compile(r"/portal/link/([A-Za-z0-9_\-]+)")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Browser:
    """One person's browser: its own cookie jar, relative URLs against the test server."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.base = str(stack.http.make_url("")).rstrip("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base + path, **kw) as response:
            body = await response.read()
            text = body.decode("utf-8", "replace")
            return response.status, text, response

    async def post(self, path: str, data: dict[str, Any], **kw: Any):
        async with self.session.post(self.base + path, data=data, **kw) as response:
            body = await response.read()
            return response.status, body.decode("utf-8", "replace"), response

    async def csrf(self, path: str) -> str:
        status, html, _ = await self.get(path)
        assert status == 200, (status, html[:500])
        match = CSRF.search(html)
        assert match, "no CSRF field on " + path
        return match.group(1)

    def cookie(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None


async def seed_client(
    stack: Any, name: str = "Dana Client", email: str = "dana@client.test", project: str = "Kitchen"
) -> tuple[dict[str, Any], dict[str, Any]]:
    client = await stack.api(
        "POST", "/clients", 201, json={"name": name, "email": email, "company": f"{name} Co"}
    )
    proj = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": project}
    )
    return client, proj


async def create_invoice(stack: Any, project_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "project_id": project_id,
        "number": overrides.pop("number", "INV-1001"),
        "currency": "USD",
        "due_date": (datetime.now(UTC).date() + timedelta(days=14)).isoformat(),
        "line_items": [
            {"description": "Cabinets", "quantity": 2, "unit_price_cents": 50000},
            {"description": "Install", "quantity": 1, "unit_price_cents": 20000},
        ],
        **overrides,
    }
    return await stack.api("POST", "/invoices", 201, json=body)


async def request_link(browser: Browser, email: str) -> tuple[int, str]:
    token = await browser.csrf("/portal")
    status, html, _ = await browser.post("/portal/sign-in", {"csrf": token, "email": email})
    return status, html


async def mails_to(stack: Any, address: str) -> list[OutboundMessage]:
    async with stack.sessions() as session:
        return list(
            await session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.to == address)
                .order_by(OutboundMessage.id)
            )
        )


async def payments_announced(stack: Any) -> None:
    """Wait until the invoice workflows have made every committed payment announcement
    (receipts, staff notices), so what is *not* in the outbox then was never sent."""

    async def done() -> bool:
        async with stack.sessions() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(PaymentAnnouncement)
                .where(PaymentAnnouncement.announced_at.is_(None))
            )
        return left == 0

    await wait_until(done, 60)


async def background_mail_sent(stack: Any) -> None:
    """Wait until every message the web app recorded in the outbox (sign-in links, notices)
    has been delivered or given up, so what is *not* in the sent mail then was never sent."""

    async def settled() -> bool:
        async with stack.sessions() as session:
            waiting = await session.scalar(
                select(OutboxMessage.id).where(OutboxMessage.status == outbox.PENDING).limit(1)
            )
        return waiting is None

    await wait_until(settled)


async def magic_links(stack: Any, address: str) -> list[str]:
    return [m.group(1) for msg in await mails_to(stack, address) for m in MAGIC.finditer(msg.body)]


async def next_magic_link(stack: Any, address: str, seen: int = 0) -> str:
    """The link of the (seen+1)-th sign-in email to `address` (mailed in the background)."""

    async def check() -> str | None:
        links = await magic_links(stack, address)
        return links[seen] if len(links) > seen else None

    return await wait_until(check)


async def use_link(browser: Browser, token: str) -> tuple[int, str]:
    status, html, _ = await browser.get(f"/portal/link/{token}")
    if status != 200:
        return status, html
    match = CSRF.search(html)
    assert match
    status, html, _ = await browser.post(f"/portal/link/{token}", {"csrf": match.group(1)})
    return status, html


async def sign_in(stack: Any, email: str) -> Browser:
    browser = Browser(stack)
    seen = len(await magic_links(stack, email))
    status, _ = await request_link(browser, email)
    assert status == 200
    token = await next_magic_link(stack, email, seen)
    status, html = await use_link(browser, token)
    assert status == 200 and "Sign out" in html, (status, html[:800])
    return browser


@dataclass
class FlakyRelay(SinkHandler):
    """An SMTP relay that answers 451 (try again later) to the next `down_for` messages."""

    down_for: int = 0
    refused: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.down_for > 0:
            self.down_for -= 1
            self.refused += 1
            return "451 4.3.0 Relay unavailable, try again later"
        return await super().handle_DATA(server, session, envelope)

    def to(self, address: str, subject_part: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address and subject_part in m["Subject"]]


@asynccontextmanager
async def flaky_relay() -> AsyncIterator[FlakyRelay]:
    relay = FlakyRelay(port=free_port())
    controller = Controller(relay, hostname=relay.host, port=relay.port)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


@asynccontextmanager
async def temporal_unreachable(stack: Any) -> AsyncIterator[None]:
    """The web app's Temporal connection lost (the worker keeps running): hand-offs fail."""
    billing = stack.http.app[BILLING]
    reachable = billing.temporal
    address = f"127.0.0.1:{free_port()}"
    billing.temporal = TemporalGateway(
        stack.settings.model_copy(update={"temporal_address": address})
    )
    try:
        yield
    finally:
        billing.temporal = reachable
