"""Staff API routes (`/api/v1`, bearer key as the rest) for the client portal and billing:
invitations, bookings, service requests, portal settings, invoices, manual payments and the
Stripe events flagged for review."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from portico.errors import Invalid
from portico.portal_schemas import (
    BookingIn,
    BookingListOut,
    BookingUpdateIn,
    InviteIn,
    InvoiceIn,
    InvoiceVoidIn,
    PaymentIn,
    PortalSettingsIn,
    ProjectUpdateIn,
    ServiceRequestListOut,
)
from portico.services.billing import review_json
from portico.services.portal import portal_settings_out
from web.api.staff import answer, body, path_id, query_id
from web.http.portal_keys import AUTH, BILLING, STORE

routes = web.RouteTableDef()
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def int_query(request: web.Request, name: str) -> int | None:
    return query_id(request, name)


@routes.post("/api/v1/clients/{id}/invite")
async def invite_client(request: web.Request) -> web.Response:
    """Email the client a portal invitation: a single-use magic link (default 7 days), sent
    through the outbox (delivered once, retried while the relay is down)."""
    data = await body(request, InviteIn, optional=True)
    result = await send_invite(request.app, path_id(request), data.expires_in_days)
    return web.json_response(result, status=202)


async def send_invite(app: web.Application, client_id: int, days: int) -> dict[str, Any]:
    """Invite the client to the portal (the API and the console): the invitation is
    recorded in the outbox and its link minted when it is delivered."""
    invitation = await app[AUTH].invite(client_id, timedelta(days=days))
    return {
        "client_id": invitation.client.id,
        "email": invitation.client.email,
        "sent": True,  # accepted for delivery: it leaves once, even if the relay is down
        "expires_at": invitation.expires_at.isoformat().replace("+00:00", "Z"),
    }


@routes.patch("/api/v1/projects/{id}")
async def update_project(request: web.Request) -> web.Response:
    data = await body(request, ProjectUpdateIn)
    return answer(await request.app[STORE].update_project(path_id(request), data))


@routes.post("/api/v1/bookings")
async def create_booking(request: web.Request) -> web.Response:
    data = await body(request, BookingIn)
    return answer(await request.app[STORE].create_booking(data), status=201)


@routes.get("/api/v1/bookings")
async def list_bookings(request: web.Request) -> web.Response:
    since = request.query.get("since")
    since_date = None
    if since is not None:  # YYYY-MM-DD only, as the OpenAPI document says (`format: date`)
        try:
            if not ISO_DATE.fullmatch(since):
                raise ValueError(since)
            since_date = date.fromisoformat(since)
        except ValueError as err:
            raise Invalid("since must be a date, like 2025-01-31.") from err
    items = await request.app[STORE].list_bookings(int_query(request, "client_id"), since_date)
    return answer(BookingListOut(items=items))


@routes.patch("/api/v1/bookings/{id}")
async def update_booking(request: web.Request) -> web.Response:
    data = await body(request, BookingUpdateIn)
    return answer(await request.app[STORE].update_booking(path_id(request), data))


@routes.get("/api/v1/service-requests")
async def list_service_requests(request: web.Request) -> web.Response:
    items = await request.app[STORE].list_service_requests(
        int_query(request, "client_id"), request.query.get("status") or None
    )
    return answer(ServiceRequestListOut(items=items))


@routes.get("/api/v1/portal/settings")
async def get_portal_settings(request: web.Request) -> web.Response:
    return answer(portal_settings_out(await request.app[STORE].portal_settings()))


@routes.patch("/api/v1/portal/settings")
@routes.put("/api/v1/portal/settings")
async def update_portal_settings(request: web.Request) -> web.Response:
    data = await body(request, PortalSettingsIn)
    return answer(await request.app[STORE].update_portal_settings(data))


@routes.post("/api/v1/invoices")
async def create_invoice(request: web.Request) -> web.Response:
    data = await body(request, InvoiceIn)
    return web.json_response(await request.app[BILLING].create_invoice(data), status=201)


@routes.get("/api/v1/invoices")
async def list_invoices(request: web.Request) -> web.Response:
    items = await request.app[BILLING].list_invoices(
        int_query(request, "client_id"), request.query.get("status") or None
    )
    return web.json_response({"items": items})


@routes.get("/api/v1/invoices/{id}")
async def show_invoice(request: web.Request) -> web.Response:
    return web.json_response(await request.app[BILLING].get_invoice(path_id(request)))


@routes.get("/api/v1/invoices/{id}/invoice.pdf")
async def invoice_pdf(request: web.Request) -> web.Response:
    billing = request.app[BILLING]
    invoice, _ = await billing.load(path_id(request))
    return web.Response(body=billing.pdf_bytes(invoice), content_type="application/pdf")


@routes.post("/api/v1/invoices/{id}/payments")
async def record_payment(request: web.Request) -> web.Response:
    """A manual payment; an `Idempotency-Key` header makes a retry book it once (a 503 means
    booked but not yet announced: retry with the same key)."""
    data = await body(request, PaymentIn)
    result = await request.app[BILLING].record_manual_payment(
        path_id(request), data, request.headers.get("Idempotency-Key"), actor="api"
    )
    return web.json_response(result, status=201)


@routes.post("/api/v1/invoices/{id}/void")
async def void_invoice(request: web.Request) -> web.Response:
    data = await body(request, InvoiceVoidIn, optional=True)
    return web.json_response(await request.app[BILLING].void_invoice(path_id(request), data.reason))


@routes.get("/api/v1/payment-reviews")
async def payment_reviews(request: web.Request) -> web.Response:
    """Signed Stripe events flagged for staff (not what Portico asked for, or overpaid)."""
    reviews = await request.app[BILLING].payment_reviews(int_query(request, "invoice_id"))
    return web.json_response({"items": [review_json(r) for r in reviews]})
