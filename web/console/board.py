"""The approvals board (`/staff`) and its live stream (`/staff/events`).

The board is a plain GET form (Status, Search) over a table, so it works without JavaScript.
With it, console.js opens a server-sent event stream for the rows on the page; the stream
polls those rows' status in the database every couple of seconds, so a change made through
any web replica or worker shows within seconds (nothing is learned from one process's memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from portico.schemas import known_id, parse_id
from portico.services.console import APPROVAL_STATUSES, WATCH_LIMIT
from portico.services.staff import StaffIdentity
from web.console.common import render, session_cookie, signed_in, status_label
from web.console.keys import QUERIES, STAFF_AUTH, STREAMS
from web.http.security import add_headers

routes = web.RouteTableDef()
POLL_SECONDS = 2.0  # between two database polls of an open board's live stream
RECHECK_SESSION_EVERY = 15  # polls between two checks that the session is still valid


async def board_page(request: web.Request, who: StaffIdentity) -> web.Response:
    status = request.query.get("status", "")
    if status not in APPROVAL_STATUSES:
        status = ""
    search = request.query.get("q", "").strip()[:200]
    rows = await request.app[QUERIES].board(status or None, search or None)
    return await render(
        request,
        "board.html",
        {
            "title": "Approvals",
            "section": "board",
            "rows": rows,
            "status": status,
            "search": search,
            "statuses": APPROVAL_STATUSES,
        },
    )


def watched_ids(raw: str) -> list[int]:
    ids: list[int] = []
    for part in raw.split(",")[:WATCH_LIMIT]:
        value = parse_id(part)
        if value is not None and known_id(value):
            ids.append(value)
    return ids


@routes.get("/staff/events")
async def events(request: web.Request) -> web.StreamResponse:
    """`status` events `{id, status, label}` for the approvals in `?ids=`: all of them first,
    then each change."""
    await signed_in(request)
    ids = watched_ids(request.query.get("ids", ""))
    response = EventSourceResponse()
    add_headers(request, response)  # the security headers, before the stream starts
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None
    request.app[STREAMS].add(task)
    try:
        await stream_statuses(request, response, ids)
    finally:
        request.app[STREAMS].discard(task)
    return response


async def stream_statuses(
    request: web.Request, response: EventSourceResponse, ids: list[int]
) -> None:
    queries, auth = request.app[QUERIES], request.app[STAFF_AUTH]
    known: dict[int, str] = {}
    polls = 0
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while response.is_connected():
            polls += 1
            if polls % RECHECK_SESSION_EVERY == 0 and (
                await auth.identify(session_cookie(request)) is None
            ):
                break  # signed out or removed meanwhile: the stream ends with the session
            for approval_id, status in (await queries.statuses(ids)).items():
                if known.get(approval_id) != status:
                    known[approval_id] = status
                    data = {"id": approval_id, "status": status, "label": status_label(status)}
                    await response.send(json.dumps(data), event="status")
            await asyncio.sleep(POLL_SECONDS)
