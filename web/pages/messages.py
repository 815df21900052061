"""The client's message thread in the portal, `/portal/messages` (CONTRACT section 14).

A plain HTML form (works with JavaScript off): a POST records the message and the staff
notices in one transaction and answers 303 back to the thread. Each rendered form carries a
random key, so sending it twice (a double click, a resubmitted form) records one message.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from portico.errors import NotFound
from portico.message_schemas import BODY_LIMIT, form_problem, form_text
from portico.services.portal_auth import PortalIdentity
from web.http.portal_keys import MESSAGES, STORE
from web.http.portal_session import checked_form, signed_in
from web.pages.portal import render

routes = web.RouteTableDef()
FORM_KEY = re.compile(r"[0-9a-f]{32}")


async def messages_shown(request: web.Request) -> PortalIdentity:
    """The signed-in client, while the portal shows its Messages section (else 404)."""
    who = await signed_in(request)
    if not (await request.app[STORE].portal_settings()).show_messages:
        raise NotFound("There is nothing at this address.")
    return who


async def thread_page(
    request: web.Request,
    who: PortalIdentity,
    *,
    body: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    view = await request.app[MESSAGES].thread(who.client_id)
    return await render(
        request,
        "messages.html",
        {
            "title": "Messages",
            "view": view,
            "body": body,
            "error": error,
            "limit": BODY_LIMIT,
            "key": uuid.uuid4().hex,
            "sent": request.query.get("sent") == "1" and error is None,
        },
        status=status,
    )


@routes.get("/portal/messages")
async def messages_page(request: web.Request) -> web.Response:
    return await thread_page(request, await messages_shown(request))


@routes.post("/portal/messages")
async def send_message(request: web.Request) -> web.Response:
    who = await messages_shown(request)
    form = await checked_form(request, who)
    body = form_text(form.get("body", ""))
    problem = form_problem(body)
    if problem is not None:
        return await thread_page(request, who, body=body, error=problem, status=422)
    key = form.get("key", "")
    await request.app[MESSAGES].from_client(
        who.client_id,
        body,
        channel="portal",
        author="client",
        dedupe_key=f"portal:{who.client_id}:{key}" if FORM_KEY.fullmatch(key) else None,
    )
    raise web.HTTPSeeOther("/portal/messages?sent=1#latest")
