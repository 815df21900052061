"""Nothing lost (CONTRACT section 8) for the messages the web layer promises: magic links,
portal invites, contact-change, service-request and client-message staff notices, and staff
replies to a client's thread go through the outbox.

For each kind: (a) the SMTP relay answers 451 for a while: the call still answers 2xx and the
message arrives exactly once after the relay recovers; (b) the web process is gone between its
commit and the hand-off to Temporal (here: it cannot reach Temporal and no worker runs, the state
a SIGKILL right after the commit leaves): once a worker runs, its sweep delivers the message
exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from portico import cli
from portico.models import OutboundMessage, OutboxMessage
from portico.services import outbox
from portico.smtp_sink import SinkHandler, SmtpSink, free_port
from tests.conftest import STAFF_KEY, Stack, start_stack
from tests.support.helpers import wait_until
from tests.support.portal_support import (
    CSRF,
    MAGIC,
    Browser,
    background_mail_sent,
    request_link,
    seed_client,
    use_link,
)
from web.app import create_app
from web.http.portal_keys import AUTH
from worker import build_worker

CLIENT = "dana@client.test"
STAFF = "office@firm.test"  # PORTICO_STAFF_EMAILS of the test settings
SWEEP_SECONDS = 0.3


@dataclass
class FlakyRelayHandler(SinkHandler):
    """An SMTP relay that answers 451 (try again later) to every message while `down`."""

    down: bool = True
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.down:
            self.refused += 1
            return "451 4.3.0 Relay busy, try again later"
        return await super().handle_DATA(server, session, envelope)


class Relay(SmtpSink):
    handler: FlakyRelayHandler

    def to(self, address: str) -> list[MimeMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    sink = Relay(handler=FlakyRelayHandler())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def settings(settings, relay):
    """The suite's settings, mailing through the flaky relay, with short outbox intervals."""
    return settings.model_copy(
        update={
            "smtp_host": relay.host,
            "smtp_port": relay.port,
            "outbox_retry_seconds": 0.1,
            "outbox_retry_max_seconds": 0.5,
            "outbox_sweep_seconds": SWEEP_SECONDS,
        }
    )


# --- the four kinds of message ------------------------------------------------------------


@dataclass
class Kind:
    name: str
    recipient: str
    trigger: Callable[[Stack, dict[str, Any]], Awaitable[None]]  # asserts the 2xx answer
    check: Callable[[Stack, str], Awaitable[None]]  # what the recipient reads and can do
    signed_in: bool = False


async def ask_for_link(stack: Stack, ctx: dict[str, Any]) -> None:
    status, html = await request_link(ctx["browser"], CLIENT)
    assert status == 200 and "sent a sign-in link" in html


async def invite(stack: Stack, ctx: dict[str, Any]) -> None:
    answer = await stack.api("POST", f"/clients/{ctx['client']['id']}/invite", 202)
    assert answer["email"] == CLIENT


async def change_contact(stack: Stack, ctx: dict[str, Any]) -> None:
    browser = ctx["browser"]
    csrf = await browser.csrf("/portal/contact")
    status, html, _ = await browser.post(
        "/portal/contact",
        {"csrf": csrf, "name": "Dana Client", "phone": "", "address": "1 Main St, Springfield"},
    )
    assert status == 200 and "Saved." in html


async def request_service(stack: Stack, ctx: dict[str, Any]) -> None:
    browser = ctx["browser"]
    csrf = await browser.csrf("/portal/service-request")
    status, html, _ = await browser.post(
        "/portal/service-request",
        {
            "csrf": csrf,
            "description": "The kitchen tap drips.",
            "name": "Dana Client",
            "email": CLIENT,
        },
    )
    assert status == 200 and "Request sent" in html


async def write_to_staff(stack: Stack, ctx: dict[str, Any]) -> None:
    browser = ctx["browser"]
    csrf = await browser.csrf("/portal/messages")
    status, html, _ = await browser.post(
        "/portal/messages", {"csrf": csrf, "body": "Can you come on Tuesday?"}
    )
    assert status == 200 and "has been told" in html  # after the 303 back to the thread


async def reply_to_client(stack: Stack, ctx: dict[str, Any]) -> None:
    path = f"/clients/{ctx['client']['id']}/messages"
    await stack.api("POST", path, 201, json={"body": "Your permit arrived."})


