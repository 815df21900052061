"""The hand-off API (CONTRACT section 11) under /api/v1: webhook endpoints and their delivery
log, and the CSV exports. Bearer-authenticated like the rest of the staff API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date

from aiohttp import web

from portico.errors import Invalid, NotFound
from portico.integration_schemas import WebhookIn
from portico.services.exports import Exports
from portico.services.webhooks import Webhooks
from web.api.staff import answer, body, path_id
from web.http.keys import SESSIONS, SETTINGS, TEMPORAL

WEBHOOKS = web.AppKey("webhooks", Webhooks)
EXPORTS = web.AppKey("exports", Exports)
routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    """Mount the routes; after the database is set up (web/app.py), make every transaction's
    recorded webhook deliveries leave right after its commit."""
    app.cleanup_ctx.append(services)
    app.add_routes(routes)


async def services(app: web.Application) -> AsyncIterator[None]:
    hooks = Webhooks(app[SETTINGS], app[SESSIONS], app[TEMPORAL])
    hooks.attach()
    app[WEBHOOKS] = hooks
    app[EXPORTS] = Exports(app[SESSIONS])
    yield
    await hooks.close()


@routes.post("/api/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    data = await body(request, WebhookIn)
    return answer(await request.app[WEBHOOKS].create_endpoint(data), status=201)


@routes.get("/api/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    return answer(await request.app[WEBHOOKS].list_endpoints())


@routes.delete("/api/v1/webhooks/{id}")
async def delete_webhook(request: web.Request) -> web.Response:
    await request.app[WEBHOOKS].delete_endpoint(path_id(request))
    return web.Response(status=204)


@routes.get("/api/v1/webhooks/{id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    return answer(await request.app[WEBHOOKS].deliveries(path_id(request)))


@routes.post("/api/v1/webhooks/{id}/deliveries/{event_id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    event_id = request.match_info["event_id"]
    if len(event_id) > 40:
        raise NotFound(f"Webhook {endpoint_id} has no delivery of event {event_id[:40]}….")
    delivery = await request.app[WEBHOOKS].retry(endpoint_id, event_id)
    return answer(delivery, status=202)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def query_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if not ISO_DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError as err:
        raise Invalid(f"{name} must be a date, like 2025-01-31.") from err


def date_range(request: web.Request) -> tuple[date | None, date | None]:
    """`?from=&to=`: both optional, inclusive (from after to: nothing)."""
    return query_date(request, "from"), query_date(request, "to")


async def stream_csv(
    request: web.Request, name: str, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/api/v1/exports/invoices.csv")
async def export_invoices(request: web.Request) -> web.StreamResponse:
    rows = request.app[EXPORTS].invoices_csv(*date_range(request))
    return await stream_csv(request, "invoices.csv", rows)


@routes.get("/api/v1/exports/payments.csv")
async def export_payments(request: web.Request) -> web.StreamResponse:
    rows = request.app[EXPORTS].payments_csv(*date_range(request))
    return await stream_csv(request, "payments.csv", rows)
