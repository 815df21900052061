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
    RetainageReleaseIn,
    ServiceRequestListOut,
)
from portico.services.billing.shown import as_json, review_out
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
    invoice = await request.app[BILLING].invoices.create(data)
    return web.json_response(as_json(invoice), status=201)


@routes.get("/api/v1/invoices")
async def list_invoices(request: web.Request) -> web.Response:
    items = await request.app[BILLING].invoices.find(
        int_query(request, "client_id"), request.query.get("status") or None
    )
    return web.json_response({"items": [as_json(item) for item in items]})


@routes.get("/api/v1/invoices/{id}")
async def show_invoice(request: web.Request) -> web.Response:
    return web.json_response(as_json(await request.app[BILLING].invoices.get(path_id(request))))


@routes.get("/api/v1/invoices/{id}/invoice.pdf")
async def invoice_pdf(request: web.Request) -> web.Response:
    invoices = request.app[BILLING].invoices
    invoice, _ = await invoices.load(path_id(request))
    return web.Response(body=invoices.pdf_bytes(invoice), content_type="application/pdf")


@routes.post("/api/v1/invoices/{id}/payments")
async def record_payment(request: web.Request) -> web.Response:
    """A manual payment; an `Idempotency-Key` header makes a retry book it once (a 503 means
    booked but not yet announced: retry with the same key)."""
    data = await body(request, PaymentIn)
    result = await request.app[BILLING].manual.record(
        path_id(request), data, request.headers.get("Idempotency-Key"), actor="api"
    )
    return web.json_response(as_json(result), status=201)


@routes.post("/api/v1/invoices/{id}/void")
async def void_invoice(request: web.Request) -> web.Response:
    data = await body(request, InvoiceVoidIn, optional=True)
    voided = await request.app[BILLING].invoices.void(path_id(request), data.reason)
    return web.json_response(as_json(voided))


@routes.get("/api/v1/projects/{id}")
async def show_project(request: web.Request) -> web.Response:
    """The project, with the retainage held on its invoices (CONTRACT §12)."""
    return web.json_response(
        as_json(await request.app[BILLING].retainage.project(path_id(request)))
    )


@routes.post("/api/v1/projects/{id}/retainage/release")
async def release_retainage(request: web.Request) -> web.Response:
    """One invoice for all retainage held on the project (201); 409 `no_retainage_held` when
    nothing is (a second release, even a concurrent one, releases nothing new)."""
    data = await body(request, RetainageReleaseIn)
    invoice = await request.app[BILLING].retainage.release(path_id(request), data)
    return web.json_response(as_json(invoice), status=201)


@routes.get("/api/v1/payment-reviews")
async def payment_reviews(request: web.Request) -> web.Response:
    """Signed Stripe events flagged for staff (not what Portico asked for, or overpaid)."""
    reviews = await request.app[BILLING].invoices.payment_reviews(int_query(request, "invoice_id"))
    return web.json_response({"items": [as_json(review_out(r)) for r in reviews]})
