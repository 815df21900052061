"""A local stand-in for Twilio's REST API (Messages resource), and helpers to send the portal
webhooks signed the way Twilio signs them."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from xml.etree import ElementTree

from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from portico.settings import Settings
from tests.conftest import Stack, start_stack

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-test-auth-token"
TWILIO_NUMBER = "+15550009999"
STAFF_PHONE = "+15550199999"
WEBHOOK = "/webhooks/twilio/sms"


@dataclass
class FakeTwilio:
    """Records every `Messages.json` POST and answers like Twilio; numbers in `reject` get
    Twilio's 400 error with the given code (e.g. 21610: unsubscribed recipient); while `down`,
    every message gets a 503 (counted in `refused`)."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    messages: list[dict[str, str]] = field(default_factory=list)
    reject: dict[str, int] = field(default_factory=dict)
    down: bool = False
    refused: int = 0
    server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def to(self, number: str) -> list[dict[str, str]]:
        return [m for m in self.messages if m["To"] == number]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create_message)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def create_message(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if (
            request.match_info["sid"] != self.account_sid
            or request.headers.get("Authorization") != f"Basic {expected}"
        ):
            return self.error(401, 20003, "Authenticate")
        if self.down:
            self.refused += 1
            return self.error(503, 20503, "Service unavailable")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("To") in self.reject:
            return self.error(
                400, self.reject[form["To"]], "Attempt to send to unsubscribed recipient"
            )
        if not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return self.error(400, 21602, "Message body is required.")
        self.messages.append(form)
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
                },
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )

    def error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )


def sms_settings(settings: Settings, fake: FakeTwilio, **extra: Any) -> Settings:
    """Settings with Twilio pointed at the fake, one staff phone and no quiet hours."""
    return settings.model_copy(
        update={
            "twilio_account_sid": fake.account_sid,
            "twilio_auth_token": fake.auth_token,
            "twilio_from_number": TWILIO_NUMBER,
            "twilio_api_base": fake.base_url,
            "staff_phones_value": STAFF_PHONE,
            "quiet_hours": "off",
            **extra,
        }
    )


async def running_fake() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def stack_with_fake(
    settings: Settings, sessions: Any, client: Any, fake: FakeTwilio, **extra: Any
) -> AsyncIterator[Stack]:
    """Web + worker on the dev server, with Twilio pointed at the fake."""
    async for stack in start_stack(sms_settings(settings, fake, **extra), sessions, client):
        yield stack


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def inbound(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    """The form Twilio posts for one incoming message."""
    message_sid = sid or new_sid()
    return {
        "ToCountry": "US",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "Body": body,
        "To": TWILIO_NUMBER,
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


async def post_sms(
    stack: Stack,
    sender: str,
    body: str,
    sid: str | None = None,
    *,
    form: dict[str, str] | None = None,
    signature: str | None = None,
    path: str = WEBHOOK,
) -> tuple[int, str]:
    """POST one inbound message to the webhook, signed for the public URL; (status, reply)."""
    form = form or inbound(sender, body, sid)
    if signature is None:
        signature = sign(stack.settings.public_url.rstrip("/") + path, form)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = await stack.http.post(path, data=form, headers=headers)
    text = await response.text()
    if response.status != 200:
        return response.status, text
    assert response.content_type == "text/xml", response.content_type
    return response.status, reply_text(text)


def reply_text(xml: str) -> str:
    """The text of the TwiML reply ('' for an empty <Response/>)."""
    root = ElementTree.fromstring(xml)
    assert root.tag == "Response"
    return " ".join((m.text or "") for m in root.iter("Message"))
