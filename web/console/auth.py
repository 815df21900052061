"""Console sign-in: the email form at `/staff`, the mailed single-use link (its page shows a
"Sign in" button: a GET never uses it up), sessions and "Sign out"."""

from __future__ import annotations

from aiohttp import web

from portico.errors import NotFound
from portico.i18n import gettext as _
from portico.services.portal_auth import RateLimited
from portico.services.staff import ABSOLUTE_TIMEOUT
from web.console import board
from web.console.common import COOKIE, checked_form, current, render, session_cookie
from web.console.keys import STAFF_AUTH
from web.http import cookies, sign_in
from web.http.keys import SETTINGS
from web.http.portal_keys import AUTH

routes = web.RouteTableDef()
PRE_COOKIE = "portico_staff_pre"  # binds the sign-in form's CSRF token before any session
SENT_MESSAGE = "If that address belongs to a staff member, we've sent a sign-in link."
FORM = sign_in.SignInForm(PRE_COOKIE, "staff-pre:", "/staff")


@routes.get("/staff", name="staff")
async def home(request: web.Request) -> web.StreamResponse:
    """The approvals board once signed in, else the sign-in form."""
    who = await current(request)
    if who is not None:
        return await board.board_page(request, who)
    response = await sign_in_page(request, expired=bool(session_cookie(request)))
    cookies.clear_session(request, response, COOKIE)
    return response


async def sign_in_page(
    request: web.Request,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    expired: bool = False,
) -> web.Response:
    context = {"title": "Staff sign-in", "error": error, "email": email, "expired": expired}
    return await FORM.page(request, render, context, status)


@routes.post("/staff/sign-in")
async def request_link(request: web.Request) -> web.Response:
    """Same answer for every address; only a member's gets a mail (recorded in the outbox for
    every address alike, the link minted at delivery, so the timing tells nothing either)."""
    sent = await FORM.submitted(request)
    if not sent.fresh:
        return await sign_in_page(request, 400, _(sign_in.EXPIRED_FORM), email=sent.email)
    if not sent.valid_email:
        return await sign_in_page(request, 422, _(sign_in.INVALID_EMAIL), sent.email)
    try:
        await request.app[AUTH].request_staff_sign_in(
            sent.email, sign_in.client_ip(request), request.app[SETTINGS].company_name
        )
    except RateLimited as err:  # the portal's limits, per address and per IP
        return await sign_in_page(request, 429, err.message, sent.email)
    return await render(
        request, "message.html", {"title": "Check your email", "message": SENT_MESSAGE}
    )


def invalid_link() -> NotFound:
    return NotFound(
        "This sign-in link has expired or has already been used. "
        "Please ask for a new one on the staff sign-in page."
    )


@routes.get("/staff/link/{token}")
async def link_page(request: web.Request) -> web.Response:
    """A "Sign in" button; reading the page (or a mail scanner's prefetch) uses nothing."""
    return await sign_in.link_page(request, render, request.app[STAFF_AUTH].peek, invalid_link)


@routes.post("/staff/link/{token}")
async def use_link(request: web.Request) -> web.Response:
    session_id = await sign_in.use_link(request, request.app[STAFF_AUTH].consume, invalid_link)
    response = web.HTTPSeeOther("/staff")
    cookies.set_session(
        request, response, COOKIE, session_id, int(ABSOLUTE_TIMEOUT.total_seconds())
    )
    raise response


@routes.post("/staff/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    who = await current(request)
    if who is not None:
        await checked_form(request, who)
        await request.app[STAFF_AUTH].end(session_cookie(request))
    response = web.HTTPSeeOther("/staff?signed_out=1")
    cookies.clear_session(request, response, COOKIE)
    raise response
