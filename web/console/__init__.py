"""The staff console `/staff` (CONTRACT section 9): the office's web app over the same
services as the staff API. Pages render from SQL; actions go through `Portico`, `Billing` and
`PortalStore`, with the signed-in member as the audit trail's actor (`staff:<email>`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from portico.services.console import ConsoleQueries
from portico.services.staff import StaffAuth
from web.console import agreements, approvals, auth, board, bookings, clients, settings, webhooks
from web.console.keys import QUERIES, STAFF_AUTH, STREAMS
from web.http.keys import SESSIONS


def setup(app: web.Application) -> None:
    """Mount the console (after the portal's setup: it uses the portal's services)."""
    app.cleanup_ctx.append(console_services)
    app.on_shutdown.append(close_streams)
    app[STREAMS] = set()
    for module in (auth, board, approvals, clients, bookings, settings, webhooks, agreements):
        app.add_routes(module.routes)


async def console_services(app: web.Application) -> AsyncIterator[None]:
    app[STAFF_AUTH] = StaffAuth(app[SESSIONS])
    app[QUERIES] = ConsoleQueries(app[SESSIONS])
    yield


async def close_streams(app: web.Application) -> None:
    """End open live boards, so shutting down does not wait on them."""
    tasks = app[STREAMS]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
