"""The email sign-in form and the mailed link's page, as the portal (`/portal`) and the staff
console (`/staff`) both use them.

The form's CSRF token is bound to a random pre-sign-in cookie (there is no session yet); the
link's page only shows a "Sign in" button whose CSRF token is bound to the link, so reading the
page (or a mail scanner's prefetch) never uses the link up.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from portico import tokens
from portico.errors import BadRequest, PorticoError
from portico.i18n import N_
from portico.i18n import gettext as _
from portico.portal_schemas import EMAIL_PATTERN
from web.http import cookies
from web.http.keys import SETTINGS

Render = Callable[[web.Request, str, dict[str, Any], int], Awaitable[web.Response]]
# Marked for the catalogues; shown through `_()`, in the reader's language (staff: English).
EXPIRED_FORM = N_("This form has expired. Please try again.")
INVALID_EMAIL = N_("Please enter a valid email address.")
PRE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


@dataclass(frozen=True)
class SignInRequest:
    """What the email form sent: the address, and whether the form and the address are good."""

    email: str
    fresh: bool  # the CSRF token matches the pre-sign-in cookie
    valid_email: bool


@dataclass(frozen=True)
class SignInForm:
    """One audience's email form: its pre-sign-in cookie, CSRF scope and cookie path."""

    pre_cookie: str
    csrf_scope: str
    path: str

    async def page(
        self, request: web.Request, render: Render, context: dict[str, Any], status: int = 200
    ) -> web.Response:
        """`sign_in.html` with the form's CSRF token (`form_csrf`) and the "expired" and
        "signed out" notes; sets the pre-sign-in cookie when there is none yet."""
        pre = request.cookies.get(self.pre_cookie)
        fresh = pre is None or not PRE_TOKEN.fullmatch(pre)
        if fresh:
            pre = tokens.new_token()
        assert pre is not None
        secret = request.app[SETTINGS].secret_key
        response = await render(
            request,
            "sign_in.html",
            {
                "form_csrf": tokens.csrf_token(secret, self.csrf_scope + pre),
                **context,
                "expired": context.get("expired") or request.query.get("expired") == "1",
                "signed_out": request.query.get("signed_out") == "1",
            },
            status,
        )
        if fresh:
            response.set_cookie(
                self.pre_cookie,
                pre,
                httponly=True,
                samesite="Lax",
                secure=cookies.secure_cookies(request),
                path=self.path,
            )
        return response

    async def submitted(self, request: web.Request) -> SignInRequest:
        form = await request.post()
        email = str(form.get("email", "")).strip()
        pre = request.cookies.get(self.pre_cookie, "")
        secret = request.app[SETTINGS].secret_key
        fresh = bool(pre) and tokens.csrf_valid(
            secret, self.csrf_scope + pre, str(form.get("csrf", ""))
        )
        valid = bool(re.fullmatch(EMAIL_PATTERN, email)) and len(email) <= 320
        return SignInRequest(email, fresh, valid)


class SignInLink(Protocol):
    token_hash: str


Peek = Callable[[str], Awaitable[SignInLink | None]]
Consume = Callable[[str, str | None, str | None], Awaitable[str | None]]


async def link_page(
    request: web.Request, render: Render, peek: Peek, invalid: Callable[[], PorticoError]
) -> web.Response:
    """The mailed link's page (`/{audience}/link/{token}`): a "Sign in" button, with a CSRF
    token bound to the link; `invalid()` is raised for a used, expired or unknown link."""
    token = request.match_info["token"]
    link = await peek(token)
    if link is None:
        raise invalid()
    secret = request.app[SETTINGS].secret_key
    return await render(
        request,
        "link.html",
        {
            "title": "Sign in",
            "token": token,
            "link_csrf": tokens.csrf_token(secret, link.token_hash),
        },
        200,
    )


async def use_link(
    request: web.Request, consume: Consume, invalid: Callable[[], PorticoError]
) -> str:
    """The "Sign in" button: uses the link up and returns the new session's id. BadRequest
    unless the form came from this link's page; `invalid()` if the link can't be used."""
    token = request.match_info["token"]
    form = await request.post()
    secret = request.app[SETTINGS].secret_key
    if not tokens.csrf_valid(secret, tokens.hash_token(token), str(form.get("csrf", ""))):
        raise BadRequest(_("This form has expired. Please open the link from your email again."))
    session_id = await consume(token, client_ip(request), request.headers.get("User-Agent"))
    if session_id is None:
        raise invalid()
    return session_id
