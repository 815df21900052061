"""The portal's service agreements (CONTRACT section 13): the list and one agreement's page,
with its schedule, next visit and progress ("3 of 12 visits"). Only the signed-in client's
agreements exist here (another client's id is 404), and only while staff show the section."""

from __future__ import annotations

from aiohttp import web

from portico.errors import NotFound
from web.http.agreement_keys import AGREEMENTS
from web.http.portal_keys import STORE
from web.http.portal_session import signed_in
from web.pages.portal import path_int, render

routes = web.RouteTableDef()


async def _section_shown(request: web.Request) -> None:
    if not (await request.app[STORE].portal_settings()).show_agreements:
        raise NotFound("There is nothing at this address.")


@routes.get("/portal/agreements")
async def agreements_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await _section_shown(request)
    views = await request.app[AGREEMENTS].views(who.client_id)
    return await render(request, "agreements.html", {"title": "Agreements", "agreements": views})


@routes.get("/portal/agreements/{id}")
async def agreement_page(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await _section_shown(request)
    view = await request.app[AGREEMENTS].view(path_int(request), client_id=who.client_id)
    return await render(request, "agreement.html", {"title": view.agreement.title, "item": view})
