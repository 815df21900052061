"""`POST /webhooks/twilio/sms` (CONTRACT section 5): signatures over the public URL, TwiML
answers, and a message sid processed once."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from portico.models import InboundMessage, SmsOptOut
from tests.conftest import Stack
from tests.support.fake_twilio import (
    AUTH_TOKEN,
    WEBHOOK,
    FakeTwilio,
    inbound,
    new_sid,
    post_sms,
    reply_text,
    running_fake,
    sign,
    stack_with_fake,
)
from tests.support.helpers import approvers, create_approval, seed_document

PHONE = "+15550100001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async for twilio in running_fake():
        yield twilio


@pytest.fixture
async def hook(settings, sessions, dev_env, fake) -> AsyncIterator[Stack]:
    async for stack in stack_with_fake(settings, sessions, dev_env.client, fake):
        yield stack


async def count(stack: Stack, model: type) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_signed_request_gets_a_twiml_answer(hook):
    response = await hook.http.post(
        WEBHOOK,
        data=(form := inbound(PHONE, "HELP")),
        headers={"X-Twilio-Signature": sign(hook.settings.url(WEBHOOK), form)},
    )
    assert response.status == 200
    assert response.content_type == "text/xml"
    text = await response.text()
    assert text.startswith("<?xml")
    assert "YES &lt;code&gt;" in text  # escaped by the TwiML builder
    assert "YES <code>" in reply_text(text)
    assert "Authorization" not in response.headers  # no staff bearer involved


async def test_forged_or_missing_signatures_are_403_and_change_nothing(hook):
    url = hook.settings.url(WEBHOOK)
    form = inbound(PHONE, "STOP")
    cases = {
        "missing": None,
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "wrong token": sign(url, form, token="someone-elses-token"),
        "internal url": sign(str(hook.http.make_url(WEBHOOK)), form),  # not the public URL
        "other params": sign(url, {**form, "Body": "HELP"}),
    }
    for name, signature in cases.items():
        headers = {"X-Twilio-Signature": signature} if signature else {}
        response = await hook.http.post(WEBHOOK, data=form, headers=headers)
        assert response.status == 403, name
    assert await count(hook, SmsOptOut) == 0
    assert await count(hook, InboundMessage) == 0


async def test_without_an_auth_token_every_request_is_refused(hook):
    form = inbound(PHONE, "STOP")
    signature = sign(hook.settings.url(WEBHOOK), form)
    hook.settings.twilio_auth_token = None
    response = await hook.http.post(WEBHOOK, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403
    assert await count(hook, SmsOptOut) == 0


async def test_the_query_string_is_part_of_the_signed_url(hook):
    path = WEBHOOK + "?source=main-number"
    status, reply = await post_sms(hook, PHONE, "HELP", path=path)
    assert status == 200 and "YES <code>" in reply
    form = inbound(PHONE, "HELP")
    signature = sign(hook.settings.url(WEBHOOK), form)  # signed without the query
    response = await hook.http.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403


async def test_a_repeated_message_sid_is_ignored(hook, fake):
    document = await seed_document(hook)
    created = await create_approval(
        hook, document["id"], approvers=approvers(1, phones=True), channels=["email", "sms"]
    )
    from tests.bots.test_sms_bot import codes

    code = (await codes(hook, created["id"]))[0]
    sid = new_sid()
    status, first = await post_sms(hook, PHONE, f"YES {code} ok", sid=sid)
    assert status == 200 and "You approved" in first
    events = (await hook.api("GET", f"/approvals/{created['id']}", 200))["events"]

    status, again = await post_sms(hook, PHONE, f"YES {code} ok", sid=sid)
    assert status == 200
    assert again == ""  # an empty <Response/>
    after = (await hook.api("GET", f"/approvals/{created['id']}", 200))["events"]
    assert [e["type"] for e in after if e["type"] == "approved"] == ["approved"]
    assert len([e for e in after if e["type"] in ("approved", "declined")]) == len(
        [e for e in events if e["type"] in ("approved", "declined")]
    )
    assert await count(hook, InboundMessage) == 1


async def test_messages_without_a_sender_get_an_empty_answer(hook):
    form = {"MessageSid": new_sid(), "Body": "YES 1234", "AccountSid": "AC" + "1" * 32}
    response = await hook.http.post(
        WEBHOOK, data=form, headers={"X-Twilio-Signature": sign(hook.settings.url(WEBHOOK), form)}
    )
    assert response.status == 200
    assert reply_text(await response.text()) == ""


def test_signing_helper_is_twilios_algorithm():
    # Twilio's scheme, written out: HMAC-SHA1 (auth token) over the URL followed by every
    # POST parameter name and value sorted by name, base64-encoded.
    params = {"To": "+18005551212", "From": "+12349013030", "Body": "YES 1234", "A": "1"}
    url = "https://portal.example.com/webhooks/twilio/sms?foo=1"
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(AUTH_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()
    assert sign(url, params) == base64.b64encode(digest).decode()
