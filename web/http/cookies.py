"""Session cookies of the portal and the staff console: HttpOnly, SameSite=Lax, and behind an
https PORTICO_PUBLIC_URL named `__Host-<name>` (Secure, Path=/, no Domain: bound to this host).

Both names are read, so sessions opened before (or after) a switch of PORTICO_PUBLIC_URL
between http and https keep working.
"""

from __future__ import annotations

from aiohttp import web

from web.http.keys import SETTINGS
from web.http.security import https_only


def secure_cookies(request: web.Request) -> bool:
    return https_only(request.app[SETTINGS])


def host_name(name: str) -> str:
    return f"__Host-{name}"


def read_session(request: web.Request, name: str) -> str | None:
    return request.cookies.get(host_name(name)) or request.cookies.get(name)


def set_session(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    secure = secure_cookies(request)
    clear_session(request, response, name)  # an older cookie under the other name goes too
    response.set_cookie(
        host_name(name) if secure else name,
        value,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
        max_age=max_age,
    )


def clear_session(request: web.Request, response: web.StreamResponse, name: str) -> None:
    """Expire whichever of the two cookies the browser sent."""
    for cookie in (host_name(name), name):
        if cookie in request.cookies:
            response.del_cookie(cookie, path="/", secure=secure_cookies(request))
