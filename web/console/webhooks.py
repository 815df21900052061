"""Webhook endpoints in the console (`/staff/webhooks`, admins only; CONTRACT section 11): the
list, the form that adds one and shows its signing secret once, each endpoint's delivery log
with "Retry" for failed deliveries, and deletion behind a confirmation page (no JavaScript)."""

from __future__ import annotations

import binascii
from typing import Any

from aiohttp import web

from portico.errors import Conflict, Invalid, NotFound
from portico.integration_schemas import (
    ALL_EVENTS,
    EVENT_TYPES,
    WebhookIn,
)
from portico.services.webhooks import FAILED, seal, unseal
from web.api.integrations import WEBHOOKS
from web.console.common import FieldErrors, checked_form, path_int, render, signed_in, validated
from web.http import cookies
from web.http.keys import SETTINGS

routes = web.RouteTableDef()
EVENT_HINTS = {
    "approval.sent": "a request went out",
    "approval.viewed": "an approver opened it for the first time",
    "approval.partially_approved": "an approver approved, others still have to",
    "approval.approved": "approved, with the signed PDF's SHA-256 and link",
    "approval.declined": "an approver declined, with the reason",
    "approval.expired": "the deadline passed",
    "approval.voided": "staff voided it",
    "invoice.sent": "an invoice was created",
    "invoice.paid": "an invoice became paid",
    "invoice.reopened": "a paid invoice is payable again",
    "payment.succeeded": "a payment arrived",
    "payment.refunded": "a payment was refunded",
}
assert tuple(EVENT_HINTS) == EVENT_TYPES
URL_HINT = "Enter an absolute http:// or https:// URL, such as https://crm.example.com/portico."
NOTICES = {
    "deleted": "The endpoint was deleted: it gets nothing more.",
    "retried": "The delivery is being sent again, with the same webhook-id.",
}
MAX_EVENT_ID = 40
SECRET_COOKIE = "portico_new_webhook"  # `__Host-portico_new_webhook` behind https
SECRET_SECONDS = 300


def form_events(values: list[str]) -> list[str]:
    """The checked events: ["*"] when "All events" is checked, else in the documented order."""
    if ALL_EVENTS in values:
        return [ALL_EVENTS]
    return [e for e in EVENT_TYPES if e in values]


def friendly(errors: FieldErrors) -> FieldErrors:
    """The schema's messages, worded for the form."""
    if "url" in errors:
        errors["url"] = URL_HINT
    if "events" in errors:
        errors["events"] = "Choose at least one event, or All events."
    return errors


async def list_page(
    request: web.Request,
    form: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    endpoints = (await request.app[WEBHOOKS].list_endpoints()).items
    return await render(
        request,
        "webhooks.html",
        {
            "title": "Webhooks",
            "section": "webhooks",
            "endpoints": endpoints,
            "event_hints": EVENT_HINTS,
            "all_events": ALL_EVENTS,
            "form": form or {"events": []},
            "errors": errors or {},
            "notice": NOTICES.get(request.query.get("done", "")),
        },
        status=status,
    )


@routes.get("/staff/webhooks")
async def show_webhooks(request: web.Request) -> web.Response:
    await signed_in(request, admin=True)
    return await list_page(request)


@routes.post("/staff/webhooks")
async def add_webhook(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    form = await checked_form(request, who)
    form["events"] = form_events([str(v) for v in (await request.post()).getall("events", [])])
    fields = {k: form.get(k) for k in ("url", "description")}
    data, errors = validated(WebhookIn, {**fields, "events": form["events"] or None})
    if data is None:
        return await list_page(request, form, friendly(errors), status=422)
    try:
        created = await request.app[WEBHOOKS].create_endpoint(data)
    except Invalid as err:  # an inside address (server-side request forgery)
        message = err.message
        if message.startswith("url"):
            message = "The URL" + message.removeprefix("url")
        return await list_page(request, form, {"url": message}, status=err.status)
    # Post/redirect/get, so a reload adds nothing; the secret rides along once, sealed, in a
    # short-lived cookie the endpoint's page reads and clears.
    response = web.HTTPSeeOther(f"/staff/webhooks/{created.id}")
    sealed = seal(request.app[SETTINGS].secret_key, f"{created.id}:{created.secret}")
    cookies.set_session(request, response, SECRET_COOKIE, sealed, max_age=SECRET_SECONDS)
    raise response


def shown_once(request: web.Request, endpoint_id: int) -> str | None:
    """The new endpoint's secret, if this browser just added it (see `add_webhook`)."""
    sealed = cookies.read_session(request, SECRET_COOKIE)
    if not sealed:
        return None
    try:
        found_id, _, secret = unseal(request.app[SETTINGS].secret_key, sealed).partition(":")
    except (ValueError, binascii.Error):
        return None
    return secret if found_id == str(endpoint_id) and secret.startswith("whsec_") else None


async def endpoint_page(
    request: web.Request,
    endpoint_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    hooks = request.app[WEBHOOKS]
    endpoint = await hooks.get_endpoint(endpoint_id)
    log = (await hooks.deliveries(endpoint_id)).items
    secret = shown_once(request, endpoint_id)
    response = await render(
        request,
        "webhook.html",
        {
            "title": f"Webhook {endpoint.url}",
            "section": "webhooks",
            "endpoint": endpoint,
            "deliveries": log,
            "failed": FAILED,
            "secret": secret,
            "error": error,
            "notice": NOTICES.get(request.query.get("done", "")),
        },
        status=status,
    )
    cookies.clear_session(request, response, SECRET_COOKIE)
    if secret:
        response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/staff/webhooks/{id:\\d+}")
async def show_webhook(request: web.Request) -> web.Response:
    await signed_in(request, admin=True)
    return await endpoint_page(request, path_int(request))


@routes.get("/staff/webhooks/{id:\\d+}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    await signed_in(request, admin=True)
    endpoint = await request.app[WEBHOOKS].get_endpoint(path_int(request))
    return await render(
        request,
        "webhook_delete.html",
        {"title": "Delete webhook", "section": "webhooks", "endpoint": endpoint},
    )


@routes.post("/staff/webhooks/{id:\\d+}/delete")
async def delete_webhook(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    await checked_form(request, who)
    await request.app[WEBHOOKS].delete_endpoint(path_int(request))
    raise web.HTTPSeeOther("/staff/webhooks?done=deleted")


@routes.post("/staff/webhooks/{id:\\d+}/deliveries/{event_id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    await checked_form(request, who)
    endpoint_id = path_int(request)
    event_id = request.match_info["event_id"]
    if len(event_id) > MAX_EVENT_ID:
        raise NotFound("There is nothing at this address.")
    try:
        await request.app[WEBHOOKS].retry(endpoint_id, event_id)
    except Conflict as err:  # delivered or still pending: not sent again
        return await endpoint_page(request, endpoint_id, error=err.message, status=err.status)
    raise web.HTTPSeeOther(f"/staff/webhooks/{endpoint_id}?done=retried")
