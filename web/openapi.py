"""The OpenAPI 3.1 document of the staff API, built from the same pydantic models that
validate requests, so it cannot drift from what the server accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from portico.schemas import (
    DOCUMENT_KINDS,
    ApprovalIn,
    ClientIn,
    DocumentFromItems,
    ExtendIn,
    ProjectIn,
    RemindIn,
    VersionFromItems,
    VoidIn,
)

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _op(
    summary: str,
    *,
    body: Any = None,
    ok: int = 200,
    ok_type: str = "application/json",
    params: list[str] | None = None,
    optional_body: bool = False,
    too_large: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "Success", "content": {ok_type: {}}},
            **{
                str(code): {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, text in [
                    (400, "Malformed request"),
                    (401, "Missing or wrong API key"),
                    (404, "Not found"),
                    (409, "Conflicts with the current state"),
                    *([(413, "Larger than PORTICO_MAX_UPLOAD_BYTES")] if too_large else []),
                    (422, "Invalid input"),
                ]
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": not optional_body, "content": body}
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
            for p in params
        ]
    return op


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def openapi_document(server_url: str) -> dict[str, Any]:
    from web import staff_portal  # imports staff_api, which imports this module

    models: list[type[BaseModel]] = [
        ClientIn,
        ProjectIn,
        DocumentFromItems,
        VersionFromItems,
        ApprovalIn,
        VoidIn,
        ExtendIn,
        RemindIn,
        *staff_portal.MODELS,
    ]
    schemas: dict[str, Any] = {"Error": ERROR}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    upload = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "project_id", "kind", "title", "number"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "project_id": {"type": "integer"},
                    "kind": {"type": "string", "enum": list(DOCUMENT_KINDS)},
                    "title": {"type": "string"},
                    "number": {"type": "string"},
                    "amount_cents": {"type": "integer"},
                    "currency": {"type": "string"},
                    "portal_visible": {"type": "boolean"},
                },
            }
        },
        **_json(DocumentFromItems),
    }
    version_upload = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string"},
                    "amount_cents": {"type": "integer"},
                    "currency": {"type": "string"},
                    "portal_visible": {"type": "boolean"},
                    "notify_client": {"type": "boolean", "default": True},
                },
            }
        },
        **_json(VersionFromItems),
    }
    paths = {
        "/clients": {"post": _op("Create a client", body=_json(ClientIn), ok=201)},
        "/projects": {"post": _op("Create a project", body=_json(ProjectIn), ok=201)},
        "/documents": {
            "post": _op(
                "Upload a PDF or render one from line items", body=upload, ok=201, too_large=True
            )
        },
        "/documents/{id}/versions": {
            "post": _op(
                "Add a new version (a new document that supersedes this one): open requests "
                "for this one are voided with reason 'Superseded by version N', approved ones "
                "are marked superseded; the answer lists them in affected_approvals",
                body=version_upload,
                ok=201,
                params=["id"],
                too_large=True,
            )
        },
        "/approvals": {
            "post": _op("Send a document for approval", body=_json(ApprovalIn), ok=201),
            "get": {
                **_op("List approval requests"),
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": t}}
                    for n, t in [("status", "string"), ("client_id", "integer"), ("kind", "string")]
                ],
            },
        },
        "/approvals/{id}": {
            "get": _op("One request with approvers and audit events", params=["id"])
        },
        "/approvals/{id}/void": {
            "post": _op("Void a request", body=_json(VoidIn), params=["id"], optional_body=True)
        },
        "/approvals/{id}/extend": {
            "post": _op("Move the deadline", body=_json(ExtendIn), params=["id"])
        },
        "/approvals/{id}/remind": {
            "post": _op(
                "Remind now", body=_json(RemindIn), ok=202, params=["id"], optional_body=True
            )
        },
        "/approvals/{id}/signed.pdf": {
            "get": _op(
                "The signed PDF with its certificate", ok_type="application/pdf", params=["id"]
            )
        },
    }
    paths.update(staff_portal.openapi_paths(_op, _json))  # portal, bookings, invoices
    return {
        "openapi": "3.1.0",
        "info": {"title": "Portico staff API", "version": "1"},
        "servers": [{"url": server_url.rstrip("/") + "/api/v1"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
