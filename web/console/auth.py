"""Console sign-in: the email form at `/staff`, the mailed single-use link (its page shows a
"Sign in" button: a GET never uses it up), sessions and "Sign out"."""

from __future__ import annotations

import re

from aiohttp import web

from portico import tokens
from portico.errors import BadRequest, NotFound
from portico.portal_schemas import EMAIL_PATTERN
from portico.services.portal_auth import RateLimited
from portico.services.staff import ABSOLUTE_TIMEOUT
from web.console import board
from web.console.common import COOKIE, checked_form, current, render, session_cookie
from web.console.keys import STAFF_AUTH
from web.http import cookies
from web.http.keys import SETTINGS
from web.http.portal_keys import AUTH

routes = web.RouteTableDef()
PRE_COOKIE = "portico_staff_pre"  # binds the sign-in form's CSRF token before any session
SENT_MESSAGE = "If that address belongs to a staff member, we've sent a sign-in link."


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


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
    pre = request.cookies.get(PRE_COOKIE)
    fresh = pre is None or not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", pre)
    if fresh:
        pre = tokens.new_token()
    assert pre is not None
    response = await render(
        request,
        "sign_in.html",
        {
            "title": "Staff sign-in",
            "form_csrf": tokens.csrf_token(request.app[SETTINGS].secret_key, "staff-pre:" + pre),
            "error": error,
            "email": email,
            "expired": expired or request.query.get("expired") == "1",
            "signed_out": request.query.get("signed_out") == "1",
        },
        status=status,
    )
    if fresh:
        response.set_cookie(
            PRE_COOKIE,
            pre,
            httponly=True,
            samesite="Lax",
            secure=cookies.secure_cookies(request),
            path="/staff",
        )
    return response


@routes.post("/staff/sign-in")
async def request_link(request: web.Request) -> web.Response:
    """Same answer for every address; only a member's gets a mail (recorded in the outbox for
    every address alike, the link minted at delivery, so the timing tells nothing either)."""
    form = await request.post()
    email = str(form.get("email", "")).strip()
    pre = request.cookies.get(PRE_COOKIE, "")
    secret = request.app[SETTINGS].secret_key
    if not pre or not tokens.csrf_valid(secret, "staff-pre:" + pre, str(form.get("csrf", ""))):
        return await sign_in_page(
            request, 400, "This form has expired. Please try again.", email=email
        )
    if not re.fullmatch(EMAIL_PATTERN, email) or len(email) > 320:
        return await sign_in_page(request, 422, "Please enter a valid email address.", email)
    try:
        await request.app[AUTH].request_staff_sign_in(
            email, client_ip(request), request.app[SETTINGS].company_name
        )
    except RateLimited as err:  # the portal's limits, per address and per IP
        return await sign_in_page(request, 429, err.message, email)
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
    token = request.match_info["token"]
    link = await request.app[STAFF_AUTH].peek(token)
    if link is None:
        raise invalid_link()
    return await render(
        request,
        "link.html",
        {
            "title": "Sign in",
            "token": token,
            "link_csrf": tokens.csrf_token(request.app[SETTINGS].secret_key, link.token_hash),
        },
    )


@routes.post("/staff/link/{token}")
async def use_link(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    form = await request.post()
    secret = request.app[SETTINGS].secret_key
    if not tokens.csrf_valid(secret, tokens.hash_token(token), str(form.get("csrf", ""))):
        raise BadRequest("This form has expired. Please open the link from your email again.")
    session_id = await request.app[STAFF_AUTH].consume(
        token, client_ip(request), request.headers.get("User-Agent")
    )
    if session_id is None:
        raise invalid_link()
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
