"""The client's signing link `/s/{token}` (CONTRACT section 4): no account, just the link."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from portico import i18n, tokens
from portico.errors import (
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    PorticoError,
    TooLarge,
    UnsupportedMediaType,
)
from portico.files import FileStore
from portico.i18n import N_
from portico.i18n import gettext as _
from portico.models import Approval, Approver, Document
from portico.money import format_money
from portico.services.approvals import SIGNED_COPY_PREPARING as PREPARING
from portico.services.approvals import check_upload, signed_pdf_path
from portico.services.signing_links import (
    PortalOrigin,
    count_view,
    link_expired,
    load_link,
)
from web.http import language
from web.http.branding import BRANDING
from web.http.keys import SERVICE, SESSIONS, SETTINGS, TEMPORAL
from web.pages.pay import SIGN_PAGE_EXTRA, add_deposit_link
from workflows.types import (
    ACTIVE_APPROVER_STATUSES,
    APPROVE,
    APPROVED,
    DECLINE,
    FINAL_STATUSES,
    ApproveRequest,
    DeclineRequest,
    Evidence,
    ViewedSignal,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
FORM = web.RequestKey("form", dict)  # the submitted fields, to refill the form on an error
VIEW_WINDOW = timedelta(seconds=30)
# A random id per browser session (no expiry: it ends with the browser), only ever stored hashed.
VIEWER_COOKIE = "portico_viewer"
MAX_SIGNATURE_BYTES = 512 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INVALID_LINK = N_("This signing link is not valid. Please use the latest link you were sent.")
# What ApprovalWorkflow answers when it refuses a decision (its English text is the msgid):
# listed here so that `make messages` puts them in the catalogues.
REFUSALS = (
    N_("Please agree to sign electronically before approving."),
    N_("Please type your full name to sign."),
    N_("Please give a reason for declining."),
    N_("This link does not belong to this request."),
    N_("This request has expired."),
    N_("You have already approved this request."),
    N_("You have already declined this request."),
    N_("It is not your turn yet: earlier approvers must approve first."),
    N_("This request has already been approved."),
    N_("This request has been declined."),
    N_("This request was withdrawn by the sender."),
    N_("This request is closed."),
)


@dataclass
class Link:
    """What a signing token opens: one approver of one request."""

    token: str
    approver: Approver
    approval: Approval
    document: Document
    new_version: Document | None = None  # the version that superseded this document
    portal: PortalOrigin | None = None  # set when the token was minted from the client portal

    @property
    def is_open(self) -> bool:
        return self.approval.status not in FINAL_STATUSES

    @property
    def superseded(self) -> bool:
        return self.approval.superseded_by_document_id is not None

    @property
    def can_decide(self) -> bool:
        expired = self.approval.expires_at and self.approval.expires_at <= datetime.now(UTC)
        return (
            self.is_open
            and not expired
            and not self.superseded
            and self.approver.status in ACTIVE_APPROVER_STATUSES
        )


async def open_link(request: web.Request) -> Link:
    token = request.match_info["token"]
    if not 16 <= len(token) <= 64:
        raise NotFound(_(INVALID_LINK))
    found = await load_link(request.app[SESSIONS], token)
    if found is None:
        raise NotFound(_(INVALID_LINK))
    approver, portal = found.approver, found.portal
    if link_expired(approver):
        raise NotFound(_("This signing link has expired. Please ask the sender for a new one."))
    locale, timezone = found.client_locale, found.client_timezone
    language.for_person(request, approver.locale, locale, timezone=timezone)
    new_version = None
    if new_id := approver.approval.superseded_by_document_id:
        async with request.app[SESSIONS]() as session:
            new_version = await session.get(Document, new_id)
    return Link(token, approver, approver.approval, approver.approval.document, new_version, portal)


def evidence(request: web.Request, link: Link) -> Evidence:
    return Evidence(
        channel="web",
        ip=request.remote,
        user_agent=request.headers.get("User-Agent", "")[:500],
        portal_client_id=link.portal.client_id if link.portal else None,
        portal_session_id=link.portal.session_id if link.portal else None,
    )


def page_context(request: web.Request, link: Link, **extra: Any) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    doc = link.document
    context = {
        "link": link,
        "token": link.token,
        "csrf": tokens.csrf_token(settings.secret_key, link.approver.token_hash),
        "company_name": settings.company_name,
        "brand_logo_url": request.app[BRANDING].logo_for(link.approval.division),
        "brand_division": link.approval.division,
        "kind_label": i18n.kind_label(doc.kind),
        "amount": format_money(doc.amount_cents, doc.currency),
        "signed_so_far": [a for a in link.approval.approvers if a.status == "approved"],
        "waiting_for": [
            a.name
            for a in link.approval.approvers
            if a.position < link.approver.position and a.status != "approved"
        ],
        "form": {},
        "error": None,
    }
    context.update(request.get(SIGN_PAGE_EXTRA, {}))  # e.g. the "Pay deposit" link
    context.update(extra)
    return context


def render(request: web.Request, link: Link, status: int = 200, **extra: Any) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "sign.html", request, page_context(request, link, **extra), status=status
    )
    return response


@routes.get("/s/{token}", name="sign")
async def sign_page(request: web.Request) -> web.Response:
    link = await open_link(request)
    viewer = request.cookies.get(VIEWER_COOKIE, "")
    fresh_viewer = not 16 <= len(viewer) <= 64
    if fresh_viewer:
        viewer = tokens.new_token()
    if link.can_decide:
        await record_view(request, link, viewer)
    elif link.approval.status == APPROVED:
        await add_deposit_link(request)  # the thank-you state may offer "Pay deposit"
    response = render(request, link)
    if fresh_viewer:
        response.set_cookie(
            VIEWER_COOKIE,
            viewer,
            path="/s/",
            httponly=True,
            samesite="Lax",
            secure=request.app[SETTINGS].public_url.lower().startswith("https://"),
        )
    return response


async def record_view(request: web.Request, link: Link, viewer: str) -> None:
    """Count the view in SQL at once; tell the workflow (best effort: the page must render).

    A view is counted per browser session (the VIEWER_COOKIE): reloads from the browser that
    made the last counted view, within VIEW_WINDOW, count as that same view (a refreshing tab
    is not engagement, and skipping the write keeps a busy signing page read-only,
    docs/benchmarks.md); an open from another browser counts on its own."""
    now = datetime.now(UTC)
    viewer_hash = tokens.hash_token(viewer)
    last = link.approver.last_viewed_at
    same_browser = link.approver.last_viewer == viewer_hash
    if same_browser and last is not None and now - last < VIEW_WINDOW:
        return
    try:
        await count_view(request.app[SESSIONS], link.approver.id, viewer_hash, now)
    except DBAPIError:  # engagement counting must never cost the client the page
        log.warning("could not count a view of approver %s", link.approver.id, exc_info=True)
    if link.approver.status != "pending":
        return  # the workflow already knows; don't grow its history on every reload
    # The workflow learns of the view next time if this fails; the page still works.
    with contextlib.suppress(Exception):
        await request.app[TEMPORAL].viewed(
            link.approval.id,
            ViewedSignal(approver_id=link.approver.id, evidence=evidence(request, link)),
        )


async def checked_form(request: web.Request, link: Link) -> dict[str, Any]:
    form = dict(await request.post())
    settings = request.app[SETTINGS]
    if not tokens.csrf_valid(settings.secret_key, link.approver.token_hash, form.get("csrf")):  # type: ignore[arg-type]
        raise BadRequest(_("This form has expired. Please reload the page and try again."))
    return form


async def decide(
    request: web.Request, link: Link, update: str, req: ApproveRequest | DeclineRequest
) -> web.Response:
    """Send a decision to the workflow; redisplay the page with the error if it is refused."""
    try:
        # answered once SQL shows the decision, so the page the 303 leads to does too
        await request.app[SERVICE].decide(link.approval.id, update, req)
    except PorticoError as err:
        fresh = await open_link(request)
        message = _(err.message)  # the workflow's refusals are in the catalogue (REFUSALS)
        if err.code == "request_closed" or not fresh.can_decide:
            return render(request, fresh, status=409, error=message)
        return render(request, fresh, status=err.status, error=message, form=request[FORM])
    raise web.HTTPSeeOther(f"/s/{link.token}")


FormHandler = Callable[[web.Request, Link, dict[str, Any]], Awaitable[web.Response]]


def form_action(handler: FormHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Open the link, check CSRF and that a decision is still possible, then run `handler`;
    a refusal redisplays the page with the error and the client's input."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        link = await open_link(request)
        form = await checked_form(request, link)
        request[FORM] = {k: v for k, v in form.items() if isinstance(v, str)}
        if not link.can_decide:
            return render(request, link, status=409, error=_("This request can no longer change."))
        try:
            return await handler(request, link, form)
        except PorticoError as err:
            return render(request, link, status=err.status, error=err.message, form=request[FORM])

    return wrapped


def approve_request(
    request: web.Request, link: Link, form: dict[str, Any], **extra: Any
) -> ApproveRequest:
    return ApproveRequest(
        approver_id=link.approver.id,
        signature_name=str(form.get("full_name") or "").strip()[:200],
        notes=str(form.get("notes") or "").strip()[:5000] or None,
        consent=form.get("consent") in ("on", "yes", "true", "1"),
        evidence=evidence(request, link),
        **extra,
    )


@routes.post("/s/{token}/approve")
@form_action
async def approve(request: web.Request, link: Link, form: dict[str, Any]) -> web.Response:
    signature = store_signature(request, str(form.get("signature_data") or ""))
    req = approve_request(request, link, form, signature_image=signature)
    return await decide(request, link, APPROVE, req)


@routes.post("/s/{token}/decline")
@form_action
async def decline(request: web.Request, link: Link, form: dict[str, Any]) -> web.Response:
    reason = str(form.get("reason") or "").strip()[:5000]
    if not reason:
        raise Invalid(_("Please give a reason for declining."))
    req = DeclineRequest(
        approver_id=link.approver.id, reason=reason, evidence=evidence(request, link)
    )
    return await decide(request, link, DECLINE, req)


@routes.post("/s/{token}/upload")
@form_action
async def upload_signed(request: web.Request, link: Link, form: dict[str, Any]) -> web.Response:
    """Approve by uploading a PDF the client signed elsewhere; it becomes the document of record."""
    upload = form.get("signed_pdf")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not data:
        raise Invalid(_("Choose the signed PDF to upload."))
    req = approve_request(request, link, form)
    if not req.consent:  # the same consent as typed signing (the workflow checks it too)
        raise Invalid(_("Please agree to sign electronically before uploading your signed PDF."))
    settings = request.app[SETTINGS]
    checked = await check_upload(settings, data)
    files = FileStore(settings.files_dir)
    req.uploaded_pdf = await asyncio.to_thread(files.save, "uploads", checked.data, ".pdf")
    req.signature_name = req.signature_name or link.approver.name
    req.evidence.channel = "upload"
    return await decide(request, link, APPROVE, req)


def store_signature(request: web.Request, data_url: str) -> str | None:
    """Keep a drawn signature (a PNG data URL from the pad) as evidence; returns its path."""
    if not data_url:
        return None
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise Invalid(_("The drawn signature could not be read; please draw it again."))
    try:
        png = base64.b64decode(data_url[len(prefix) :], validate=True)
    except (binascii.Error, ValueError) as err:
        raise Invalid(_("The drawn signature could not be read; please draw it again.")) from err
    if len(png) > MAX_SIGNATURE_BYTES:
        raise TooLarge(_("The drawn signature is too large."))
    if not png.startswith(PNG_MAGIC):
        raise Invalid(_("The drawn signature could not be read; please draw it again."))
    return FileStore(request.app[SETTINGS].files_dir).save("signatures", png, ".png")


@routes.get("/s/{token}/document.pdf")
async def document_pdf(request: web.Request) -> web.Response:
    link = await open_link(request)
    data = FileStore(request.app[SETTINGS].files_dir).read(link.document.file_path)
    return pdf_response(data, f"{link.document.number}.pdf")


@routes.get("/s/{token}/signed.pdf")
async def signed_pdf(request: web.Request) -> web.Response:
    """The signed copy, from what is committed: a page that refreshes itself while the worker
    is still building it (202), never a wait inside the request."""
    link = await open_link(request)
    if link.approval.status != "approved":
        raise NotFound("The signed copy is available once everyone has approved.")
    if link.approval.signed_pdf_error and not link.approval.signed_pdf_path:
        raise Conflict(
            _(
                "Your signed copy could not be prepared automatically. "
                "%(company)s has been told and will send it to you.",
                company=request.app[SETTINGS].company_name,
            )
        )
    path = signed_pdf_path(link.approval, PREPARING)
    data = FileStore(request.app[SETTINGS].files_dir).read(path)
    return pdf_response(data, f"{link.document.number}-signed.pdf")


@routes.post("/s/{token}/beacon")
async def beacon(request: web.Request) -> web.Response:
    """Time spent reading, sent by the page every few seconds (engagement, not evidence).

    Only JSON is taken: unlike `text/plain`, a cross-site page cannot send it without a CORS
    preflight, which this site never grants (web.http.security refuses cross-site posts as well)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType('Send {"seconds": n} as application/json.')
    link = await open_link(request)
    try:
        seconds = int((await request.json()).get("seconds", 0))
    except (ValueError, TypeError, AttributeError) as err:
        raise BadRequest('Send {"seconds": n}.') from err
    seconds = max(0, min(seconds, 60))
    async with request.app[SESSIONS]() as session, session.begin():
        await session.execute(
            update(Approver)
            .where(Approver.id == link.approver.id)
            .values(viewed_seconds=Approver.viewed_seconds + seconds)
        )
    return web.Response(status=204)


def pdf_response(data: bytes, filename: str) -> web.Response:
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "document.pdf"
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{safe}"'},
    )
