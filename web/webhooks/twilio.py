"""Inbound webhooks: Twilio Messaging (`POST /webhooks/twilio/sms`, CONTRACT section 5).

Twilio signs every request with the account's auth token over the URL *it* requested, which
is the public one (PORTICO_PUBLIC_URL) and not the address this process sees behind a proxy.
A message sid is processed once: Twilio may deliver the same message again.
"""

from __future__ import annotations

import logging

from aiohttp import web
from multidict import MultiDict
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bots import parse, sms
from portico.models import InboundMessage
from portico.settings import Settings
from web.http.keys import SERVICE, SESSIONS, SETTINGS
from web.http.portal_keys import MESSAGES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_BODY = 1600  # Twilio's own limit for one message


def signature_valid(settings: Settings, request: web.Request, params: MultiDict[str]) -> bool:
    """Check `X-Twilio-Signature` against the public URL of this request."""
    token = settings.twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = settings.public_url.rstrip("/") + request.raw_path  # raw_path keeps the query string
    return bool(RequestValidator(token).validate(url, params, signature))


def twiml(text: str | None) -> web.Response:
    response = MessagingResponse()
    if text:
        response.message(text)
    return web.Response(text=str(response), content_type="text/xml", charset="utf-8")


@routes.post("/webhooks/twilio/sms", name="twilio_sms")
async def twilio_sms(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    form = await request.post()
    params: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
    if not signature_valid(settings, request, params):
        raise web.HTTPForbidden(reason="Forbidden")
    sender = params.get("From", "").strip()
    body = params.get("Body", "")
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()[:64]
    if not sender:
        return twiml(None)
    sessions = request.app[SESSIONS]
    if sid:
        try:
            async with sessions() as session, session.begin():
                # The reply code is masked: it is a secret (it is logged hashed, in
                # sms_code_attempts, for the lockout).
                stored = parse.mask_code(body)[:MAX_BODY]
                session.add(InboundMessage(message_sid=sid, from_=sender[:64], body=stored))
        except IntegrityError:
            log.info("ignoring repeated Twilio message %s", sid)
            return twiml(None)
    try:
        reply = await sms.reply_to(
            request.app[SERVICE], request.app[MESSAGES], sender, body, sid or None
        )
    except Exception:
        if sid:  # not handled: let a redelivery of the same message try again
            async with sessions() as session, session.begin():
                await session.execute(
                    delete(InboundMessage).where(InboundMessage.message_sid == sid)
                )
        raise
    return twiml(reply)