async def link_signs_in(stack: Stack, text: str) -> None:
    match = MAGIC.search(text)
    assert match, text
    browser = Browser(stack)
    try:
        status, html = await use_link(browser, match.group(1))
        assert status == 200 and "Hello, Dana Client" in html
    finally:
        await browser.close()


async def invited(stack: Stack, text: str) -> None:
    assert "invited you" in text
    await link_signs_in(stack, text)


def mentions(words: str) -> Callable[[Stack, str], Awaitable[None]]:
    async def check(stack: Stack, text: str) -> None:
        assert words in text, text

    return check


KINDS = [
    Kind("magic_link", CLIENT, ask_for_link, link_signs_in),
    Kind("portal_invite", CLIENT, invite, invited),
    Kind("contact_change", STAFF, change_contact, mentions("1 Main St, Springfield"), True),
    Kind("service_request", STAFF, request_service, mentions("The kitchen tap drips."), True),
    Kind("client_message", STAFF, write_to_staff, mentions("Can you come on Tuesday?"), True),
    Kind("staff_reply", CLIENT, reply_to_client, mentions("Your permit arrived.")),
]


async def prepare(stack: Stack, kind: Kind) -> dict[str, Any]:
    """A client (signed in to the portal, for the kinds that need it: with a link minted
    directly, so no email is involved) and a browser."""
    client, _ = await seed_client(stack)
    browser = Browser(stack)
    if kind.signed_in:
        link = (await stack.http.app[AUTH].issue_sign_in_links(CLIENT, None))[0]
        status, html = await use_link(browser, link.token)
        assert status == 200 and "Sign out" in html
    return {"client": client, "browser": browser}


async def rows(stack: Stack) -> list[OutboxMessage]:
    async with stack.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def arrived(relay: Relay, address: str) -> list[MimeMessage]:
    async def check() -> list[MimeMessage]:
        return relay.to(address)

    return await wait_until(check)


async def exactly_once(stack: Stack, relay: Relay, kind: Kind) -> MimeMessage:
    """The one message `kind` sent: it stays one after every delivery settled and a few more
    sweeps ran."""
    await arrived(relay, kind.recipient)
    await background_mail_sent(stack)
    await asyncio.sleep(SWEEP_SECONDS * 4)
    received = relay.to(kind.recipient)
    assert len(received) == 1, [m["Subject"] for m in received]
    async with stack.sessions() as session:
        sent = list(
            await session.scalars(
                select(OutboundMessage).where(OutboundMessage.to == kind.recipient)
            )
        )
    assert len(sent) == 1 and sent[0].transport == "smtp"
    assert all(r.status == outbox.DELIVERED for r in await rows(stack))
    return received[0]


# --- (a) the relay is down for a while ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_relay_down_the_call_answers_and_the_message_arrives_once(stack, relay, kind):
    ctx = await prepare(stack, kind)
    try:
        await kind.trigger(stack, ctx)

        async def retried() -> bool:
            return relay.handler.refused >= 3

        await wait_until(retried)  # the relay refused several attempts...
        assert relay.to(kind.recipient) == []
        assert [r.status for r in await rows(stack)] == [outbox.PENDING]  # ...it waits
        relay.handler.down = False
        mail = await exactly_once(stack, relay, kind)
        await kind.check(stack, SmtpSink.text_of(mail))
        if kind.name in ("magic_link", "portal_invite"):  # its token is in no workflow history
            token = MAGIC.search(SmtpSink.text_of(mail))
            assert token
            for row in await rows(stack):
                handle = stack.temporal.get_workflow_handle(f"message-{row.id}")
                history = (await handle.fetch_history()).to_json()
                assert "OutboxMessageWorkflow" in history
                assert token.group(1) not in history and CLIENT not in history
    finally:
        await ctx["browser"].close()


# --- (b) the web process is gone between its commit and the hand-off -----------------------


