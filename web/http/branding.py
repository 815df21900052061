"""Branding on the web: `brand` in every template, the accent colour as `GET /brand.css`
(a stylesheet of custom properties, so the CSP needs no inline styles) and the logo origins
the Content-Security-Policy must let images load from."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from portico.branding import Branding
from portico.settings import Settings

BRANDING = web.AppKey("branding", Branding)


def setup(app: web.Application, settings: Settings) -> None:
    """Call after `aiohttp_jinja2.setup`."""
    brand = Branding.from_settings(settings)
    app[BRANDING] = brand
    aiohttp_jinja2.get_env(app).globals["brand"] = brand
    app.router.add_get("/brand.css", brand_css, name="brand_css")


async def brand_css(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[BRANDING].css(),
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=300"},
    )


def img_src(app: web.Application) -> str:
    """The CSP img-src: this site, data: URLs (the signature pad) and the logo origins."""
    brand = app.get(BRANDING)
    origins = brand.image_origins() if brand else []
    return " ".join(["'self'", "data:", *origins])
