"""Staff API routes of the service agreements (`/api/v1/agreements`, CONTRACT section 13):
create, read, list, and the staff changes that are updates of the agreement's workflow
(cancel, move a visit, change the reminder lead)."""

from __future__ import annotations

from aiohttp import web

from portico.agreement_schemas import (
    AgreementCancelIn,
    AgreementIn,
    AgreementUpdateIn,
    VisitMoveIn,
)
from web.api.staff import answer, body, path_id, query_id
from web.http.agreement_keys import AGREEMENTS

routes = web.RouteTableDef()


@routes.post("/api/v1/agreements")
async def create_agreement(request: web.Request) -> web.Response:
    data = await body(request, AgreementIn)
    return answer(await request.app[AGREEMENTS].create(data), status=201)


@routes.get("/api/v1/agreements")
async def list_agreements(request: web.Request) -> web.Response:
    return answer(await request.app[AGREEMENTS].list(query_id(request, "client_id")))


@routes.get("/api/v1/agreements/{id}")
async def show_agreement(request: web.Request) -> web.Response:
    return answer(await request.app[AGREEMENTS].get(path_id(request)))


@routes.patch("/api/v1/agreements/{id}")
async def update_agreement(request: web.Request) -> web.Response:
    data = await body(request, AgreementUpdateIn)
    result = await request.app[AGREEMENTS].change_reminder(
        path_id(request), data.remind_days_before
    )
    return answer(result)


@routes.post("/api/v1/agreements/{id}/cancel")
async def cancel_agreement(request: web.Request) -> web.Response:
    data = await body(request, AgreementCancelIn, optional=True)
    return answer(await request.app[AGREEMENTS].cancel(path_id(request), data.reason))


@routes.post("/api/v1/agreements/{id}/visits/{n}/move")
async def move_visit(request: web.Request) -> web.Response:
    data = await body(request, VisitMoveIn)
    agreement_id, n = path_id(request), path_id(request, "n")
    return answer(await request.app[AGREEMENTS].move_visit(agreement_id, n, data.date))
