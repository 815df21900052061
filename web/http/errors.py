"""Error middleware: JSON errors for the API, friendly pages elsewhere, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from portico.errors import NotReady, PorticoError
from portico.i18n import N_
from portico.i18n import gettext as _
from portico.redact import mask_links

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_TITLES = {
    400: N_("Bad request"),
    401: N_("Sign-in needed"),
    403: N_("Not allowed"),
    404: N_("Page not found"),
    405: N_("Not allowed"),
    409: N_("Already done"),
    413: N_("File too large"),
    415: N_("Unsupported content type"),
    422: N_("Please check your input"),
    503: N_("Temporarily unavailable"),
}


def json_error(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    if status == 401:  # RFC 6750: say which scheme would be accepted
        response.headers["WWW-Authenticate"] = 'Bearer realm="Portico staff API"'
    return response


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/webhooks/")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"title": _(HTTP_TITLES.get(status, N_("Something went wrong"))), "message": message},
        status=status,
    )


def not_ready_page(request: web.Request, err: NotReady) -> web.Response:
    """202 and a page that reloads itself until what it waits for is ready (a browser user is
    not shown an error for something that is merely a few seconds away)."""
    return aiohttp_jinja2.render_template(
        "preparing.html",
        request,
        {"message": err.message, "refresh_seconds": err.retry_after},
        status=202,
    )


def carry_headers(exc: web.HTTPException, response: web.Response) -> None:
    """Keep what the exception says besides its body: `Allow` on a 405, for one."""
    for name, value in exc.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            response.headers.setdefault(name, value)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PorticoError as err:
        if wants_json(request):
            response = json_error(err.status, err.code, err.message)
        elif isinstance(err, NotReady):
            response = not_ready_page(request, err)
        else:
            response = error_page(request, err.status, err.message)
        if err.retry_after is not None:
            response.headers["Retry-After"] = str(err.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {
            404: _("There is nothing at this address."),
            405: _("This address does not accept that method."),
            413: _("The upload is too large."),
        }.get(exc.status, exc.reason)
        if wants_json(request):
            code = exc.reason.lower().replace(" ", "_")
            response = json_error(exc.status, code, message)
        else:
            response = error_page(request, exc.status, message)
        carry_headers(exc, response)
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, mask_links(request.path))
        message = "Something went wrong on our side; nothing was changed. Please try again."
        if wants_json(request):
            return json_error(500, "internal", message)
        return error_page(request, 500, message)
