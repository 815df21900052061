"""Security headers on every answer, and the same-origin rule for browser form posts.

`security_headers` sits outside the error middleware, so error pages, redirects and 405s carry
the headers too. `same_origin_only` refuses state-changing requests a browser sent from another
site (login CSRF: a cross-site `POST /portal/link/{token}` would sign the victim's browser into
the attacker's account); the per-form CSRF tokens stay as the second line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from portico.errors import Forbidden
from portico.settings import Settings
from web.http import branding
from web.http.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HSTS = "max-age=63072000; includeSubDomains"
OWN_CACHE_POLICY = ("/static/",)  # files that may be cached keep the server's default policy
# Called by servers and the bearer-key API, never by a page's form: their own checks apply.
NOT_BROWSER_FORMS = ("/api/", "/webhooks/", "/codec/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})  # "none": the user's own navigation


def https_only(settings: Settings) -> bool:
    """Whether PORTICO_PUBLIC_URL is https (HSTS, Secure and `__Host-` cookies)."""
    return settings.public_url.lower().startswith("https://")


def content_security_policy(request: web.Request, form_action: str = "'self'") -> str:
    return (
        f"default-src 'self'; img-src {branding.img_src(request.app)}; style-src 'self'; "
        f"script-src 'self'; frame-ancestors 'self'; form-action {form_action}"
    )


def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The default headers; a handler's own value (the pay page's CSP, brand.css's cache
    policy) wins."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")  # links carry secret tokens
    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    headers.setdefault("Content-Security-Policy", content_security_policy(request))
    if not request.path.startswith(OWN_CACHE_POLICY):
        headers.setdefault("Cache-Control", "no-store")
    if https_only(request.app[SETTINGS]):
        headers.setdefault("Strict-Transport-Security", HSTS)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects raised past the error pages
        add_headers(request, exc)
        raise
    add_headers(request, response)
    return response


def own_origins(request: web.Request) -> set[str]:
    """This site as browsers name it: the public URL, or the address the request came to."""
    public = URL(request.app[SETTINGS].public_url).origin()
    return {str(public), f"{request.scheme}://{request.host}".lower()}


def cross_site(request: web.Request) -> bool:
    """True when the browser says (Sec-Fetch-Site, else Origin) another site sent this.

    Neither header (a script, an old browser) passes: the form's CSRF token still applies.
    A sibling subdomain ("same-site") counts as another site: it may be someone else's.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.lower() not in ALLOWED_FETCH_SITES
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.strip().rstrip("/").lower() not in own_origins(request)


@web.middleware
async def same_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method not in SAFE_METHODS
        and not request.path.startswith(NOT_BROWSER_FORMS)
        and cross_site(request)
    ):
        raise Forbidden(
            "This form was sent from another website, so nothing was changed. "
            "Please open the page from the link you were sent and try again.",
            code="cross_site_request",
        )
    return await handler(request)
