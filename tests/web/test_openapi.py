"""The OpenAPI document (GET /api/v1/openapi.json) says what the server does: each of these was a
Schemathesis finding (issue 10, finding 7); test_openapi_fuzz.py runs Schemathesis itself."""

from __future__ import annotations

import jsonschema
from aiohttp import FormData

from tests.support.helpers import approvers, create_approval, sample_pdf, seed_document


async def spec(stack) -> dict:
    response = await stack.http.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


def validator(doc: dict, name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, its `$ref`s resolved inside the document."""
    schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


async def test_ids_that_name_nothing_are_404_and_the_schema_says_integer(stack):
    doc = await spec(stack)
    parameter = doc["paths"]["/approvals/{id}"]["get"]["parameters"][0]
    assert parameter["schema"] == {"type": "integer"}
    for raw in ("0", "-5", "-740274", "2147483648", "99999999999999999999"):
        for path in (f"/approvals/{raw}", f"/invoices/{raw}/invoice.pdf", f"/bookings/{raw}"):
            method = "PATCH" if path.startswith("/bookings") else "GET"
            json = {"notes": "x"} if method == "PATCH" else None
            error = await stack.api(method, path, 404, json=json)
            assert error["error"]["code"] == "not_found", path
    await stack.api("GET", "/approvals/abc", 422)  # no integer at all: refused as input
    # A filter that cannot be an id matches nothing; an empty one is no integer (422).
    assert (await stack.api("GET", "/approvals?client_id=-3", 200))["items"] == []
    error = await stack.api("GET", "/approvals?client_id=", 422)
    assert "client_id" in error["error"]["message"]
    await stack.api("GET", "/bookings?since=", 422)
    await stack.api("GET", "/bookings?since=20250131", 422)  # not YYYY-MM-DD
    assert (await stack.api("GET", "/bookings?since=2025-01-31", 200))["items"] == []


async def test_fields_that_cannot_be_null_say_so_and_null_changes_nothing(stack):
    doc = await spec(stack)
    settings_schema = doc["components"]["schemas"]["PortalSettingsIn"]["properties"]
    assert settings_schema["enabled"] == {"title": "Enabled", "type": "boolean"}
    assert {"type": "null"} in settings_schema["welcome_message"]["anyOf"]  # this one clears
    before = await stack.api("GET", "/portal/settings", 200)
    for body in ({"enabled": None}, {"show_files": 0}, {"enabled": "true"}):
        error = await stack.api("PATCH", "/portal/settings", 422, json=body)
        assert error["error"]["message"]
    assert await stack.api("GET", "/portal/settings", 200) == before


async def test_approver_and_booking_rules_are_in_the_schema(stack):
    doc = await spec(stack)
    schemas = doc["components"]["schemas"]
    approver = validator(doc, "ApproverIn")
    assert not approver.is_valid({"name": "No contact"})
    assert not approver.is_valid({"name": "Null", "email": None})
    assert approver.is_valid({"name": "Phone", "phone": "+15550100001"})
    approval = validator(doc, "ApprovalIn")
    by_email = {"document_id": 1, "approvers": approvers(1)}
    assert approval.is_valid(by_email)
    assert not approval.is_valid({**by_email, "channels": ["sms"]})  # no phone to text
    assert "anyOf" in schemas["BookingIn"]
    assert not validator(doc, "BookingIn").is_valid({"title": "Visit", "date": "2026-01-05"})
    # What the schema refuses the server refuses, and the other way round.
    document = await seed_document(stack)
    body = {"document_id": document["id"], "approvers": approvers(1), "channels": ["sms"]}
    await stack.api("POST", "/approvals", 422, json=body)
    await stack.api("POST", "/bookings", 422, json={"title": "Visit", "date": "2026-01-05"})
    bad_email = {"document_id": document["id"], "approvers": [{"name": "C", "email": "a\x1c@b.cc"}]}
    await stack.api("POST", "/approvals", 422, json=bad_email)  # broke the mail's To header
    assert (await stack.api("GET", "/approvals", 200))["items"] == []


async def test_quantities_and_totals(stack):
    doc = await spec(stack)
    item = validator(doc, "LineItem")
    for quantity in ("1.5", 1.5, 4, "0.0001"):
        assert item.is_valid({"description": "x", "quantity": quantity, "unit_price_cents": 1})
    for quantity in ("", "0", "1e3", " 1", 0, "1.23456"):
        assert not item.is_valid({"description": "x", "quantity": quantity, "unit_price_cents": 1})
    document = await seed_document(stack)
    for quantity in ("", "0", "1e3"):
        items = [{"description": "x", "quantity": quantity, "unit_price_cents": 1}]
        await stack.api(
            "POST", f"/documents/{document['id']}/versions", 422, json={"line_items": items}
        )
    # A float with more than 4 places is read rounded (JSON Schema cannot say "4 places").
    items = [{"description": "x", "quantity": 1.23456, "unit_price_cents": 100}]
    version = await stack.api(
        "POST", f"/documents/{document['id']}/versions", 201, json={"line_items": items}
    )
    assert version["line_items"][0]["quantity"] == "1.2346"
    # A credit (negative total) gets a new version: it was a 500.
    credit = [{"description": "Refund", "quantity": 1, "unit_price_cents": -5000}]
    first = await stack.api(
        "POST", f"/documents/{version['id']}/versions", 201, json={"line_items": credit}
    )
    assert first["amount_cents"] == -5000
    again = [{"description": "Refund", "quantity": 2, "unit_price_cents": -5000}]
    second = await stack.api(
        "POST", f"/documents/{first['id']}/versions", 201, json={"line_items": again}
    )
    assert second["amount_cents"] == -10000


async def test_uploads_are_described_from_the_model_and_booleans_are_booleans(stack):
    doc = await spec(stack)
    form = doc["paths"]["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    properties = form["schema"]["properties"]
    assert properties["title"]["minLength"] == 1
    assert properties["file"]["contentMediaType"] == "application/pdf"
    assert {"type": "boolean"} in [
        {"type": k.get("type")} for k in properties["portal_visible"]["anyOf"]
    ]
    document = await seed_document(stack)
    project_id = document["project_id"]

    def upload(portal_visible: str) -> FormData:
        data = FormData()
        data.add_field("file", sample_pdf("Up"), filename="a.pdf", content_type="application/pdf")
        for name, value in [
            ("project_id", str(project_id)),
            ("kind", "estimate"),
            ("title", "Upload"),
            ("number", f"E-{portal_visible}"),
            ("portal_visible", portal_visible),
        ]:
            data.add_field(name, value)
        return data

    bad = await stack.http.post("/api/v1/documents", data=upload("maybe"), headers=stack.auth)
    assert bad.status == 422
    good = await stack.http.post("/api/v1/documents", data=upload("True"), headers=stack.auth)
    assert good.status == 201 and (await good.json())["portal_visible"] is True
    # `multipart/form-data` without a boundary: a malformed request, not a server error.
    response = await stack.http.post(
        "/api/v1/documents",
        data=b"",
        headers={**stack.auth, "Content-Type": "multipart/form-data"},
    )
    assert response.status == 400
    await stack.api("POST", "/documents", 422, json={**_items(project_id), "portal_visible": 0})


def _items(project_id: int) -> dict:
    return {
        "project_id": project_id,
        "kind": "rfi",
        "title": "Question",
        "number": "RFI-1",
        "line_items": [{"description": "x", "quantity": 1, "unit_price_cents": 1}],
    }


async def test_answers_match_their_schemas_and_405_says_allow(stack):
    doc = await spec(stack)
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    assert validator(doc, "ApprovalCreatedOut").is_valid(created)
    shown = await stack.api("GET", f"/approvals/{created['id']}", 200)
    validator(doc, "ApprovalOut").validate(shown)
    validator(doc, "ApprovalListOut").validate(await stack.api("GET", "/approvals", 200))
    validator(doc, "DocumentOut").validate(document)
    assert not validator(doc, "ApprovalOut").is_valid({**shown, "status": "lost"})
    ok = doc["paths"]["/approvals/{id}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApprovalOut"
    }
    response = await stack.http.request("TRACE", "/api/v1/approvals", headers=stack.auth)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_a_project_of_another_client_is_a_conflict(stack):
    document = await seed_document(stack)
    other = await stack.api(
        "POST", "/clients", 201, json={"name": "Other", "email": "other@client.test"}
    )
    body = {
        "client_id": other["id"],
        "project_id": document["project_id"],
        "title": "Visit",
        "date": "2026-01-05",
    }
    error = await stack.api("POST", "/bookings", 409, json=body)
    assert error["error"]["code"] == "project_of_another_client"
    assert (await stack.api("GET", "/bookings", 200))["items"] == []
