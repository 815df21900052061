"""Clients (`/staff/clients`), a client's page with projects, approvals, invoices, service
agreements, the portal invitation and the message thread with its reply form, and an invoice's
page with manual payments (`/staff/invoices/{id}`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from portico import i18n
from portico.errors import PorticoError
from portico.message_schemas import BODY_LIMIT, form_problem, form_text
from portico.money import BadAmount, parse_cents
from portico.portal_schemas import PaymentIn
from portico.schemas import LOCALES, ClientIn, ProjectIn
from web.api.staff_portal import send_invite
from web.console.common import FieldErrors, checked_form, path_int, render, signed_in, validated
from web.console.keys import QUERIES
from web.http.agreement_keys import AGREEMENTS
from web.http.keys import SERVICE
from web.http.portal_keys import BILLING, MESSAGES, STORE

routes = web.RouteTableDef()
CLIENT_FIELDS = ("name", "email", "phone", "company", "locale", "timezone")
LANGUAGES = tuple(i18n.LANGUAGE_NAMES.items())  # the "Language" field (CONTRACT section 10)
ZONES = tuple(sorted(i18n.TIMEZONES))  # the "Time zone" field's suggestions
METHODS = (("check", "Check"), ("cash", "Cash"), ("bank_transfer", "Bank transfer"))
INVITE_DAYS = 7
MESSAGE_KEY = re.compile(r"[0-9a-f]{32}")
assert tuple(code for code, _ in LANGUAGES) == LOCALES


async def clients_page(
    request: web.Request, form: dict[str, Any], errors: FieldErrors, status: int = 200
) -> web.Response:
    return await render(
        request,
        "clients.html",
        {
            "title": "Clients",
            "section": "clients",
            "clients": await request.app[QUERIES].clients(),
            "form": form,
            "errors": errors,
            "languages": LANGUAGES,
            "zones": ZONES,
        },
        status=status,
    )


@routes.get("/staff/clients")
async def list_clients(request: web.Request) -> web.Response:
    await signed_in(request)
    return await clients_page(request, {}, {})


@routes.post("/staff/clients")
async def add_client(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    data, errors = validated(ClientIn, {k: form.get(k, "") for k in CLIENT_FIELDS})
    if data is None:
        return await clients_page(request, form, errors, status=422)
    client = await request.app[SERVICE].create_client(data)
    raise web.HTTPSeeOther(f"/staff/clients/{client.id}")


async def client_page(
    request: web.Request,
    client_id: int,
    *,
    errors: FieldErrors | None = None,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    client, projects = await request.app[QUERIES].client(client_id)
    approvals = await request.app[SERVICE].list_approvals(client_id=client_id)
    invoices = await request.app[BILLING].invoices.find(client_id=client_id)
    bookings = await request.app[STORE].list_bookings(client_id, None)
    thread = await request.app[MESSAGES].thread(client_id)
    agreements = await request.app[AGREEMENTS].views(client_id)
    notices = {
        "invited": f"A portal invitation was emailed to {client.email}.",
        "replied": "Your reply was sent to the client.",
        "agreement_cancelled": "The agreement was cancelled: nothing more is booked or reminded.",
        "agreement_not_cancelled": "The agreement could not be cancelled; its state is below.",
    }
    return await render(
        request,
        "client.html",
        {
            "title": client.name,
            "section": "clients",
            "client": client,
            "projects": projects,
            "approvals": approvals,
            "invoices": invoices,
            "bookings": bookings,
            "thread": thread,
            "message_limit": BODY_LIMIT,
            "message_key": uuid.uuid4().hex,  # a double click sends the reply once
            "agreements": agreements,
            "form": form or {},
            "errors": errors or {},
            "error": error,
            "notice": notices.get(request.query.get("done", "")),
        },
        status=status,
    )


@routes.get("/staff/clients/{id:\\d+}")
async def show_client(request: web.Request) -> web.Response:
    await signed_in(request)
    return await client_page(request, path_int(request))


@routes.post("/staff/clients/{id:\\d+}/projects")
async def add_project(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    client_id = path_int(request)
    await request.app[QUERIES].client(client_id)  # 404 for an unknown client
    data, errors = validated(ProjectIn, {"client_id": client_id, "name": form.get("name", "")})
    if data is None:
        return await client_page(request, client_id, errors=errors, form=form, status=422)
    await request.app[SERVICE].create_project(data)
    raise web.HTTPSeeOther(f"/staff/clients/{client_id}")


@routes.post("/staff/clients/{id:\\d+}/invite")
async def invite(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await checked_form(request, who)
    client_id = path_int(request)
    await request.app[QUERIES].client(client_id)
    try:
        await send_invite(request.app, client_id, INVITE_DAYS)
    except PorticoError as err:  # the portal is turned off
        return await client_page(request, client_id, error=err.message, status=err.status)
    raise web.HTTPSeeOther(f"/staff/clients/{client_id}?done=invited")


@routes.post("/staff/clients/{id:\\d+}/messages")
async def reply(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    client_id = path_int(request)
    await request.app[QUERIES].client(client_id)
    body = form_text(str(form.get("body", "")))
    problem = form_problem(body)
    if problem is not None:
        form = {**form, "body": body}
        return await client_page(
            request, client_id, errors={"body": problem}, form=form, status=422
        )
    key = str(form.get("key", ""))
    await request.app[MESSAGES].reply(
        client_id,
        body,
        channel="console",
        author=who.actor,
        dedupe_key=f"console:{client_id}:{key}" if MESSAGE_KEY.fullmatch(key) else None,
    )
    raise web.HTTPSeeOther(f"/staff/clients/{client_id}?done=replied#messages")


# --- invoices -------------------------------------------------------------------------------


async def invoice_page(
    request: web.Request,
    invoice_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    invoice = await request.app[BILLING].invoices.get(invoice_id)
    client = await request.app[QUERIES].client_of_project(invoice.project_id)
    return await render(
        request,
        "invoice.html",
        {
            "title": f"Invoice {invoice.number}",
            "section": "clients",
            "invoice": invoice,
            "client": client,
            "methods": METHODS,
            # One key per rendered form: sending it twice (a double click, a retry after an
            # error) books the payment once.
            "idempotency_key": f"console-{uuid.uuid4().hex}",
            "form": form or {},
            "errors": errors or {},
            "notice": "The payment was recorded." if request.query.get("done") else None,
        },
        status=status,
    )


@routes.get("/staff/invoices/{id:\\d+}")
async def show_invoice(request: web.Request) -> web.Response:
    await signed_in(request)
    return await invoice_page(request, path_int(request))


@routes.post("/staff/invoices/{id:\\d+}/payments")
async def record_payment(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    invoice_id = path_int(request)
    errors: FieldErrors = {}
    fields: dict[str, Any] = {"method": form.get("method", ""), "reference": form.get("reference")}
    try:
        fields["amount_cents"] = parse_cents(str(form.get("amount", "")))
    except BadAmount as err:
        errors["amount"] = str(err)
    data, invalid = validated(PaymentIn, fields)
    errors.update({("amount" if k == "amount_cents" else k): v for k, v in invalid.items()})
    if errors or data is None:
        return await invoice_page(request, invoice_id, form=form, errors=errors, status=422)
    try:
        await request.app[BILLING].manual.record(
            invoice_id,
            data,
            idempotency_key=str(form.get("idempotency_key") or "") or None,
            actor=who.actor,
        )
    except PorticoError as err:
        field = "amount" if err.status == 422 else ""
        return await invoice_page(
            request, invoice_id, form=form, errors={field: err.message}, status=err.status
        )
    raise web.HTTPSeeOther(f"/staff/invoices/{invoice_id}?done=paid")
