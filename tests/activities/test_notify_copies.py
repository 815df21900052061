"""What `outbound_messages` keeps of a sent email: the whole text in the dev outbox (no relay,
or `portico dev`'s own SMTP sink), the link tokens masked when a real relay carried it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activities.notify import NotifyActivities
from portico import tokens
from portico.smtp_sink import SmtpSink
from tests.support.helpers import outbox
from workflows.types import EmailMessage


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


def magic_link(settings, token: str) -> EmailMessage:
    return EmailMessage(
        dedupe_key=f"magic-link:{tokens.hash_token(token)}",
        to="dana@client.test",
        template="portal_sign_in",
        context={
            "company_name": "Acme Builders",
            "client_name": "Dana",
            "link_url": settings.url(f"/portal/link/{token}"),
            "expires_in": "in 15 minutes",
            "invite": False,
        },
    )


async def test_mail_through_a_relay_is_kept_without_its_link(settings, sessions, sink):
    relay = settings.model_copy(update={"smtp_host": sink.host, "smtp_port": sink.port})
    token = tokens.new_token()
    await NotifyActivities(relay, sessions).send_email(magic_link(settings, token))

    link = settings.url(f"/portal/link/{token}")
    assert link in SmtpSink.text_of(sink.messages[0])  # the client gets the working link
    (kept,) = await outbox(sessions)
    assert kept.transport == "smtp"
    assert token not in kept.body and token not in (kept.html or "")
    assert "http://portico.test/portal/link/****" in kept.body
    assert 'href="http://portico.test/portal/link/****"' in (kept.html or "")


@pytest.mark.parametrize("mode", ["outbox", "dev sink"])
async def test_the_dev_outbox_keeps_the_link(settings, sessions, sink, mode):
    if mode == "dev sink":  # what `portico dev` runs when no relay is configured
        settings = settings.model_copy(
            update={"smtp_host": sink.host, "smtp_port": sink.port, "smtp_dev_sink": True}
        )
    token = tokens.new_token()
    await NotifyActivities(settings, sessions).send_email(magic_link(settings, token))
    (kept,) = await outbox(sessions)
    assert kept.transport == ("smtp" if mode == "dev sink" else "outbox")
    assert settings.url(f"/portal/link/{token}") in kept.body
