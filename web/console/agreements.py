"""The console's service agreements: listed on the client's page (web/console/clients.py),
cancelled from there (an update of the agreement's workflow, as `staff:<email>`)."""

from __future__ import annotations

from aiohttp import web

from portico.errors import PorticoError
from web.console.common import checked_form, path_int, signed_in
from web.http.agreement_keys import AGREEMENTS

routes = web.RouteTableDef()


@routes.post("/staff/agreements/{id:\\d+}/cancel")
async def cancel(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    service = request.app[AGREEMENTS]
    view = await service.view(path_int(request))
    reason = (form.get("reason") or "").strip()[:500] or None
    done = "agreement_cancelled"
    try:
        await service.cancel(view.agreement.id, reason, actor=who.actor)
    except PorticoError:  # ended meanwhile, or Temporal is down: the page shows its state
        done = "agreement_not_cancelled"
    raise web.HTTPSeeOther(f"/staff/clients/{view.agreement.client_id}?done={done}")
