"""A new version of a document supersedes the old one: `POST /api/v1/documents/{id}/versions`."""

from __future__ import annotations

from aiohttp import FormData

from portico import pdf
from portico.audit import verify_approval
from portico.errors import Unavailable
from tests.support.helpers import (
    create_approval,
    outbox,
    sample_pdf,
    seed_document,
    token_of,
    wait_until,
)
from tests.web.test_signing_page import open_page, post
from web.http.keys import SERVICE
from workflows.types import Supersession

NEW_ITEMS = [
    {"description": "Outlet", "quantity": 6, "unit_price_cents": 12500},
    {"description": "Labour", "quantity": 2, "unit_price_cents": 9000},
]


def first_token(created: dict) -> str:
    return token_of(created["approvers"][0]["sign_url"])


async def test_new_version_voids_open_requests_and_marks_approved_ones(stack):
    document = await seed_document(stack)
    pending = await create_approval(stack, document["id"])
    # Only approvers who were sent the request are told it was withdrawn: let it go out.
    await wait_until(lambda: outbox(stack.sessions, "a1@client.test"))
    approved = await create_approval(
        stack, document["id"], approvers=[{"name": "Pat", "email": "pat@client.test"}]
    )
    declined = await create_approval(
        stack, document["id"], approvers=[{"name": "Lee", "email": "lee@client.test"}]
    )
    response = await post(
        stack, first_token(approved), "approve", {"full_name": "Pat", "consent": "on"}
    )
    assert response.status == 303
    response = await post(stack, first_token(declined), "decline", {"reason": "Not now"})
    assert response.status == 303
    await wait_until(lambda: _signed_pdf(stack, approved["id"]))  # the request has finished

    result = await stack.api(
        "POST",
        f"/documents/{document['id']}/versions",
        201,
        json={"line_items": NEW_ITEMS, "title": "Extra outlets (revised)"},
    )
    assert result["created"] is True
    assert result["version"] == 2 and result["supersedes_id"] == document["id"]
    assert result["id"] != document["id"] and result["sha256"] != document["sha256"]
    assert result["number"] == "CO-17" and result["kind"] == "change_order"
    assert result["title"] == "Extra outlets (revised)" and result["amount_cents"] == 93000
    assert result["supersedes"]["version"] == 1
    affected = {a["id"]: a for a in result["affected_approvals"]}
    assert set(affected) == {pending["id"], approved["id"]}  # the declined one is left alone
    assert affected[pending["id"]] == {
        "id": pending["id"],
        "previous_status": "pending",
        "status": "void",
        "action": "voided",
        "superseded": True,
    }
    assert affected[approved["id"]]["action"] == "marked_superseded"
    assert affected[approved["id"]]["status"] == "approved"

    shown = await stack.api("GET", f"/approvals/{pending['id']}")
    assert shown["status"] == "void" and shown["void_reason"] == "Superseded by version 2"
    assert shown["superseded"] is True and shown["superseded_by_document_id"] == result["id"]
    voided = [e for e in shown["events"] if e["type"] == "voided"]
    assert voided and voided[0]["data"]["reason"] == "Superseded by version 2"

    shown = await stack.api("GET", f"/approvals/{approved['id']}")
    assert shown["status"] == "approved" and shown["superseded"] is True
    # The worker appends the event (the request's workflow, or a short one once it has ended).
    event = await wait_until(lambda: _event(stack, approved["id"], "superseded"))
    assert event["type"] == "superseded" and event["data"]["version"] == 2
    assert event["data"]["sha256"] == result["sha256"]
    assert await verify_approval(stack.sessions, stack.settings.files_dir, approved["id"]) == []

    shown = await stack.api("GET", f"/approvals/{declined['id']}")
    assert shown["status"] == "declined" and shown["superseded"] is False

    # The client whose request was voided is told why.
    async def void_notice():
        found = [m for m in await outbox(stack.sessions, "a1@client.test") if "withdrawn" in m.body]
        return found[0] if found else None

    assert "Superseded by version 2" in (await wait_until(void_notice)).body

    # The signing links say the document changed and a new request must be sent.
    status, html = await open_page(stack, first_token(pending))
    assert status == 200 and "This document has changed" in html
    assert "version 2" in html and "A new request must be sent" in html
    assert 'name="full_name"' not in html
    response = await post(
        stack, first_token(pending), "approve", {"full_name": "A", "consent": "on"}
    )
    assert response.status == 409
    status, html = await open_page(stack, first_token(approved))
    assert "Thank you" in html and "This document has since changed" in html
    assert "a new request must be sent" in html

    # Requests can no longer be made for the old version.
    body = await stack.api(
        "POST",
        "/approvals",
        409,
        json={"document_id": document["id"], "approvers": [{"name": "X", "email": "x@c.test"}]},
    )
    assert body["error"]["code"] == "superseded_document"

    # The new version is sent for approval as usual.
    fresh = await create_approval(stack, result["id"])
    status, html = await open_page(stack, first_token(fresh))
    assert "Extra outlets (revised)" in html and 'name="full_name"' in html


async def _event(stack, approval_id: int, kind: str):
    shown = await stack.api("GET", f"/approvals/{approval_id}")
    found = [e for e in shown["events"] if e["type"] == kind]
    return found[-1] if found else None


