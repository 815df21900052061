"""The client portal `/portal` (CONTRACT §4): magic-link sign-in, dashboard, projects, approvals,
bookings, shared files, invoices and payments, contact details and service requests.

Every page reads only the signed-in client's rows (another client's ids are 404). Forms carry a
CSRF token bound to the session (or, before sign-in, to a pre-session cookie or the link).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError

from portico import i18n, images
from portico.errors import Forbidden, NotFound
from portico.i18n import N_
from portico.i18n import gettext as _
from portico.models import BookingPhoto
from portico.money import format_money
from portico.portal_schemas import ContactIn, ServiceRequestIn
from portico.schemas import known_id, parse_id
from portico.services.approvals import SIGNED_COPY_PREPARING as PREPARING
from portico.services.approvals import signed_pdf_path
from portico.services.billing.links import pay_token
from portico.services.portal import COMPLETE_STATUSES
from portico.services.portal_auth import (
    PortalIdentity,
    RateLimited,
)
from web.api.photos import image_response
from web.http import sign_in
from web.http.agreement_keys import AGREEMENTS
from web.http.keys import SETTINGS
from web.http.portal_keys import AUTH, BILLING, PHOTOS, STORE
from web.http.portal_session import (
    IDENTITY,
    checked_form,
    clear_session_cookie,
    csrf_for,
    current,
    session_cookie,
    set_session_cookie,
    signed_in,
)
from web.pages import pay as payments

routes = web.RouteTableDef()
PRE_COOKIE = "portico_pre"  # pre-sign-in CSRF binding for the email form
SENT_MESSAGE = N_("If that address has an account, we've sent a sign-in link.")
SIGN_IN_FORM = sign_in.SignInForm(PRE_COOKIE, "pre:", "/portal")


# --- helpers ------------------------------------------------------------------------------


def path_int(request: web.Request, name: str = "id") -> int:
    value = parse_id(request.match_info[name])
    if value is None or not known_id(value):
        raise NotFound(_("There is nothing at this address."))
    return value


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    settings = request.app[SETTINGS]
    portal_settings = await request.app[STORE].portal_settings()
    who = request.get(IDENTITY)
    base = {
        "company_name": settings.company_name,
        "portal": portal_settings,
        "signed_in": who is not None,
        "csrf": csrf_for(request, who) if who else None,
        "money": format_money,
        "kind_label": i18n.kind_label,
        "status_label": status_label,
        "today": datetime.now(UTC).date(),
    }
    return aiohttp_jinja2.render_template(
        f"portal/{template}", request, {**base, **context}, status=status
    )


# What the portal calls each status of an approval, approver, invoice and booking.
STATUS_LABELS = {
    "pending": N_("Pending"),
    "partially_approved": N_("Partially approved"),
    "approved": N_("Approved"),
    "declined": N_("Declined"),
    "expired": N_("Expired"),
    "void": N_("Void"),
    "waiting": N_("Waiting"),
    "viewed": N_("Viewed"),
    "skipped": N_("Skipped"),
    "open": N_("Open"),
    "partially_paid": N_("Partially paid"),
    "paid": N_("Paid"),
    "scheduled": N_("Scheduled"),
    "confirmed": N_("Confirmed"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
}


def status_label(status: str) -> str:
    english = STATUS_LABELS.get(status)
    return _(english) if english else status.replace("_", " ").capitalize()


FIELD_LABELS = {
    "name": N_("Name"),
    "email": N_("Email"),
    "phone": N_("Phone"),
    "company": N_("Company"),
    "address": N_("Address"),
    "description": N_("What do you need?"),
    "preferred_date": N_("Preferred date"),
    "project_id": N_("Project"),
}


def form_errors(err: ValidationError) -> str:
    """The form's mistakes as sentences in the reader's language (pydantic writes English)."""
    sentences = []
    for error in err.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = _(FIELD_LABELS[name]) if name in FIELD_LABELS else name
        kind, limits = error["type"], error.get("ctx") or {}
        if kind in ("missing", "string_too_short"):
            sentences.append(_("%(field)s is required.", field=field))
        elif kind == "string_too_long":
            sentences.append(
                _(
                    "%(field)s is too long (at most %(limit)s characters).",
                    field=field,
                    limit=limits.get("max_length", ""),
                )
            )
        elif kind.startswith("date"):
            sentences.append(_("%(field)s is not a valid date.", field=field))
        else:
            sentences.append(_("%(field)s is not valid.", field=field))
    return " ".join(sentences)


def validated(model: type[BaseModel], form: dict[str, Any]) -> tuple[Any, str | None]:
    """(model or None, error sentence): empty form fields count as not given."""
    data = {k: v for k, v in form.items() if v != "" and k != "csrf"}
    try:
        return model.model_validate(data), None
    except ValidationError as err:
        return None, form_errors(err)


# --- sign-in --------------------------------------------------------------------------------


@routes.get("/portal", name="portal")
async def portal_home(request: web.Request) -> web.Response:
    who = await current(request)
    if who is not None:
        return await dashboard(request, who)
    response = await sign_in_page(request, expired=bool(session_cookie(request)))
    clear_session_cookie(request, response)
    return response


async def sign_in_page(
    request: web.Request,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    expired: bool = False,
) -> web.Response:
    portal_settings = await request.app[STORE].portal_settings()
    context = {
        "title": _("Sign in"),
        "enabled": portal_settings.enabled,
        "error": error,
        "email": email,
        "expired": expired,
        "signed_out": request.query.get("signed_out") == "1",
    }
    return await SIGN_IN_FORM.page(request, render, context, status)


@routes.post("/portal/sign-in")
async def request_link(request: web.Request) -> web.Response:
    sent = await SIGN_IN_FORM.submitted(request)
    if not sent.fresh:
        return await sign_in_page(request, 400, _(sign_in.EXPIRED_FORM), email=sent.email)
    if not await request.app[AUTH].enabled():
        return await sign_in_page(request, 409)
    if not sent.valid_email:
        return await sign_in_page(request, 422, _(sign_in.INVALID_EMAIL), sent.email)
    try:
        await request.app[AUTH].request_sign_in(sent.email, sign_in.client_ip(request))
    except RateLimited as err:
        return await sign_in_page(request, 429, err.message, sent.email)
    return await render(
        request, "message.html", {"title": _("Check your email"), "message": _(SENT_MESSAGE)}
    )


def invalid_link_page() -> NotFound:
    return NotFound(
        _(
            "This sign-in link has expired or has already been used. "
            "Please request a new one from the sign-in page."
        )
    )


@routes.get("/portal/link/{token}")
async def link_page(request: web.Request) -> web.Response:
    """Shows a Sign in button; reading the page (or a mail scanner's prefetch) uses nothing."""
    return await sign_in.link_page(request, render, request.app[AUTH].peek, invalid_link_page)


@routes.post("/portal/link/{token}")
async def use_link(request: web.Request) -> web.Response:
    session_id = await sign_in.use_link(request, request.app[AUTH].consume, invalid_link_page)
    response = web.HTTPSeeOther("/portal")
    set_session_cookie(request, response, session_id)
    raise response


@routes.post("/portal/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    who = await current(request)
    if who is not None:
        await checked_form(request, who)
        await request.app[AUTH].end(session_cookie(request))
    response = web.HTTPSeeOther("/portal?signed_out=1")
    clear_session_cookie(request, response)
    raise response


# --- pages ----------------------------------------------------------------------------------


async def dashboard(request: web.Request, who: PortalIdentity) -> web.Response:
    store = request.app[STORE]
    view = await store.overview(who.client_id)
    tab = "complete" if request.query.get("tab") == "complete" else "active"
    projects = [p for p in view.projects if (p.status in COMPLETE_STATUSES) == (tab == "complete")]
    today = datetime.now(UTC).date()
    portal_settings = await store.portal_settings()
    agreements = (
        await request.app[AGREEMENTS].views(who.client_id)
        if portal_settings.show_agreements
        else []
    )
    return await render(
        request,
        "dashboard.html",
        {
            "agreements": agreements,
            "title": _("Your account"),
            "view": view,
            "tab": tab,
            "projects": projects,
            "upcoming": [b for b in view.bookings if b.date >= today],
            "past": [b for b in view.bookings if b.date < today][-5:],
            "open_invoices": [i for i in view.invoices if i.status in ("open", "partially_paid")],
            "pending_approvals": [a for a in view.approvals if a.signable],
            "others_turn": [a for a in view.approvals if a.open and not a.signable],
        },
    )


@routes.get("/portal/projects/{id}")
async def project_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    view = await request.app[STORE].overview(who.client_id, project_id=path_int(request))
    return await render(
        request,
        "project.html",
        {"title": view.projects[0].name, "view": view, "project": view.projects[0]},
    )


@routes.get("/portal/approvals/{id}")
async def approval_page(request: web.Request) -> web.Response:
    """A request of the client's projects, read-only: its status and whose turn it is."""
    who = await signed_in(request)
    row = await request.app[STORE].approval(who.client_id, path_int(request))
    return await render(request, "approval.html", {"title": row.document.title, "row": row})


@routes.get("/portal/approvals/{id}/sign")
async def approval_sign(request: web.Request) -> web.Response:
    """Open the client's own signing page with a freshly minted, short-lived token; a request
    the client is not an approver of gets its read-only page with a 403 and no token."""
    who = await signed_in(request)
    store = request.app[STORE]
    row = await store.approval(who.client_id, path_int(request))
    try:
        token = await store.signing_token(who.client_id, who.session_hash, row)
    except Forbidden as err:
        context = {"title": row.document.title, "row": row, "refused": err.message}
        return await render(request, "approval.html", context, status=err.status)
    raise web.HTTPSeeOther(f"/s/{token}")


@routes.get("/portal/approvals/{id}/signed.pdf")
async def approval_signed_pdf(request: web.Request) -> web.Response:
    who = await signed_in(request)
    row = await request.app[STORE].approval(who.client_id, path_int(request))
    approval = row.approval
    if approval.status != "approved" or (
        approval.signed_pdf_error and not approval.signed_pdf_path
    ):
        raise NotFound(_("The signed copy is available once everyone has approved."))
    path = signed_pdf_path(approval, PREPARING)  # 202, refreshing, while it is being built
    data = request.app[BILLING].invoices.files.read(path)
    return pdf_response(data, f"{row.document.number}-signed.pdf")


@routes.get("/portal/files/{id}")
async def file_download(request: web.Request) -> web.Response:
    who = await signed_in(request)
    document = await request.app[STORE].document(who.client_id, path_int(request))
    data = request.app[BILLING].invoices.files.read(document.file_path)
    return pdf_response(
        data, f"{document.number}.pdf", download=bool(request.query.get("download"))
    )


@routes.post("/portal/files/{id}/share")
async def file_share(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await checked_form(request, who)
    store = request.app[STORE]
    document = await store.document(who.client_id, path_int(request))
    token, expires = await store.share_document(who.client_id, document.id)
    return await render(
        request,
        "share.html",
        {
            "title": _("Share link"),
            "what": f"{i18n.kind_label(document.kind)} {document.number}",
            "url": request.app[SETTINGS].url(f"/share/{token}"),
            "expires_at": expires,
        },
    )


@routes.get("/portal/bookings/{id}")
async def booking_page(request: web.Request) -> web.Response:
    """A booking; a job's page also shows its photos (the `portal_visible` ones)."""
    who = await signed_in(request)
    booking = await request.app[STORE].booking(who.client_id, path_int(request))
    photos = await request.app[PHOTOS].for_client(who.client_id, booking.id)
    return await render(
        request,
        "booking.html",
        {"title": booking.title, "booking": booking, "photos": [shown(p) for p in photos]},
    )


@dataclass(frozen=True)
class ShownPhoto:
    id: int
    caption: str | None
    thumbnail_width: int
    thumbnail_height: int


def shown(photo: BookingPhoto) -> ShownPhoto:
    width, height = images.fit((photo.width, photo.height), images.ImageLimits.thumbnail_side)
    return ShownPhoto(photo.id, photo.caption, width, height)


@routes.get("/portal/photos/{id}")
async def photo_image(request: web.Request) -> web.Response:
    who = await signed_in(request)
    photo = await request.app[PHOTOS].client_photo(who.client_id, path_int(request))
    return await image_response(request, photo)


@routes.get("/portal/photos/{id}/thumbnail")
async def photo_thumbnail(request: web.Request) -> web.Response:
    who = await signed_in(request)
    photo = await request.app[PHOTOS].client_photo(who.client_id, path_int(request))
    return await image_response(request, photo, thumbnail=True)


@routes.get("/portal/invoices/{id}")
async def invoice_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    invoice = await request.app[STORE].invoice(who.client_id, path_int(request))
    token = pay_token(request.app[SETTINGS].secret_key, invoice.id, invoice.pay_nonce)
    return await payments.invoice_view(request, token, in_portal=True)


@routes.get("/portal/invoices/{id}/pdf")
async def invoice_pdf(request: web.Request) -> web.Response:
    who = await signed_in(request)
    invoice = await request.app[STORE].invoice(who.client_id, path_int(request))
    data = request.app[BILLING].invoices.pdf_bytes(invoice)
    return pdf_response(data, f"invoice-{invoice.number}.pdf")


@routes.get("/portal/contact")
async def contact_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    client, address = await request.app[STORE].client(who.client_id)
    form = {
        "name": client.name,
        "phone": client.phone or "",
        "company": client.company or "",
        "address": address or "",
    }
    saved = request.query.get("saved") == "1"
    return await render(
        request,
        "contact.html",
        {"title": _("Contact details"), "client": client, "form": form, "saved": saved},
    )


@routes.post("/portal/contact")
async def contact_save(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    data, error = validated(ContactIn, {k: form.get(k, "") for k in ContactIn.model_fields})
    if data is None:
        client, _unused = await request.app[STORE].client(who.client_id)
        return await render(
            request,
            "contact.html",
            {"title": _("Contact details"), "client": client, "form": form, "error": error},
            status=422,
        )
    await request.app[STORE].update_contact(who.client_id, data)  # staff are told of changes
    raise web.HTTPSeeOther("/portal/contact?saved=1")


@routes.get("/portal/service-request")
async def service_request_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    store = request.app[STORE]
    client, address = await store.client(who.client_id)
    view = await store.overview(who.client_id)
    form = {
        "name": client.name,
        "email": client.email,
        "phone": client.phone or "",
        "company": client.company or "",
        "address": address or "",
        "project_id": request.query.get("project", ""),
    }
    return await render(
        request,
        "service_request.html",
        {"title": _("Request service"), "form": form, "projects": view.projects},
    )


@routes.post("/portal/service-request")
async def service_request_send(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    store = request.app[STORE]
    data, error = validated(
        ServiceRequestIn, {k: form.get(k, "") for k in ServiceRequestIn.model_fields}
    )
    if data is None:
        view = await store.overview(who.client_id)
        return await render(
            request,
            "service_request.html",
            {
                "title": _("Request service"),
                "form": form,
                "projects": view.projects,
                "error": error,
            },
            status=422,
        )
    await store.create_service_request(who.client_id, data)  # and the staff notices
    return await render(
        request,
        "message.html",
        {
            "title": _("Request sent"),
            "message": "Thank you: we received your request and will be in touch soon.",
            "back": True,
        },
    )


@routes.get("/share/{token}")
async def shared_file(request: web.Request) -> web.Response:
    """A document a client shared: read-only, no sign-in."""
    document = await request.app[STORE].open_share(request.match_info["token"])
    data = request.app[BILLING].invoices.files.read(document.file_path)
    return pdf_response(data, f"{document.number}.pdf")


def pdf_response(data: bytes, filename: str, download: bool = False) -> web.Response:
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "document.pdf"
    disposition = "attachment" if download else "inline"
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'{disposition}; filename="{safe}"'},
    )
