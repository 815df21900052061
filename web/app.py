"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy import select
from temporalio.client import Client

from portico import heap
from portico.db import engine_for, session_maker
from portico.models import OutboundMessage
from portico.services.agreements import Agreements
from portico.services.approvals import Portico
from portico.services.billing import Billing
from portico.services.gateway import TemporalGateway
from portico.services.messages import ClientMessages
from portico.services.outbox import Outbox
from portico.services.photos import Photos
from portico.services.portal import PortalStore
from portico.services.portal_auth import PortalAuth
from portico.settings import Settings
from web import console
from web.api import agreements, integrations, messages, photos, staff, staff_portal
from web.http import branding, codec, language, metrics
from web.http.agreement_keys import AGREEMENTS
from web.http.errors import error_middleware
from web.http.keys import DEV_MODE, SERVICE, SESSIONS, SETTINGS, TEMPORAL
from web.http.linkify import linkify
from web.http.portal_keys import AUTH, BILLING, MESSAGES, PHOTOS, STORE
from web.http.security import same_origin_only, security_headers
from web.pages import agreements as agreement_pages
from web.pages import messages as portal_messages
from web.pages import pay, portal, signing
from web.webhooks import stripe, twilio

HERE = Path(__file__).parent


def create_app(
    settings: Settings,
    *,
    temporal_client: Client | None = None,
    dev_mode: bool = False,
    freeze_heap: bool = False,
) -> web.Application:
    """Build the web app; `temporal_client` is injected by tests and the dev runner.
    `freeze_heap`: a web process of its own (`portico web`, `portico dev`) freezes its
    start-up objects out of garbage collection once the app has started (portico.heap)."""
    # Generated once into var/ when unset (CONTRACT section 1): at start-up, so that
    # `cat var/staff-api.key` works as soon as the web layer runs, not after a first request.
    settings.secret_key, settings.staff_api_key  # noqa: B018
    app = web.Application(
        middlewares=[
            metrics.metrics_middleware,
            security_headers,  # outside the error pages, so they carry the headers too
            language.language_middleware,  # outside the error pages: they are translated too
            error_middleware,
            same_origin_only,
            staff.bearer_auth,
        ],
        client_max_size=settings.max_upload_bytes + 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[TEMPORAL] = TemporalGateway(settings, temporal_client)
    app[DEV_MODE] = dev_mode
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        auto_reload=dev_mode,  # else templates are read once, not stat()ed on every render
        extensions=["jinja2.ext.i18n"],
    )
    language.install(aiohttp_jinja2.get_env(app))  # the request's language and its switch
    aiohttp_jinja2.get_env(app).filters["linkify"] = linkify
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(portal_services)
    for routes in (
        staff.routes,
        signing.routes,
        portal.routes,
        portal_messages.routes,
        pay.routes,
        stripe.routes,
        staff_portal.routes,
        messages.routes,
        twilio.routes,
        photos.routes,
        agreements.routes,
        agreement_pages.routes,
        language.routes,
    ):
        app.add_routes(routes)
    console.setup(app)  # the staff console /staff (uses the portal's services)
    integrations.setup(app)  # outbound webhooks and CSV exports (CONTRACT section 11)
    app.router.add_static("/static", HERE / "static", name="static")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", no_favicon)  # browsers ask on every page: not a 404
    metrics.setup(app)
    codec.setup(app, settings)
    branding.setup(app, settings)
    app.router.add_get("/", home)
    if dev_mode:
        app.router.add_get("/dev/outbox", dev_outbox)
    if freeze_heap:  # after the engine and clients are made (cleanup contexts start first)
        app.on_startup.append(freeze_startup_heap)
    return app


async def freeze_startup_heap(app: web.Application) -> None:
    heap.freeze_startup_objects()


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = engine_for(settings)
    app[SESSIONS] = session_maker(engine)
    app[SERVICE] = Portico(settings, app[SESSIONS], app[TEMPORAL])
    yield
    await engine.dispose()


async def portal_services(app: web.Application) -> AsyncIterator[None]:
    settings, sessions = app[SETTINGS], app[SESSIONS]
    outbox = Outbox(settings, sessions, app[TEMPORAL])
    app[AUTH] = PortalAuth(settings, sessions, outbox)
    app[AGREEMENTS] = Agreements(settings, sessions, app[TEMPORAL])
    app[STORE] = PortalStore(
        settings, sessions, outbox, booking_completed=app[AGREEMENTS].booking_completed
    )
    app[MESSAGES] = ClientMessages(settings, sessions, outbox)
    app[BILLING] = Billing(settings, sessions, app[TEMPORAL])
    app[PHOTOS] = Photos(settings, sessions)
    yield


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def no_favicon(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/portal" if request.app.router.get("portal") else "/api/v1/openapi.json")


async def dev_outbox(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        messages = list(
            await session.scalars(
                select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(200)
            )
        )
    return aiohttp_jinja2.render_template(
        "outbox.html",
        request,
        {
            "messages": messages,
            "title": "Dev outbox",
            "company_name": request.app[SETTINGS].company_name,
        },
    )
