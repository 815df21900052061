"""What every console page shares: who is signed in, roles, CSRF-checked forms, rendering."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError

from portico import tokens
from portico.errors import BadRequest, Forbidden, NotFound
from portico.money import format_money as money
from portico.schemas import known_id, parse_id
from portico.services.staff import StaffIdentity
from web.console.keys import STAFF_AUTH
from web.http import cookies
from web.http.keys import SETTINGS
from workflows.messages import kind_label

COOKIE = "portico_staff"  # `__Host-portico_staff` behind an https public URL
IDENTITY = web.RequestKey("staff_identity", StaffIdentity)
FieldErrors = dict[str, str]


def session_cookie(request: web.Request) -> str | None:
    return cookies.read_session(request, COOKIE)


async def current(request: web.Request) -> StaffIdentity | None:
    if IDENTITY in request:
        return request[IDENTITY]
    found = await request.app[STAFF_AUTH].identify(session_cookie(request))
    if found is not None:
        request[IDENTITY] = found
    return found


async def signed_in(request: web.Request, *, admin: bool = False) -> StaffIdentity:
    """The signed-in member (a redirect to the sign-in page otherwise); `admin`: 403 for
    anyone else."""
    who = await current(request)
    if who is None:
        response = web.HTTPSeeOther("/staff?expired=1" if session_cookie(request) else "/staff")
        cookies.clear_session(request, response, COOKIE)
        raise response
    if admin and not who.is_admin:
        raise Forbidden("Only administrators can open this page.", code="admin_only")
    return who


def csrf_for(request: web.Request, who: StaffIdentity) -> str:
    return tokens.csrf_token(request.app[SETTINGS].secret_key, "staff:" + who.session_hash)


def csrf_valid(request: web.Request, who: StaffIdentity, token: str) -> None:
    """A form's CSRF token matches this session; 400 otherwise (and nothing is done)."""
    if not tokens.csrf_valid(request.app[SETTINGS].secret_key, "staff:" + who.session_hash, token):
        raise BadRequest("This form has expired. Please reload the page and try again.")


async def checked_form(request: web.Request, who: StaffIdentity) -> dict[str, Any]:
    """The posted form (text fields stripped; files as aiohttp FileFields) once its CSRF token
    matches this session; 400 and nothing done otherwise."""
    form = await request.post()
    csrf_valid(request, who, str(form.get("csrf", "")))
    return {k: v.strip() if isinstance(v, str) else v for k, v in form.items() if k != "csrf"}


def path_int(request: web.Request, name: str = "id") -> int:
    value = parse_id(request.match_info[name])
    if value is None or not known_id(value):
        raise NotFound("There is nothing at this address.")
    return value


def status_label(status: str) -> str:
    return status.replace("_", " ").capitalize()


def field_errors(
    err: ValidationError, names: dict[tuple[Any, ...], str] | None = None
) -> FieldErrors:
    """{form field: message} from a pydantic error; `names` maps error locations to fields
    (the rest use the location's first part, and model-level errors go under "")."""
    errors: FieldErrors = {}
    for error in err.errors():
        loc = tuple(error["loc"])
        field = (names or {}).get(loc)
        if field is None:
            field = str(loc[0]) if loc else ""
        message = error["msg"].removeprefix("Value error, ")
        errors.setdefault(field, message[:1].upper() + message[1:] + ".")
    return errors


def validated(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, FieldErrors]:
    """(model or None, field errors); empty form fields count as not given."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v not in ("", None)}), {}
    except ValidationError as err:
        return None, field_errors(err)


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    who = request.get(IDENTITY)
    base: dict[str, Any] = {
        "company_name": request.app[SETTINGS].company_name,
        "who": who,
        "csrf": csrf_for(request, who) if who else None,
        "money": money,
        "kind_label": kind_label,
        "status_label": status_label,
        "errors": {},
        "section": "",
    }
    return aiohttp_jinja2.render_template(
        f"staff/{template}", request, {**base, **context}, status=status
    )
