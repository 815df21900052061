"""Staff REST API under /api/v1 (CONTRACT section 3): bearer key, JSON in and out."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from portico.errors import BadRequest, Invalid, NotFound, TooLarge, Unauthorized
from portico.schemas import (
    DOCUMENT_KINDS,
    ApprovalIn,
    ApprovalListOut,
    ClientIn,
    ClientPatch,
    DocumentFromItems,
    DocumentMeta,
    ExtendIn,
    ProjectIn,
    RemindIn,
    VersionFromItems,
    VersionMeta,
    VoidIn,
    describe_errors,
    known_id,
    parse_id,
)
from web.api.openapi import openapi_document
from web.http.keys import SERVICE, SETTINGS

routes = web.RouteTableDef()
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = {"/api/v1/openapi.json"}
API_ACTOR = "api"  # how the audit trail names the API's staff actions (CONTRACT section 9)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/v1/") and request.path not in PUBLIC_PATHS:
        expected = request.app[SETTINGS].staff_api_key
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
            raise Unauthorized("Send the staff API key as `Authorization: Bearer <key>`.")
    return await handler(request)


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest("The body is not valid JSON.") from err


def answer(value: BaseModel, status: int = 200) -> web.Response:
    """A typed answer as its JSON (the shape the OpenAPI document gives for it)."""
    return web.json_response(value.model_dump(mode="json"), status=status)


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise Invalid(describe_errors(err)) from err


async def body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    if optional and not request.can_read_body:
        return validate(model, {})
    return validate(model, await read_json(request))


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise Invalid(f"{name} must be a number.")
    if not known_id(value):  # no row has it: don't ask the database
        raise NotFound(f"Nothing has the {name} {raw}.")
    return value


def query_id(request: web.Request, name: str) -> int | None:
    """An optional id filter from the query string (`?client_id=7`); an empty one is no number
    (the OpenAPI document says integer), one that cannot be an id matches nothing."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = parse_id(raw)
    if value is None:
        raise Invalid(f"{name} must be a number.")
    return value if known_id(value) else 0  # 0 matches nothing


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[SETTINGS].public_url))


@routes.post("/api/v1/clients")
async def create_client(request: web.Request) -> web.Response:
    data = await body(request, ClientIn)
    return answer(await request.app[SERVICE].create_client(data), status=201)


@routes.patch("/api/v1/clients/{id}")
async def update_client(request: web.Request) -> web.Response:
    client_id = path_id(request)
    data = await body(request, ClientPatch)
    return answer(await request.app[SERVICE].update_client(client_id, data))


@routes.post("/api/v1/projects")
async def create_project(request: web.Request) -> web.Response:
    data = await body(request, ProjectIn)
    return answer(await request.app[SERVICE].create_project(data), status=201)


