"""The portal's session cookie and CSRF binding: who is signed in, shared by the portal pages
and the pay page they embed."""

from __future__ import annotations

from aiohttp import web

from portico import tokens
from portico.errors import BadRequest
from portico.services.portal_auth import ABSOLUTE_TIMEOUT, PortalIdentity
from web.http import cookies, language
from web.http.keys import SETTINGS
from web.http.portal_keys import AUTH

COOKIE = "portico_portal"  # the session cookie's name over http
IDENTITY = web.RequestKey("portal_identity", PortalIdentity)


secure_cookies = cookies.secure_cookies


def session_cookie(request: web.Request) -> str | None:
    return cookies.read_session(request, COOKIE)


def set_session_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    cookies.set_session(
        request, response, COOKIE, session_id, int(ABSOLUTE_TIMEOUT.total_seconds())
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    cookies.clear_session(request, response, COOKIE)


async def current(request: web.Request) -> PortalIdentity | None:
    if IDENTITY in request:
        return request[IDENTITY]
    found = await request.app[AUTH].identify(session_cookie(request))
    if found is not None:
        request[IDENTITY] = found
        language.for_person(request, found.locale, timezone=found.timezone)
    return found


async def signed_in(request: web.Request) -> PortalIdentity:
    """The signed-in client, or a redirect to the sign-in page."""
    who = await current(request)
    if who is None:
        response = web.HTTPSeeOther("/portal?expired=1" if session_cookie(request) else "/portal")
        clear_session_cookie(request, response)
        raise response
    return who


def csrf_for(request: web.Request, who: PortalIdentity) -> str:
    return tokens.csrf_token(request.app[SETTINGS].secret_key, "portal:" + who.session_hash)


async def checked_form(request: web.Request, who: PortalIdentity) -> dict[str, str]:
    form = await request.post()
    if not tokens.csrf_valid(
        request.app[SETTINGS].secret_key, "portal:" + who.session_hash, str(form.get("csrf", ""))
    ):
        raise BadRequest("This form has expired. Please reload the page and try again.")
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}
