"""Staff API routes (`/api/v1`, bearer key as the rest) for the client portal and billing:
invitations, bookings, service requests, portal settings, invoices, manual payments and the
Stripe events flagged for review."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from portico.errors import Invalid
from portico.invoices import review_json
from portico.portal_schemas import (
    BookingIn,
    BookingUpdateIn,
    InviteIn,
    InvoiceIn,
    InvoiceVoidIn,
    PaymentIn,
    PortalSettingsIn,
    ProjectUpdateIn,
)
from web.keys import SETTINGS
from web.portal_keys import AUTH, BILLING, MAILER, STORE
from web.staff_api import body, path_id, query_id
from workflows.types import EmailMessage

routes = web.RouteTableDef()


def int_query(request: web.Request, name: str) -> int | None:
    return query_id(request, name)


@routes.post("/api/v1/clients/{id}/invite")
async def invite_client(request: web.Request) -> web.Response:
    """Email the client a portal invitation: a single-use magic link (default 7 days)."""
    data = await body(request, InviteIn, optional=True)
    settings = request.app[SETTINGS]
    link = await request.app[AUTH].issue_invite(
        path_id(request), timedelta(days=data.expires_in_days)
    )
    days = data.expires_in_days
    sent = await request.app[MAILER].send(
        EmailMessage(
            dedupe_key=f"portal-invite:{link.token[:12]}:{link.client.id}",
            to=link.client.email,
            template="portal_sign_in",
            context={
                "company_name": settings.company_name,
                "client_name": link.client.name,
                "link_url": settings.url(f"/portal/link/{link.token}"),
                "expires_in": f"in {days} day{'s' if days != 1 else ''}",
                "invite": True,
            },
        )
    )
    return web.json_response(
        {
            "client_id": link.client.id,
            "email": link.client.email,
            "sent": sent,
            "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"),
        },
        status=202,
    )


@routes.patch("/api/v1/projects/{id}")
async def update_project(request: web.Request) -> web.Response:
    data = await body(request, ProjectUpdateIn)
    return web.json_response(await request.app[STORE].update_project(path_id(request), data))


@routes.post("/api/v1/bookings")
async def create_booking(request: web.Request) -> web.Response:
    data = await body(request, BookingIn)
    return web.json_response(await request.app[STORE].create_booking(data), status=201)


@routes.get("/api/v1/bookings")
async def list_bookings(request: web.Request) -> web.Response:
    since = request.query.get("since")
    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError as err:
        raise Invalid("since must be a date, like 2025-01-31.") from err
    items = await request.app[STORE].list_bookings(int_query(request, "client_id"), since_date)
    return web.json_response({"items": items})


@routes.patch("/api/v1/bookings/{id}")
async def update_booking(request: web.Request) -> web.Response:
    data = await body(request, BookingUpdateIn)
    return web.json_response(await request.app[STORE].update_booking(path_id(request), data))


@routes.get("/api/v1/service-requests")
async def list_service_requests(request: web.Request) -> web.Response:
    items = await request.app[STORE].list_service_requests(
        int_query(request, "client_id"), request.query.get("status") or None
    )
    return web.json_response({"items": items})


@routes.get("/api/v1/portal/settings")
async def get_portal_settings(request: web.Request) -> web.Response:
    from portico.portal import portal_settings_json

    return web.json_response(portal_settings_json(await request.app[STORE].portal_settings()))


@routes.patch("/api/v1/portal/settings")
@routes.put("/api/v1/portal/settings")
async def update_portal_settings(request: web.Request) -> web.Response:
    data = await body(request, PortalSettingsIn)
    return web.json_response(await request.app[STORE].update_portal_settings(data))


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


# --- OpenAPI --------------------------------------------------------------------------------

MODELS: list[type[BaseModel]] = [
    InviteIn,
    ProjectUpdateIn,
    BookingIn,
    BookingUpdateIn,
    PortalSettingsIn,
    InvoiceIn,
    PaymentIn,
    InvoiceVoidIn,
]


def openapi_paths(op: Any, json_body: Any) -> dict[str, Any]:
    """The paths above, built with openapi.py's `_op` and `_json` helpers."""
    query = [
        {"name": "client_id", "in": "query", "required": False, "schema": {"type": "integer"}},
        {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    return {
        "/clients/{id}/invite": {
            "post": op(
                "Email a portal invitation (magic link)",
                body=json_body(InviteIn),
                ok=202,
                params=["id"],
                optional_body=True,
            )
        },
        "/projects/{id}": {
            "patch": op(
                "Change a project (status active/complete)",
                body=json_body(ProjectUpdateIn),
                params=["id"],
            )
        },
        "/bookings": {
            "post": op("Create a booking, appointment or job", body=json_body(BookingIn), ok=201),
            "get": {**op("List bookings"), "parameters": query[:1]},
        },
        "/bookings/{id}": {
            "patch": op("Change a booking", body=json_body(BookingUpdateIn), params=["id"])
        },
        "/service-requests": {
            "get": {**op("Service requests sent from the portal"), "parameters": query}
        },
        "/portal/settings": {
            "get": op("Portal settings"),
            "patch": op("Change portal settings", body=json_body(PortalSettingsIn)),
        },
        "/invoices": {
            "post": op(
                "Create an invoice (PDF rendered, reminders scheduled)",
                body=json_body(InvoiceIn),
                ok=201,
            ),
            "get": {**op("List invoices"), "parameters": query},
        },
        "/invoices/{id}": {"get": op("One invoice with its payments", params=["id"])},
        "/invoices/{id}/invoice.pdf": {
            "get": op("The invoice PDF", ok_type="application/pdf", params=["id"])
        },
        "/invoices/{id}/payments": {
            "post": op(
                "Record a manual payment (check, cash, bank transfer)",
                body=json_body(PaymentIn),
                ok=201,
                params=["id"],
            )
        },
        "/payment-reviews": {
            "get": {
                **op("Stripe events flagged for staff (mismatched, unknown or overpaid)"),
                "parameters": [
                    {
                        "name": "invoice_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    }
                ],
            }
        },
        "/invoices/{id}/void": {
            "post": op(
                "Void an unpaid invoice",
                body=json_body(InvoiceVoidIn),
                params=["id"],
                optional_body=True,
            )
        },
    }