@routes.post("/api/v1/documents")
async def create_document(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if request.content_type.startswith("multipart/"):
        fields, file_bytes = await read_multipart(request, DocumentMeta)
        meta = validate(DocumentMeta, fields)
        if file_bytes is None:
            raise Invalid("Attach the PDF as the `file` field.")
        document = await service.create_document(meta, file_bytes)
    else:
        data = await read_json(request)
        if isinstance(data, dict) and data.get("kind") not in DOCUMENT_KINDS:
            raise Invalid(f"kind must be one of: {', '.join(DOCUMENT_KINDS)}.")
        document = await service.create_document(validate(DocumentFromItems, data))
    return answer(document, status=201)


@routes.post("/api/v1/documents/{id}/versions")
async def create_version(request: web.Request) -> web.Response:
    """A new version (a new document row, `version` N+1, `supersedes_id`): open requests for the
    old one are voided, approved ones marked superseded; `affected_approvals` lists them.
    Sending the same content again finishes an interrupted call (200, `created: false`)."""
    service = request.app[SERVICE]
    document_id = path_id(request)
    if request.content_type.startswith("multipart/"):
        fields, file_bytes = await read_multipart(request, VersionMeta)
        if file_bytes is None:
            raise Invalid("Attach the new PDF as the `file` field.")
        result = await service.create_version(
            document_id, validate(VersionMeta, fields), file_bytes
        )
    else:
        result = await service.create_version(
            document_id, validate(VersionFromItems, await read_json(request))
        )
    return answer(result, status=201 if result.created else 200)


MAX_FIELD_BYTES = 64 * 1024
# A form's text for true and false, as the OpenAPI document's `boolean` is sent (any case); the
# models take real booleans only (JSON `0` is no `false`), so other text there is refused.
FORM_BOOLEANS = {"true": True, "false": False}


@cache
def boolean_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of `model` whose schema is boolean (or boolean or null)."""
    fields = model.model_json_schema()["properties"].items()
    return frozenset(
        name
        for name, schema in fields
        if "boolean" in [kind.get("type") for kind in schema.get("anyOf", [schema])]
    )


async def read_text_field(part: BodyPartReader, what: str = "PDF") -> str:
    """A form field's text; a file or other bytes under any name but `file` is refused (422)."""
    raw = bytearray()
    while chunk := await part.read_chunk(8 * 1024):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise Invalid(f"The form field `{part.name}` is too long; attach the {what} as `file`.")
    try:
        data = bytes(part.decode(bytes(raw)))  # any Content-Transfer-Encoding, as part.text()
        return data.decode(part.get_charset(default="utf-8")).strip()
    except (UnicodeDecodeError, LookupError) as err:
        raise Invalid(
            f"The form field `{part.name}` must be text; attach the {what} as `file`."
        ) from err


async def read_multipart(
    request: web.Request, model: type[BaseModel], *, limit: int | None = None, what: str = "PDF"
) -> tuple[dict[str, Any], bytes | None]:
    """Form fields and the `file` part, refusing a file over the size limit (`limit`, else
    PORTICO_MAX_UPLOAD_BYTES) while reading, so no more than that is ever held in memory.
    An empty field counts as left out, as HTML forms send them; `model`'s booleans are read from
    their text."""
    limit = request.app[SETTINGS].max_upload_bytes if limit is None else limit
    try:
        reader = await request.multipart()
    except ValueError as err:  # e.g. `multipart/form-data` without a boundary
        raise BadRequest(f"The multipart body cannot be read: {err}.") from err
    fields: dict[str, Any] = {}
    file_bytes: bytes | None = None
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue  # nested multipart: not something a client sends here
        if part.name == "file":
            if file_bytes is not None:  # which one was meant? (and each could be `limit` long)
                raise Invalid(f"Send one {what} as the `file` part, not several.")
            chunks, size = [], 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"The {what} is larger than {limit // (1024 * 1024)} MB.")
                chunks.append(chunk)
            file_bytes = b"".join(chunks)
        elif part.name:
            value = await read_text_field(part, what)
            if value != "":
                fields[part.name] = value
    for name in boolean_fields(model) & fields.keys():
        fields[name] = FORM_BOOLEANS.get(fields[name].lower(), fields[name])
    return fields, file_bytes


@routes.post("/api/v1/approvals")
async def create_approval(request: web.Request) -> web.Response:
    data = await body(request, ApprovalIn)
    created = await request.app[SERVICE].create_approval(data, actor=API_ACTOR)
    return answer(created, status=201)


@routes.get("/api/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    query = request.query
    items = await request.app[SERVICE].list_approvals(
        status=query.get("status") or None,
        client_id=query_id(request, "client_id"),
        kind=query.get("kind") or None,
    )
    return answer(ApprovalListOut(items=items))


@routes.get("/api/v1/approvals/{id}")
async def show_approval(request: web.Request) -> web.Response:
    return answer(await request.app[SERVICE].get_approval(path_id(request)))


@routes.post("/api/v1/approvals/{id}/void")
async def void_approval(request: web.Request) -> web.Response:
    data = await body(request, VoidIn, optional=True)
    return answer(await request.app[SERVICE].void(path_id(request), data, actor=API_ACTOR))


@routes.post("/api/v1/approvals/{id}/extend")
async def extend_approval(request: web.Request) -> web.Response:
    data = await body(request, ExtendIn)
    return answer(await request.app[SERVICE].extend(path_id(request), data, actor=API_ACTOR))


@routes.post("/api/v1/approvals/{id}/remind")
async def remind_approval(request: web.Request) -> web.Response:
    data = await body(request, RemindIn, optional=True)
    result = await request.app[SERVICE].remind(path_id(request), data, actor=API_ACTOR)
    return answer(result, status=202)


@routes.get("/api/v1/approvals/{id}/signed.pdf")
async def signed_pdf(request: web.Request) -> web.Response:
    approval_id = path_id(request)
    data = await request.app[SERVICE].signed_pdf(approval_id)
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="signed-{approval_id}.pdf"'},
    )
