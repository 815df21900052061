"""Staff API: a client's message thread, `GET`/`POST /api/v1/clients/{id}/messages`
(CONTRACT section 14). A POST is a reply from the business, recorded with the email (and SMS)
to the client in one transaction; `Idempotency-Key` makes a retried POST record it once."""

from __future__ import annotations

import hashlib

from aiohttp import web

from portico.message_schemas import MessageIn, MessageListOut
from portico.services.messages import message_out
from web.api.staff import answer, body, path_id
from web.http.portal_keys import MESSAGES

routes = web.RouteTableDef()


@routes.get("/api/v1/clients/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    thread = await request.app[MESSAGES].thread(path_id(request))
    return answer(MessageListOut(items=[message_out(m) for m in thread.messages]))


@routes.post("/api/v1/clients/{id}/messages")
async def reply(request: web.Request) -> web.Response:
    client_id = path_id(request)
    data = await body(request, MessageIn)
    key = request.headers.get("Idempotency-Key", "").strip()
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]
    message = await request.app[MESSAGES].reply(
        client_id,
        data.body,
        channel="api",
        author="api",
        dedupe_key=f"api:{client_id}:{digest}" if key else None,
    )
    return answer(message_out(message), status=201)
