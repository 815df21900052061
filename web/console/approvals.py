"""New approval (`/staff/approvals/new`) and a request's page (`/staff/approvals/{id}`) with
its staff actions: remind, extend, void, signed PDF, audit-trail check.

The form's fields map onto the staff API's schemas (`DocumentMeta`, `ApprovalIn`); both are
validated before anything is stored, and the document and request are created by the same
`Portico` calls as `POST /documents` and `POST /approvals`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField
from pydantic import ValidationError

from portico.audit import verify_approval
from portico.errors import PorticoError
from portico.money import BadAmount, parse_cents
from portico.schemas import DOCUMENT_KINDS, ApprovalIn, DocumentMeta, ExtendIn, RemindIn, VoidIn
from web.console.common import (
    FieldErrors,
    checked_form,
    field_errors,
    path_int,
    render,
    signed_in,
    validated,
)
from web.console.keys import QUERIES
from web.http.keys import SERVICE, SETTINGS
from web.pages.portal import pdf_response

routes = web.RouteTableDef()
MAX_APPROVERS = 5
ROUTINGS = (("sequential", "In order"), ("any", "Any one"), ("all", "All"))
DOCUMENT_FIELDS = ("project_id", "kind", "title", "number")
DONE_NOTICES = {
    "reminded": "The approvers were reminded.",
    "extended": "The deadline was moved.",
    "voided": "The request was voided.",
}


# --- new approval ---------------------------------------------------------------------------


async def new_form(
    request: web.Request,
    form: dict[str, Any],
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    return await render(
        request,
        "approval_new.html",
        {
            "title": "New approval",
            "section": "new",
            "form": form,
            "errors": errors or {},
            "projects": await request.app[QUERIES].project_choices(),
            "kinds": DOCUMENT_KINDS,
            "routings": ROUTINGS,
            "approver_rows": range(1, MAX_APPROVERS + 1),
        },
        status=status,
    )


@routes.get("/staff/approvals/new")
async def new_page(request: web.Request) -> web.Response:
    await signed_in(request)
    return await new_form(request, {"routing": "sequential"})


def approver_rows(form: dict[str, Any]) -> tuple[list[dict[str, str]], list[int]]:
    """The filled approver rows and their form numbers (1..5); empty rows are skipped."""
    people, numbers = [], []
    for n in range(1, MAX_APPROVERS + 1):
        person = {
            key: str(form.get(f"approver{n}_{key}", ""))
            for key in ("name", "email", "phone")
            if form.get(f"approver{n}_{key}")
        }
        if person:
            people.append(person)
            numbers.append(n)
    return people, numbers


def approval_errors(err: ValidationError, numbers: list[int]) -> FieldErrors:
    """Errors of ApprovalIn named by the form's fields (approver 2's email: approver2_email)."""
    names: dict[tuple[Any, ...], str] = {}
    for index, n in enumerate(numbers):
        names[("approvers", index)] = f"approver{n}_name"
        for key in ("name", "email", "phone"):
            names[("approvers", index, key)] = f"approver{n}_{key}"
    errors = field_errors(err, names)
    if "approvers" in errors:  # none given at all
        errors["approver1_name"] = "Give at least one approver."
        del errors["approvers"]
    return errors


def read_pdf(form: dict[str, Any], errors: FieldErrors) -> bytes | None:
    upload = form.get("file")
    if not isinstance(upload, FileField):
        errors["file"] = "Choose the PDF to send."
        return None
    data = upload.file.read()
    if not data:
        errors["file"] = "Choose the PDF to send."
        return None
    return bytes(data)


@routes.post("/staff/approvals/new")
async def create(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    text = {k: v for k, v in form.items() if isinstance(v, str)}
    errors: FieldErrors = {}

    document_fields: dict[str, Any] = {k: text.get(k, "") for k in DOCUMENT_FIELDS}
    if text.get("amount"):
        try:
            document_fields["amount_cents"] = parse_cents(text["amount"])
        except BadAmount as err:
            errors["amount"] = str(err)
    meta, document_errors = validated(DocumentMeta, document_fields)
    errors.update({("amount" if k == "amount_cents" else k): v for k, v in document_errors.items()})

    people, numbers = approver_rows(text)
    request_fields = {
        "document_id": 1,  # a stand-in: the document is created once everything is valid
        "approvers": people,
        "routing": text.get("routing", ""),
        "expires_in_days": text.get("expires_in_days", ""),
        "remind_every_days": text.get("remind_every_days", ""),
        "message": text.get("message", ""),
    }
    try:
        approval_in = ApprovalIn.model_validate(
            {k: v for k, v in request_fields.items() if v not in ("", None)}
        )
    except ValidationError as err:
        approval_in = None
        errors.update(approval_errors(err, numbers))

    file_bytes = read_pdf(form, errors)
    if errors or meta is None or approval_in is None or file_bytes is None:
        return await new_form(request, text, errors, status=422)

    service = request.app[SERVICE]
    try:
        document = await service.create_document(meta, file_bytes)
    except PorticoError as err:
        field = "project_id" if err.status == 404 else "file"
        return await new_form(request, text, {field: err.message}, status=err.status)
    try:
        created = await service.create_approval(
            approval_in.model_copy(update={"document_id": document.id}), actor=who.actor
        )
    except PorticoError as err:
        return await new_form(request, text, {"": err.message}, status=err.status)
    raise web.HTTPSeeOther(f"/staff/approvals/{created.id}")


# --- a request's page -----------------------------------------------------------------------


async def approval_page(
    request: web.Request,
    approval_id: int,
    *,
    error: str | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    approval = await request.app[SERVICE].get_approval(approval_id)
    client = await request.app[QUERIES].client_of_approval(approval_id)
    document = approval.document
    return await render(
        request,
        "approval.html",
        {
            "title": f"{document.number} · {document.title}",
            "section": "board",
            "approval": approval,
            "document": document,
            "client": client,
            "error": error,
            "problems": problems,
            "notice": DONE_NOTICES.get(request.query.get("done", "")),
        },
        status=status,
    )


@routes.get("/staff/approvals/{id:\\d+}")
async def show(request: web.Request) -> web.Response:
    await signed_in(request)
    return await approval_page(request, path_int(request))


async def staff_action(request: web.Request, done: str, action: Any) -> web.Response:
    """Run a service call for the page; its errors redisplay the page with the message."""
    approval_id = path_int(request)
    try:
        await action(approval_id)
    except PorticoError as err:
        return await approval_page(request, approval_id, error=err.message, status=err.status)
    raise web.HTTPSeeOther(f"/staff/approvals/{approval_id}?done={done}")


@routes.post("/staff/approvals/{id:\\d+}/remind")
async def remind(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await checked_form(request, who)
    service = request.app[SERVICE]
    return await staff_action(
        request, "reminded", lambda i: service.remind(i, RemindIn(), actor=who.actor)
    )


@routes.post("/staff/approvals/{id:\\d+}/extend")
async def extend(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    data, errors = validated(ExtendIn, {"days": form.get("days", "")})
    if data is None:
        message = errors.get("days", "Enter a number of days.")
        return await approval_page(request, path_int(request), error=f"Days: {message}", status=422)
    service = request.app[SERVICE]
    return await staff_action(
        request, "extended", lambda i: service.extend(i, data, actor=who.actor)
    )


@routes.post("/staff/approvals/{id:\\d+}/void")
async def void(request: web.Request) -> web.Response:
    who = await signed_in(request)
    form = await checked_form(request, who)
    data, errors = validated(
        VoidIn, {"reason": form.get("reason", ""), "notify_client": bool(form.get("notify"))}
    )
    if data is None:
        message = "; ".join(errors.values())
        return await approval_page(request, path_int(request), error=message, status=422)
    service = request.app[SERVICE]
    return await staff_action(request, "voided", lambda i: service.void(i, data, actor=who.actor))


@routes.post("/staff/approvals/{id:\\d+}/verify")
async def verify(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await checked_form(request, who)
    approval_id = path_int(request)
    await request.app[SERVICE].load_approval(approval_id)  # 404 for an unknown one
    problems = await verify_approval(
        request.app[SERVICE].sessions, request.app[SETTINGS].files_dir, approval_id
    )
    return await approval_page(request, approval_id, problems=problems)


@routes.get("/staff/approvals/{id:\\d+}/signed.pdf")
async def signed_pdf(request: web.Request) -> web.Response:
    await signed_in(request)
    approval_id = path_int(request)
    data = await request.app[SERVICE].signed_pdf(approval_id)
    return pdf_response(data, f"signed-{approval_id}.pdf")
