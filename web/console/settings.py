"""Admins only: portal settings (`/staff/settings`) and staff members (`/staff/members`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from portico.errors import Conflict, PorticoError
from portico.portal_schemas import PortalSettingsIn
from portico.services.portal import SECTIONS
from portico.services.staff import ROLES, StaffMemberIn
from web.console.common import (
    FieldErrors,
    checked_form,
    field_errors,
    render,
    signed_in,
    validated,
)
from web.console.keys import STAFF_AUTH
from web.http.portal_keys import STORE

routes = web.RouteTableDef()
SECTION_LABELS = {
    "projects": "Projects",
    "approvals": "Approvals",
    "bookings": "Bookings",
    "files": "Files",
    "payments": "Payments",
    "service_requests": "Service requests",
    "messages": "Messages",
    "agreements": "Agreements",
}
assert tuple(SECTION_LABELS) == SECTIONS


async def settings_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    return await render(
        request,
        "settings.html",
        {
            "title": "Settings",
            "section": "settings",
            "portal": await request.app[STORE].portal_settings(),
            "sections": SECTION_LABELS,
            "error": error,
            "saved": request.query.get("saved") == "1",
        },
        status=status,
    )


@routes.get("/staff/settings")
async def show_settings(request: web.Request) -> web.Response:
    await signed_in(request, admin=True)
    return await settings_page(request)


@routes.post("/staff/settings")
async def save_settings(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    form = await checked_form(request, who)
    changes: dict[str, Any] = {
        "enabled": bool(form.get("enabled")),
        "welcome_message": form.get("welcome_message") or None,
        **{f"show_{name}": bool(form.get(f"show_{name}")) for name in SECTIONS},
    }
    try:  # every field given: an emptied welcome message is cleared, not left as it was
        data = PortalSettingsIn.model_validate(changes)
    except ValidationError as err:
        return await settings_page(request, " ".join(field_errors(err).values()), status=422)
    await request.app[STORE].update_portal_settings(data)
    raise web.HTTPSeeOther("/staff/settings?saved=1")


async def members_page(
    request: web.Request,
    form: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    return await render(
        request,
        "members.html",
        {
            "title": "Staff members",
            "section": "members",
            "members": await request.app[STAFF_AUTH].members(),
            "roles": ROLES,
            "form": form or {"role": "staff"},
            "errors": errors or {},
        },
        status=status,
    )


@routes.get("/staff/members")
async def show_members(request: web.Request) -> web.Response:
    await signed_in(request, admin=True)
    return await members_page(request)


@routes.post("/staff/members")
async def add_member(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    form = await checked_form(request, who)
    data, errors = validated(StaffMemberIn, {k: form.get(k, "") for k in ("email", "name", "role")})
    if data is None:
        return await members_page(request, form, errors, status=422)
    try:
        await request.app[STAFF_AUTH].add(data)
    except Conflict as err:
        return await members_page(request, form, {"email": err.message}, status=err.status)
    raise web.HTTPSeeOther("/staff/members")


@routes.post("/staff/members/remove")
async def remove_member(request: web.Request) -> web.Response:
    who = await signed_in(request, admin=True)
    form = await checked_form(request, who)
    email = str(form.get("email", ""))
    if email.lower() == who.email:
        return await members_page(request, errors={"": "You cannot remove yourself."}, status=409)
    try:
        await request.app[STAFF_AUTH].remove(email)
    except PorticoError as err:
        return await members_page(request, errors={"": err.message}, status=err.status)
    raise web.HTTPSeeOther("/staff/members")
