"""Which language a page is in (CONTRACT section 10).

Every request starts in the language the visitor chose with the language switch (a cookie),
else the one their browser asks for (Accept-Language), else PORTICO_DEFAULT_LOCALE. A page
that knows who is reading (a signing link, a signed-in client) calls `for_person`, which puts
that person's own locale before the browser's, unless they chose one with the switch.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from portico import i18n
from web.http.keys import SETTINGS
from web.http.security import Handler, https_only

COOKIE = "portico_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
STAFF_PATHS = ("/api/", "/staff", "/webhooks/", "/dev/")
routes = web.RouteTableDef()
# The page being shown, for the language switch to come back to (set per request).
_page: ContextVar[str] = ContextVar("portico_page", default="")


def install(env: Any) -> None:
    """The page environment: translations and formatters (portico.i18n), and the switch."""
    i18n.install(env)
    env.globals["language_switch"] = True
    env.globals["current_page"] = _page.get


def chosen(request: web.Request) -> str | None:
    return i18n.normalize(request.cookies.get(COOKIE))


@web.middleware
async def language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.path.startswith(STAFF_PATHS):
        locale: str | None = i18n.DEFAULT_LOCALE  # staff-facing text stays English for now
    else:
        locale = chosen(request) or i18n.negotiate(request.headers.get("Accept-Language"))
    i18n.set_current(locale or settings.default_locale, settings.default_timezone)
    _page.set(request.path_qs)
    return await handler(request)


def for_person(request: web.Request, *locales: str | None, timezone: str | None = None) -> str:
    """Switch this request to the reader's language: the switch's choice, else the first of
    `locales` that is set (approver's, client's), else PORTICO_DEFAULT_LOCALE; and to their
    time zone (else PORTICO_DEFAULT_TIMEZONE)."""
    settings = request.app[SETTINGS]
    locale = chosen(request) or i18n.resolve(*locales, default=settings.default_locale)
    i18n.set_current(locale, timezone or settings.default_timezone)
    return locale


@routes.post("/language")
async def switch(request: web.Request) -> web.Response:
    """The language switch: remember the choice, go back to the page it was made on."""
    form = await request.post()
    locale = i18n.normalize(str(form.get("locale", "")))
    back = str(form.get("next", "") or "/")
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or not back.startswith("/") or back.startswith("//"):
        back = "/"  # only pages of this site: never an open redirect
    response = web.HTTPSeeOther(back)
    if locale is not None:
        response.set_cookie(
            COOKIE,
            locale,
            max_age=COOKIE_MAX_AGE,
            path="/",
            samesite="Lax",
            httponly=True,
            secure=https_only(request.app[SETTINGS]),
        )
    raise response
