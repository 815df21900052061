"""Messages by SMS (CONTRACT section 14), end to end with the official twilio client against
the local fake: free text from a client's phone joins their thread and staff are told (email
and SMS); a staff reply is texted to the client once, even with Twilio down for a while, never
after STOP, and after their quiet hours; a staff phone and a stranger keep today's answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bots.conversation import acknowledgement
from portico.models import ClientMessage, OutboxMessage
from portico.services import outbox as outbox_service
from tests.conftest import Stack
from tests.support.fake_twilio import STAFF_PHONE, FakeTwilio, new_sid, post_sms, stack_with_fake
from tests.support.helpers import outbox, wait_until
from tests.support.portal_support import background_mail_sent
from workflows.types import DELIVER_OUTBOX

PHONE = "+15550100001"
STRANGER = "+15550177777"
STAFF_EMAIL = "office@firm.test"
ACK = acknowledgement("Acme Builders")
FAST_OUTBOX = {"outbox_retry_seconds": 0.1, "outbox_retry_max_seconds": 0.5}


@pytest.fixture
async def chat(settings, sessions, dev_env, twilio) -> AsyncIterator[Stack]:
    """The SMS stack (a staff phone, no quiet hours) with quick outbox retries."""
    async for stack in stack_with_fake(settings, sessions, dev_env.client, twilio, **FAST_OUTBOX):
        yield stack


async def new_client(stack: Stack, phone: str | None = PHONE, name: str = "Dana Client") -> int:
    body = {"name": name, "email": f"{name.split()[0].lower()}@client.test", "phone": phone}
    created = await stack.api("POST", "/clients", 201, json={k: v for k, v in body.items() if v})
    return int(created["id"])


async def thread(stack: Stack, client_id: int) -> list[dict]:
    return (await stack.api("GET", f"/clients/{client_id}/messages", 200))["items"]


async def count_messages(stack: Stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ClientMessage)) or 0)


async def texts_to(twilio: FakeTwilio, number: str, count: int = 1) -> list[dict[str, str]]:
    async def check() -> list[dict[str, str]] | None:
        found = twilio.to(number)
        return found if len(found) >= count else None

    return await wait_until(check, timeout=60)


async def settled(stack: Stack) -> None:
    """Every outbox message delivered or given up, and a little more time for strays."""
    await background_mail_sent(stack)
    await asyncio.sleep(0.5)


async def test_free_text_from_a_clients_phone_joins_the_thread_and_staff_are_told(chat, twilio):
    client_id = await new_client(chat)
    status, reply = await post_sms(chat, PHONE, "Can you come Tuesday? Gate code https://x.test")
    assert status == 200 and reply == ACK
    [message] = await thread(chat, client_id)
    assert message["body"] == "Can you come Tuesday? Gate code https://x.test"
    assert (message["direction"], message["channel"]) == ("in", "sms")
    assert message["author"] == f"sms:{PHONE}"

    staff_text = (await texts_to(twilio, STAFF_PHONE))[0]["Body"]
    assert "message from Dana Client" in staff_text and "Can you come Tuesday?" in staff_text
    assert f"http://portico.test/staff/clients/{client_id}#messages" in staff_text
    mails = await wait_until(lambda: outbox(chat.sessions, STAFF_EMAIL))
    assert "Dana Client" in mails[0].subject and "by text message" in mails[0].body

    # Staff-shaped words from a client are words for the business; WhatsApp is the same phone.
    _, reply = await post_sms(chat, PHONE, "Status of the roof?")
    assert reply == ACK
    _, reply = await post_sms(chat, f"whatsapp:{PHONE}", "Sent from WhatsApp")
    assert reply == ACK
    # Twilio delivering one message twice records it once.
    sid = new_sid()
    await post_sms(chat, PHONE, "Only once", sid)
    await post_sms(chat, PHONE, "Only once", sid)
    bodies = [m["body"] for m in await thread(chat, client_id)]
    assert bodies[1:] == ["Status of the roof?", "Sent from WhatsApp", "Only once"]

    # Commands keep working from the client's phone and are not added to the thread.
    _, reply = await post_sms(chat, PHONE, "HELP")
    assert "YES <code>" in reply
    _, reply = await post_sms(chat, PHONE, "yes")
    assert "include the code" in reply
    assert len(await thread(chat, client_id)) == 4

    await settled(chat)
    assert len(twilio.to(STAFF_PHONE)) == 4  # one staff notice per client message
    assert len(await outbox(chat.sessions, STAFF_EMAIL)) == 4


async def test_a_stranger_and_a_staff_phone_keep_todays_answers(chat, twilio):
    await new_client(chat, phone=STAFF_PHONE, name="Sam Staff")  # a staff phone is no client
    _, reply = await post_sms(chat, STRANGER, "what is this?")
    assert "did not understand" in reply
    _, reply = await post_sms(chat, STRANGER, "STATUS CO-17")
    assert "did not understand" in reply and "CO-17" not in reply
    _, reply = await post_sms(chat, STAFF_PHONE, "hello there")
    assert "did not understand" in reply
    _, reply = await post_sms(chat, STAFF_PHONE, "STATUS CO-99")
    assert reply == "No approval request for CO-99."
    assert await count_messages(chat) == 0
    await settled(chat)
    assert twilio.messages == []


async def test_a_staff_reply_is_texted_once_even_with_twilio_down_for_a_while(chat, twilio):
    client_id = await new_client(chat)
    twilio.down = True
    sent = await chat.api(
        "POST", f"/clients/{client_id}/messages", 201, json={"body": "Your permit arrived."}
    )
    assert sent["direction"] == "out"

    async def refused() -> bool:
        return twilio.refused >= 3

    await wait_until(refused)
    email = await wait_until(lambda: outbox(chat.sessions, "dana@client.test"))
    assert "Your permit arrived." in email[0].body  # the email does not wait for Twilio
    assert twilio.to(PHONE) == []
    twilio.down = False
    [text] = await texts_to(twilio, PHONE)
    assert text["Body"].startswith("Acme Builders: Your permit arrived.")
    assert "Reply to this text or at http://portico.test/portal/messages" in text["Body"]
    await settled(chat)
    assert len(twilio.to(PHONE)) == 1
    async with chat.sessions() as session:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert [(r.channel, r.status) for r in rows] == [
        ("email", outbox_service.DELIVERED),
        ("sms", outbox_service.DELIVERED),
    ]

    # The client answers the text: it joins the thread, staff are told.
    _, reply = await post_sms(chat, PHONE, "Great, thanks!")
    assert reply == ACK
    assert [m["direction"] for m in await thread(chat, client_id)] == ["out", "in"]


async def test_after_stop_replies_are_emailed_only_and_nothing_is_texted(chat, twilio):
    client_id = await new_client(chat)
    _, reply = await post_sms(chat, PHONE, "STOP")
    assert "unsubscribed" in reply
    await chat.api("POST", f"/clients/{client_id}/messages", 201, json={"body": "Quiet reply"})
    await wait_until(lambda: outbox(chat.sessions, "dana@client.test"))
    # Still heard after STOP, but not texted back, not even an acknowledgement.
    _, reply = await post_sms(chat, PHONE, "I still read email")
    assert reply == ""
    await settled(chat)
    assert twilio.to(PHONE) == []
    async with chat.sessions() as session:
        texts = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "sms"))
        )
    assert [r.message["to"] for r in texts] == [STAFF_PHONE]  # the notice of their message only
    assert [m["body"] for m in await thread(chat, client_id)] == [
        "Quiet reply",
        "I still read email",
    ]

    _, reply = await post_sms(chat, PHONE, "START")
    assert "resubscribed" in reply
    await chat.api("POST", f"/clients/{client_id}/messages", 201, json={"body": "Texted now"})
    [text] = await texts_to(twilio, PHONE)
    assert "Texted now" in text["Body"]


@pytest.fixture
async def night(settings, sessions, dev_env, twilio) -> AsyncIterator[Stack]:
    """Quiet hours covering the next two hours in the default time zone."""
    hour = datetime.now(ZoneInfo(settings.default_timezone)).hour
    quiet = f"{hour}-{(hour + 2) % 24}"
    async for stack in stack_with_fake(
        settings, sessions, dev_env.client, twilio, quiet_hours=quiet, **FAST_OUTBOX
    ):
        yield stack


async def test_a_reply_written_at_night_is_texted_after_the_quiet_hours(night, twilio):
    client_id = await new_client(night)
    await night.api("POST", f"/clients/{client_id}/messages", 201, json={"body": "Late reply"})
    await wait_until(lambda: outbox(night.sessions, "dana@client.test"))  # email: at once
    async with night.sessions() as session:
        sms_id = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.channel == "sms")
        )
    assert sms_id is not None
    handle = night.temporal.get_workflow_handle(f"message-{sms_id}")

    async def held():
        pending = (await handle.describe()).raw_description.pending_activities
        return next(
            (
                p
                for p in pending
                if p.activity_type.name == DELIVER_OUTBOX and p.last_failure.message
            ),
            None,
        )

    attempt = await wait_until(held)
    assert attempt.last_failure.application_failure_info.type == "QuietHours"
    wait = attempt.next_attempt_schedule_time.ToDatetime(UTC) - datetime.now(UTC)
    # at the end of the quiet hours, at its moment within the morning's spread
    spread = timedelta(minutes=night.settings.quiet_hours_spread_minutes)
    assert timedelta(minutes=50) < wait <= timedelta(hours=2) + spread
    assert twilio.to(PHONE) == []
    # Staff notices are not held: staff asked for them.
    _, reply = await post_sms(night, PHONE, "Thanks")
    assert reply == ACK
    await texts_to(twilio, STAFF_PHONE)
    await handle.terminate("test over")
