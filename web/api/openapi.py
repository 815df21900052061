"""The OpenAPI 3.1 document of the staff API, built from the same pydantic models that validate
requests (and that describe the answers), so it cannot drift from what the server does.

tests/web/test_openapi_fuzz.py holds it to that: Schemathesis finds no schema-valid request
refused, no invalid one accepted and no answer unlike its schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from portico.agreement_schemas import (
    AgreementCancelIn,
    AgreementIn,
    AgreementListOut,
    AgreementOut,
    AgreementUpdateIn,
    VisitMoveIn,
)
from portico.integration_schemas import (
    WebhookCreatedOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    WebhookIn,
    WebhookListOut,
)
from portico.message_schemas import MessageIn, MessageListOut, MessageOut
from portico.photo_schemas import PHOTO_TYPES, PhotoListOut, PhotoMeta, PhotoOut, PhotoUpdateIn
from portico.portal_schemas import (
    BookingIn,
    BookingListOut,
    BookingOut,
    BookingUpdateIn,
    InviteIn,
    InviteOut,
    InvoiceIn,
    InvoiceListOut,
    InvoiceOut,
    InvoiceVoidIn,
    PaymentIn,
    PaymentRecordedOut,
    PaymentReviewListOut,
    PortalSettingsIn,
    PortalSettingsOut,
    ProjectRetainageOut,
    ProjectUpdateIn,
    RetainageReleaseIn,
    ServiceRequestListOut,
)
from portico.schemas import (
    APPROVAL_STATUSES,
    DOCUMENT_KINDS,
    ApprovalCreatedOut,
    ApprovalIn,
    ApprovalListOut,
    ApprovalOut,
    ClientIn,
    ClientOut,
    ClientPatch,
    DeadlineOut,
    DocumentFromItems,
    DocumentMeta,
    DocumentOut,
    ExtendIn,
    ProjectIn,
    ProjectOut,
    RemindIn,
    VersionFromItems,
    VersionMeta,
    VersionOut,
    VoidIn,
)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
ERRORS = [
    (400, "Malformed request"),
    (401, "Missing or wrong API key"),
    (404, "Not found (also any id that cannot name a row: 0, negative, too big)"),
    (409, "Conflicts with the current state"),
    (422, "Invalid input"),
]
ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
    "description": "A row's id. One that names nothing (0, negative, beyond 2^31 - 1) answers 404.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


CLIENT_FILTER = _query("client_id", {"type": "integer"}, "Only this client's.")


def _status_filter(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return _query(
        "status",
        {"type": "string"},
        f"Only those with this status ({', '.join(values)}); empty: any.",
    )


def _op(
    summary: str,
    answer: type[BaseModel] | None,
    *,
    body: dict[str, Any] | None = None,
    ok: tuple[int, ...] = (200,),
    ok_type: str = "application/json",
    path_id: bool = False,
    query: list[dict[str, Any]] | None = None,
    optional_body: bool = False,
    too_large: bool = False,
) -> dict[str, Any]:
    """One operation: its success answers (`answer`'s schema, or `ok_type` bytes) and errors."""
    content = {ok_type: {"schema": _ref(answer)}} if answer else {ok_type: {}}
    errors = [*ERRORS, *([(413, "Larger than PORTICO_MAX_UPLOAD_BYTES")] if too_large else [])]
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            **{str(code): {"description": "Success", "content": content} for code in ok},
            **{
                str(code): {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, text in sorted(errors)
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": not optional_body, "content": body}
    parameters = [*([ID_PARAMETER] if path_id else []), *(query or [])]
    if parameters:
        op["parameters"] = parameters
    return op


def _form(
    model: type[BaseModel], schemas: dict[str, Any], media_type: str = "application/pdf"
) -> dict[str, Any]:
    """A multipart upload: `model`'s fields as text parts (an empty one counts as left out, as
    HTML forms send them) and the file (a PDF unless `media_type` says otherwise) as `file`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "contentMediaType": media_type}
    }
    for name, field in schema["properties"].items():
        if name in required:
            properties[name] = field
        else:  # a text part cannot be null: left out or empty instead
            kinds = [k for k in field.get("anyOf", [field]) if k.get("type") != "null"]
            properties[name] = {"anyOf": [*kinds, {"const": ""}]}
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["file", *sorted(required)],
                "properties": properties,
            },
        }
    }


REQUEST_MODELS: list[type[BaseModel]] = [
    ClientIn,
    ClientPatch,
    ProjectIn,
    DocumentFromItems,
    VersionFromItems,
    ApprovalIn,
    VoidIn,
    ExtendIn,
    RemindIn,
    InviteIn,
    ProjectUpdateIn,
    BookingIn,
    BookingUpdateIn,
    PortalSettingsIn,
    InvoiceIn,
    PaymentIn,
    InvoiceVoidIn,
    RetainageReleaseIn,
    WebhookIn,
    PhotoUpdateIn,
    MessageIn,
    AgreementIn,
    AgreementUpdateIn,
    AgreementCancelIn,
    VisitMoveIn,
]
ANSWER_MODELS: list[type[BaseModel]] = [
    ClientOut,
    ProjectOut,
    DocumentOut,
    VersionOut,
    ApprovalCreatedOut,
    ApprovalListOut,
    ApprovalOut,
    DeadlineOut,
    InviteOut,
    BookingOut,
    BookingListOut,
    ServiceRequestListOut,
    PortalSettingsOut,
    InvoiceOut,
    InvoiceListOut,
    PaymentRecordedOut,
    ProjectRetainageOut,
    WebhookCreatedOut,
    WebhookListOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    PhotoOut,
    PhotoListOut,
    MessageOut,
    MessageListOut,
    AgreementOut,
    AgreementListOut,
]


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    for models, mode in ((REQUEST_MODELS, "validation"), (ANSWER_MODELS, "serialization")):
        for model in models:
            schema = model.model_json_schema(
                ref_template="#/components/schemas/{model}",
                mode=mode,  # type: ignore[arg-type]
            )
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
    return schemas


def _paths(schemas: dict[str, Any]) -> dict[str, Any]:
    upload = {**_form(DocumentMeta, schemas), **_json(DocumentFromItems)}
    version_upload = {**_form(VersionMeta, schemas), **_json(VersionFromItems)}
    return {
        "/clients": {"post": _op("Create a client", ClientOut, body=_json(ClientIn), ok=(201,))},
        "/clients/{id}": {
            "patch": _op(
                "Change a client (as PATCH: only the fields sent), e.g. its locale or timezone",
                ClientOut,
                body=_json(ClientPatch),
                path_id=True,
            )
        },
        "/clients/{id}/invite": {
            "post": _op(
                "Email a portal invitation (magic link)",
                InviteOut,
                body=_json(InviteIn),
                ok=(202,),
                path_id=True,
                optional_body=True,
            )
        },
        "/projects": {
            "post": _op("Create a project", ProjectOut, body=_json(ProjectIn), ok=(201,))
        },
        "/projects/{id}": {
            "get": _op(
                "One project, with the retainage held on its invoices",
                ProjectRetainageOut,
                path_id=True,
            ),
            "patch": _op(
                "Change a project (status active/complete)",
                ProjectOut,
                body=_json(ProjectUpdateIn),
                path_id=True,
            ),
        },
        "/documents": {
            "post": _op(
                "Upload a PDF or render one from line items",
                DocumentOut,
                body=upload,
                ok=(201,),
                too_large=True,
            )
        },
        "/documents/{id}/versions": {
            "post": _op(
                "Add a new version (a new document that supersedes this one): open requests "
                "for this one are voided with reason 'Superseded by version N', approved ones "
                "are marked superseded; the answer lists them in affected_approvals. Sending "
                "the same content again finishes an interrupted call (200, created: false)",
                VersionOut,
                body=version_upload,
                ok=(200, 201),
                path_id=True,
                too_large=True,
            )
        },
        "/approvals": {
            "post": _op(
                "Send a document for approval",
                ApprovalCreatedOut,
                body=_json(ApprovalIn),
                ok=(201,),
            ),
            "get": _op(
                "List approval requests",
                ApprovalListOut,
                query=[
                    _status_filter(APPROVAL_STATUSES),
                    CLIENT_FILTER,
                    _query(
                        "kind",
                        {"type": "string"},
                        f"Only documents of this kind ({', '.join(DOCUMENT_KINDS)}); empty: any.",
                    ),
                ],
            ),
        },
        "/approvals/{id}": {
            "get": _op("One request with approvers and audit events", ApprovalOut, path_id=True)
        },
        "/approvals/{id}/void": {
            "post": _op(
                "Void a request",
                ApprovalOut,
                body=_json(VoidIn),
                path_id=True,
                optional_body=True,
            )
        },
        "/approvals/{id}/extend": {
            "post": _op("Move the deadline", DeadlineOut, body=_json(ExtendIn), path_id=True)
        },
        "/approvals/{id}/remind": {
            "post": _op(
                "Remind now",
                DeadlineOut,
                body=_json(RemindIn),
                ok=(202,),
                path_id=True,
                optional_body=True,
            )
        },
        "/approvals/{id}/signed.pdf": {
            "get": _op(
                "The signed PDF with its certificate",
                None,
                ok_type="application/pdf",
                path_id=True,
            )
        },
        "/bookings": {
            "post": _op(
                "Create a booking, appointment or job",
                BookingOut,
                body=_json(BookingIn),
                ok=(201,),
            ),
            "get": _op(
                "List bookings",
                BookingListOut,
                query=[
                    CLIENT_FILTER,
                    _query("since", {"type": "string", "format": "date"}, "From this date on."),
                ],
            ),
        },
        "/bookings/{id}": {
            "patch": _op("Change a booking", BookingOut, body=_json(BookingUpdateIn), path_id=True)
        },
        "/service-requests": {
            "get": _op(
                "Service requests sent from the portal",
                ServiceRequestListOut,
                query=[CLIENT_FILTER, _status_filter(["new"])],
            )
        },
        "/portal/settings": {
            "get": _op("Portal settings", PortalSettingsOut),
            "patch": _op(
                "Change portal settings (only the fields sent)",
                PortalSettingsOut,
                body=_json(PortalSettingsIn),
            ),
            "put": _op(
                "Change portal settings (as PATCH: only the fields sent)",
                PortalSettingsOut,
                body=_json(PortalSettingsIn),
            ),
        },
        "/invoices": {
            "post": _op(
                "Create an invoice (PDF rendered, reminders scheduled)",
                InvoiceOut,
                body=_json(InvoiceIn),
                ok=(201,),
            ),
            "get": _op(
                "List invoices",
                InvoiceListOut,
                query=[CLIENT_FILTER, _status_filter(["open", "partially_paid", "paid", "void"])],
            ),
        },
        "/invoices/{id}": {"get": _op("One invoice with its payments", InvoiceOut, path_id=True)},
        "/invoices/{id}/invoice.pdf": {
            "get": _op("The invoice PDF", None, ok_type="application/pdf", path_id=True)
        },
        "/invoices/{id}/payments": {
            "post": _op(
                "Record a manual payment (check, cash, bank transfer)",
                PaymentRecordedOut,
                body=_json(PaymentIn),
                ok=(201,),
                path_id=True,
            )
        },
        "/projects/{id}/retainage/release": {
            "post": _op(
                "Bill all retainage held on the project with one new invoice (emailed like "
                "any); 409 no_retainage_held when nothing is held (a second release)",
                InvoiceOut,
                body=_json(RetainageReleaseIn),
                ok=(201,),
                path_id=True,
            )
        },
        "/payment-reviews": {
            "get": _op(
                "Stripe events flagged for staff (mismatched, unknown or overpaid)",
                PaymentReviewListOut,
                query=[_query("invoice_id", {"type": "integer"}, "Only this invoice's.")],
            )
        },
        "/invoices/{id}/void": {
            "post": _op(
                "Void an unpaid invoice",
                InvoiceOut,
                body=_json(InvoiceVoidIn),
                path_id=True,
                optional_body=True,
            )
        },
    }


EVENT_ID_PARAMETER = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 40},
    "description": "The event's id (its `webhook-id`), as the delivery log shows it.",
}
DATE_RANGE = [
    _query("from", {"type": "string", "format": "date"}, "From this date on (inclusive)."),
    _query("to", {"type": "string", "format": "date"}, "Up to this date (inclusive)."),
]


def _no_content(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["204"].pop("content")
    return op


def _integration_paths() -> dict[str, Any]:
    """Webhooks and exports (CONTRACT section 11)."""
    return {
        "/webhooks": {
            "post": _op(
                "Add a webhook endpoint; the answer shows its signing secret, once",
                WebhookCreatedOut,
                body=_json(WebhookIn),
                ok=(201,),
            ),
            "get": _op("List webhook endpoints", WebhookListOut),
        },
        "/webhooks/{id}": {
            "delete": _no_content(
                _op("Delete an endpoint: nothing more is sent to it", None, ok=(204,), path_id=True)
            )
        },
        "/webhooks/{id}/deliveries": {
            "get": _op(
                "The endpoint's delivery log, newest first", WebhookDeliveryListOut, path_id=True
            )
        },
        "/webhooks/{id}/deliveries/{event_id}/retry": {
            "post": _op(
                "Send a failed delivery again (the same webhook-id)",
                WebhookDeliveryOut,
                ok=(202,),
                path_id=True,
                query=[EVENT_ID_PARAMETER],
            )
        },
        "/exports/invoices.csv": {
            "get": _op(
                "Invoices issued in the range, a row per line (QuickBooks Online's columns)",
                None,
                ok_type="text/csv",
                query=DATE_RANGE,
            )
        },
        "/exports/payments.csv": {
            "get": _op("Payments made in the range", None, ok_type="text/csv", query=DATE_RANGE)
        },
    }


def _image(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["200"]["content"] = {kind: {} for kind in PHOTO_TYPES}
    return op


def _photo_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """Photos of jobs (CONTRACT section 13)."""
    upload = _op(
        "Add a photo to a job (a booking of kind job; another kind answers 409 not_a_job): "
        "JPEG, PNG or WebP up to 15 MiB, checked by decoding it, re-encoded without its "
        "metadata (EXIF, GPS, XMP) and upright; a damaged file or one that is no such image "
        "answers 422 invalid_image, one of more than 60 million pixels 413 too_many_pixels",
        PhotoOut,
        body=_form(PhotoMeta, schemas, "image/jpeg"),
        ok=(201,),
        path_id=True,
        too_large=True,
    )
    upload["responses"]["413"]["description"] = "Larger than 15 MiB, or too many pixels"
    return {
        "/bookings/{id}/photos": {
            "post": upload,
            "get": _op("A job's photos, in upload order", PhotoListOut, path_id=True),
        },
        "/photos/{id}": {
            "get": _op("One photo", PhotoOut, path_id=True),
            "patch": _op(
                "Change a photo's caption or portal_visible (only the fields sent)",
                PhotoOut,
                body=_json(PhotoUpdateIn),
                path_id=True,
            ),
            "delete": _no_content(_op("Delete a photo", None, ok=(204,), path_id=True)),
        },
        "/photos/{id}/image": {
            "get": _image(_op("The photo (at most 4096 px on its long side)", None, path_id=True))
        },
        "/photos/{id}/thumbnail": {
            "get": _image(_op("Its thumbnail (at most 400 px)", None, path_id=True))
        },
    }


def _message_paths() -> dict[str, Any]:
    """A client's message thread (CONTRACT section 14)."""
    return {
        "/clients/{id}/messages": {
            "get": _op("The client's message thread, oldest first", MessageListOut, path_id=True),
            "post": _op(
                "Reply to the client: emailed to them, and texted when they have a phone that "
                "did not reply STOP (after their quiet hours). An Idempotency-Key header makes "
                "a retried call record and send it once",
                MessageOut,
                body=_json(MessageIn),
                ok=(201,),
                path_id=True,
            ),
        }
    }


VISIT_PARAMETER = {
    "name": "n",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
    "description": "The visit's number (1 is the first); one the agreement has not is 404.",
}


def _agreement_paths() -> dict[str, Any]:
    """Service agreements (CONTRACT section 13)."""
    return {
        "/agreements": {
            "post": _op(
                "Create a service agreement: its visits are booked and reminded by its workflow",
                AgreementOut,
                body=_json(AgreementIn),
                ok=(201,),
            ),
            "get": _op("List service agreements", AgreementListOut, query=[CLIENT_FILTER]),
        },
        "/agreements/{id}": {
            "get": _op("One agreement with its visits", AgreementOut, path_id=True),
            "patch": _op(
                "Change the reminder lead of the visits not reminded yet",
                AgreementOut,
                body=_json(AgreementUpdateIn),
                path_id=True,
            ),
        },
        "/agreements/{id}/cancel": {
            "post": _op(
                "Cancel an agreement: nothing more is booked or reminded",
                AgreementOut,
                body=_json(AgreementCancelIn),
                path_id=True,
                optional_body=True,
            )
        },
        "/agreements/{id}/visits/{n}/move": {
            "post": _op(
                "Move a visit (and its booking) to another date",
                AgreementOut,
                body=_json(VisitMoveIn),
                path_id=True,
                query=[VISIT_PARAMETER],
            )
        },
    }


def openapi_document(server_url: str) -> dict[str, Any]:
    schemas = _components()
    paths = {
        **_paths(schemas),
        **_integration_paths(),
        **_photo_paths(schemas),
        **_message_paths(),
        **_agreement_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portico staff API",
            "version": "1",
            "description": "No text may contain the NUL character (\\u0000): such a request "
            "is 422 and changes nothing.",
        },
        "servers": [{"url": server_url.rstrip("/") + "/api/v1"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