async def test_superseding_a_running_request_goes_through_its_workflow(stack):
    """The `superseded` event of a request whose workflow still runs is appended by that
    workflow's activity, in turn with its other events; the chain stays valid."""
    document = await seed_document(stack)
    created = await create_approval(
        stack, document["id"], approvers=[{"name": "Pat", "email": "pat@client.test"}]
    )
    change = Supersession(created["id"], 4242, 2, "ef" * 32, "Superseded by version 2")
    gateway = stack.http.server.app[SERVICE].temporal
    await gateway.supersede(change)
    await gateway.supersede(change)  # twice: recorded once
    event = await wait_until(lambda: _event(stack, created["id"], "superseded"))
    assert event["actor"] == "staff" and event["data"]["document_id"] == 4242
    response = await post(
        stack, first_token(created), "approve", {"full_name": "Pat", "consent": "on"}
    )
    assert response.status == 303
    await wait_until(lambda: _signed_pdf(stack, created["id"]))
    handle = stack.temporal.get_workflow_handle(created["workflow_id"])
    assert (await handle.result())["status"] == "approved"
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert [e["type"] for e in shown["events"]].count("superseded") == 1
    assert await verify_approval(stack.sessions, stack.settings.files_dir, created["id"]) == []


async def _signed_pdf(stack, approval_id: int):
    shown = await stack.api("GET", f"/approvals/{approval_id}")
    return shown["signed_pdf_sha256"]


async def test_versions_chain_and_only_the_latest_can_be_replaced(stack):
    document = await seed_document(stack)
    second = await stack.api(
        "POST", f"/documents/{document['id']}/versions", 201, json={"line_items": NEW_ITEMS}
    )
    assert second["affected_approvals"] == [] and second["title"] == document["title"]
    body = await stack.api(
        "POST", f"/documents/{document['id']}/versions", 409, json={"line_items": NEW_ITEMS[1:]}
    )
    assert body["error"]["code"] == "not_latest_version"
    assert str(second["id"]) in body["error"]["message"]

    upload = _pdf("Revised by the estimator")
    form = FormData()
    form.add_field("file", upload, filename="v3.pdf", content_type="application/pdf")
    form.add_field("amount_cents", "99000")
    form.add_field("notify_client", "false")
    response = await stack.http.post(
        f"/api/v1/documents/{second['id']}/versions", data=form, headers=stack.auth
    )
    assert response.status == 201, await response.text()
    third = await response.json()
    assert third["version"] == 3 and third["supersedes_id"] == second["id"]
    assert third["sha256"] == pdf.sha256_hex(upload) and third["amount_cents"] == 99000

    # The same file again is not a new version.
    form = FormData()
    form.add_field("file", upload, filename="v3.pdf", content_type="application/pdf")
    response = await stack.http.post(
        f"/api/v1/documents/{third['id']}/versions", data=form, headers=stack.auth
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "unchanged"


async def test_version_input_errors(stack):
    document = await seed_document(stack)
    await stack.api("POST", "/documents/999999/versions", 404, json={"line_items": NEW_ITEMS})
    await stack.api("POST", f"/documents/{document['id']}/versions", 422, json={"title": "x"})
    body = await stack.api(
        "POST",
        f"/documents/{document['id']}/versions",
        422,
        json={"line_items": NEW_ITEMS, "project_id": 5},
    )
    assert "project_id" in body["error"]["message"]
    form = FormData(default_to_multipart=True)
    form.add_field("title", "No file")
    response = await stack.http.post(
        f"/api/v1/documents/{document['id']}/versions", data=form, headers=stack.auth
    )
    assert response.status == 422
    form = FormData()
    form.add_field("file", b"not a pdf", filename="x.pdf", content_type="application/pdf")
    response = await stack.http.post(
        f"/api/v1/documents/{document['id']}/versions", data=form, headers=stack.auth
    )
    assert response.status == 422
    response = await stack.http.post(
        f"/api/v1/documents/{document['id']}/versions", json={"line_items": NEW_ITEMS}
    )
    assert response.status == 401
    spec = await (await stack.http.get("/api/v1/openapi.json")).json()
    assert "post" in spec["paths"]["/documents/{id}/versions"]


def _pdf(title: str) -> bytes:
    return sample_pdf(title)


async def test_an_interrupted_version_upload_is_finished_by_sending_it_again(stack, monkeypatch):
    document = await seed_document(stack)
    pending = await create_approval(stack, document["id"])
    service = stack.http.server.app[SERVICE]

    async def engine_down(*args, **kwargs):
        raise Unavailable("The approval engine did not answer; nothing was changed.")

    monkeypatch.setattr(service, "void", engine_down)
    body = {"line_items": NEW_ITEMS}
    first = await stack.api("POST", f"/documents/{document['id']}/versions", 201, json=body)
    assert [(a["id"], a["action"], a["status"]) for a in first["affected_approvals"]] == [
        (pending["id"], "void_pending", "pending")
    ]
    # Marked at once: the link can no longer be used to sign the old version.
    status, html = await open_page(stack, first_token(pending))
    assert "This document has changed" in html and 'name="full_name"' not in html

    monkeypatch.undo()
    again = await stack.api("POST", f"/documents/{document['id']}/versions", 200, json=body)
    assert again["created"] is False and again["id"] == first["id"]
    assert [(a["id"], a["action"], a["status"]) for a in again["affected_approvals"]] == [
        (pending["id"], "voided", "void")
    ]
    shown = await stack.api("GET", f"/approvals/{pending['id']}")
    assert shown["void_reason"] == "Superseded by version 2" and shown["superseded"] is True
    # Anything else is still refused: only the latest version can be replaced.
    other = {"line_items": NEW_ITEMS[:1]}
    await stack.api("POST", f"/documents/{document['id']}/versions", 409, json=other)