@pytest.fixture
async def cut_off(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """The web app with no way to reach Temporal and no worker: what it commits stays in the
    outbox, as when web is SIGKILLed right after its commit."""
    unreachable = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    http = TestClient(TestServer(create_app(unreachable)))
    await http.start_server()
    try:
        yield Stack(http, unreachable, sessions, dev_env.client)
    finally:
        await http.close()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_web_gone_before_the_hand_off_the_sweep_delivers_once(
    cut_off, settings, sessions, dev_env, relay, kind
):
    relay.handler.down = False
    ctx = await prepare(cut_off, kind)
    try:
        await kind.trigger(cut_off, ctx)
        recorded = await rows(cut_off)
        assert len(recorded) == 1 and recorded[0].handed_off_at is None
        await asyncio.sleep(SWEEP_SECONDS * 3)
        assert relay.to(kind.recipient) == []  # nothing sends it without a worker
        async with build_worker(dev_env.client, settings, sessions):
            mail = await exactly_once(cut_off, relay, kind)
            await kind.check(cut_off, SmtpSink.text_of(mail))
        [row] = await rows(cut_off)
        assert row.handed_off_at is not None  # the sweep started its workflow
    finally:
        await ctx["browser"].close()


# --- the bound in time ---------------------------------------------------------------------


@pytest.fixture
def give_up_fast(settings):
    return settings.model_copy(update={"outbox_give_up_hours": 2 / 3600})


async def test_a_relay_down_for_longer_than_the_window_marks_the_message_failed(
    give_up_fast, sessions, dev_env, relay
):
    async for stack in start_stack(give_up_fast, sessions, dev_env.client):
        ctx = await prepare(stack, KINDS[1])
        await invite(stack, ctx)
        await ctx["browser"].close()
        await background_mail_sent(stack)  # retried for 2 s, then given up
        [row] = await rows(stack)
        assert row.status == outbox.FAILED and row.finished_at is not None
        assert row.error
        assert relay.handler.refused >= 2
        relay.handler.down = False
        await asyncio.sleep(SWEEP_SECONDS * 3)
        assert relay.to(CLIENT) == []  # a failed message is not swept again


# --- (b') a real `portico web`, SIGKILLed right after its answer ----------------------------


@dataclass
class WebProcess:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
async def web_process(settings, dev_env, tmp_path) -> AsyncIterator[WebProcess]:
    """`portico web` as its own process on the test database and Temporal."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(cli.__file__).parent.parent),
        "PORTICO_DATABASE_URL": settings.database_url,
        "PORTICO_VAR_DIR": str(settings.var_dir),
        "PORTICO_FILES_DIR": str(settings.files_dir),
        "PORTICO_SECRET_KEY": settings.secret_key,
        "PORTICO_STAFF_API_KEY": STAFF_KEY,
        "PORTICO_PUBLIC_URL": settings.public_url,
        "PORTICO_HTTP_PORT": str(port),
        "PORTICO_TASK_QUEUE": settings.task_queue,
        "PORTICO_STAFF_EMAILS": STAFF,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "portico.cli", "web"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web = WebProcess(f"http://127.0.0.1:{port}", process)
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                try:
                    async with http.get(web.url + "/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(up)
        yield web
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def test_portico_web_killed_right_after_its_answers_loses_nothing(
    web_process, settings, sessions, dev_env, relay
):
    """A sign-in link and an invitation, each answered 2xx by `portico web`, which is then
    SIGKILLed at once with no worker running: once a worker runs, each arrives exactly once."""
    relay.handler.down = False
    url, auth = web_process.url, {"Authorization": f"Bearer {STAFF_KEY}"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            url + "/api/v1/clients", json={"name": "Dana Client", "email": CLIENT}, headers=auth
        ) as response:
            assert response.status == 201
            client = await response.json()
        async with http.get(url + "/portal") as response:
            csrf = CSRF.search(await response.text())
        assert csrf
        async with http.post(
            url + "/portal/sign-in", data={"csrf": csrf.group(1), "email": CLIENT}
        ) as response:
            assert response.status == 200 and "sent a sign-in link" in await response.text()
        async with http.post(url + f"/api/v1/clients/{client['id']}/invite", headers=auth) as r:
            assert r.status == 202
            web_process.process.send_signal(signal.SIGKILL)
    assert web_process.process.wait(timeout=30) == -signal.SIGKILL
    await asyncio.sleep(SWEEP_SECONDS * 3)
    assert relay.to(CLIENT) == []  # no worker yet
    async with build_worker(dev_env.client, settings, sessions):

        async def both() -> bool:
            return len(relay.to(CLIENT)) >= 2

        await wait_until(both)
        await asyncio.sleep(SWEEP_SECONDS * 4)
    texts = [SmtpSink.text_of(m) for m in relay.to(CLIENT)]
    assert len(texts) == 2, texts
    assert sum("invited you" in t for t in texts) == 1  # one invitation, one sign-in link
    async with sessions() as session:
        statuses = list(await session.scalars(select(OutboxMessage.status)))
    assert statuses == [outbox.DELIVERED, outbox.DELIVERED]
