"""The staff API (CONTRACT section 3) with a real worker on the time-skipping server."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from aiohttp import FormData
from sqlalchemy import select

from portico import pdf
from portico.errors import Conflict
from portico.models import Approver
from portico.services.approvals import free_sms_code
from tests.support.helpers import (
    approvers,
    create_approval,
    outbox,
    sample_pdf,
    seed_document,
    wait_until,
)
from web.http.keys import SERVICE


async def test_missing_or_wrong_key_is_401(stack):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = await stack.http.get("/api/v1/approvals", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_openapi_document_lists_the_calls(stack):
    response = await stack.http.get("/api/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.")
    assert "/approvals/{id}/extend" in doc["paths"]
    assert "ApprovalIn" in doc["components"]["schemas"]


async def test_create_approval_starts_the_workflow_and_emails_the_first_approver(stack):
    document = await seed_document(stack)
    assert document["amount_cents"] == 4 * 12500 + 13500
    assert len(document["sha256"]) == 64
    created = await create_approval(stack, document["id"], n=2, message="Please sign today")
    assert created["status"] == "pending"
    assert created["workflow_id"] == f"approval-{created['id']}"
    assert [a["status"] for a in created["approvers"]] == ["pending", "waiting"]
    assert all(a["sign_url"].startswith("http://portico.test/s/") for a in created["approvers"])

    mail = await wait_until(lambda: outbox(stack.sessions, "a1@client.test"))
    assert created["approvers"][0]["sign_url"] in mail[0].body
    assert "Please sign today" in mail[0].body
    assert mail[0].subject == "Change order CO-17 from Acme Builders needs your approval"
    assert await outbox(stack.sessions, "a2@client.test") == []

    shown = await stack.api("GET", f"/approvals/{created['id']}", 200)
    assert shown["document"]["number"] == "CO-17"
    types = [e["type"] for e in shown["events"]]
    assert types[0] == "created"
    await wait_until(
        lambda: stack.api("GET", f"/approvals/{created['id']}", 200),
    )
    listed = await stack.api("GET", "/approvals?status=pending", 200)
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert (await stack.api("GET", "/approvals?kind=estimate", 200))["items"] == []


async def test_bad_approval_input_is_rejected_and_changes_nothing(stack):
    document = await seed_document(stack)
    base = {"document_id": document["id"], "approvers": approvers(1), "channels": ["email"]}
    cases = [
        {**base, "approvers": approvers(6)},
        {**base, "approvers": []},
        {**base, "expires_in_days": 0},
        {**base, "expires_in_days": 181},
        {**base, "routing": "majority"},
        {**base, "approvers": [{"name": "No contact"}]},
        {**base, "channels": ["sms"]},  # approver has no phone
    ]
    for body in cases:
        error = await stack.api("POST", "/approvals", 422, json=body)
        assert error["error"]["message"]
    assert (await stack.api("GET", "/approvals", 200))["items"] == []
    await stack.api("POST", "/approvals", 404, json={**base, "document_id": 999})
    response = await stack.http.post(
        "/api/v1/approvals",
        data=b"{not json",
        headers={**stack.auth, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert await outbox(stack.sessions) == []


async def test_unknown_ids_are_404(stack):
    for method, path in [
        ("GET", "/approvals/424242"),
        ("POST", "/approvals/424242/void"),
        ("POST", "/approvals/424242/remind"),
        ("GET", "/approvals/424242/signed.pdf"),
    ]:
        error = await stack.api(method, path, 404, json={})
        assert error["error"]["code"] == "not_found"
    await stack.api("POST", "/approvals/424242/extend", 404, json={"days": 3})
    await stack.api("POST", "/projects", 404, json={"client_id": 999, "name": "x"})


async def test_pdf_upload_accepts_pdfs_and_rejects_the_rest(stack):
    document = await seed_document(stack)
    good = sample_pdf("Roof estimate")

    def form(data: bytes, filename: str = "est.pdf") -> FormData:
        fd = FormData()
        fd.add_field("project_id", str(document["project_id"]))
        fd.add_field("kind", "estimate")
        fd.add_field("title", "Roof estimate")
        fd.add_field("number", "EST-9")
        fd.add_field("amount_cents", "990000")
        fd.add_field("file", io.BytesIO(data), filename=filename, content_type="application/pdf")
        return fd

    created = await stack.api("POST", "/documents", 201, data=form(good))
    assert created["sha256"] == pdf.sha256_hex(good)
    assert created["amount_cents"] == 990000
    error = await stack.api("POST", "/documents", 422, data=form(b"hello, not a pdf", "x.pdf"))
    assert error["error"]["code"] == "invalid_pdf"
    stack.settings.max_upload_bytes = 1000
    error = await stack.api("POST", "/documents", 413, data=form(good))
    assert "larger" in error["error"]["message"]


async def test_staff_actions_void_extend_remind(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], n=2, routing="all", expires_in_days=10)
    approval_id = created["id"]
    await wait_until(lambda: outbox(stack.sessions, "a2@client.test"))

    extended = await stack.api("POST", f"/approvals/{approval_id}/extend", 200, json={"days": 5})
    assert extended["expires_at"] > created["expires_at"]
    await stack.api("POST", f"/approvals/{approval_id}/extend", 422, json={"days": 0})
    await stack.api("POST", f"/approvals/{approval_id}/remind", 202, json={})
    reminders = await wait_until(lambda: _templates(stack, "a1@client.test", "Reminder:"))
    assert reminders

    voided = await stack.api(
        "POST",
        f"/approvals/{approval_id}/void",
        200,
        json={"reason": "Scope changed", "notify_client": True},
    )
    assert voided["status"] == "void"
    assert voided["void_reason"] == "Scope changed"
    assert [a["status"] for a in voided["approvers"]] == ["skipped", "skipped"]
    notices = await wait_until(lambda: _templates(stack, "a1@client.test", "Withdrawn:"))
    assert "Scope changed" in notices[0].body
    error = await stack.api("POST", f"/approvals/{approval_id}/extend", 409, json={"days": 5})
    assert error["error"]["message"]
    await stack.api("GET", f"/approvals/{approval_id}/signed.pdf", 409)
    events = [e["type"] for e in (await stack.api("GET", f"/approvals/{approval_id}"))["events"]]
    assert {"created", "extended", "reminded", "voided"} <= set(events)


async def _templates(stack, to: str, subject_prefix: str):
    return [
        m for m in await outbox(stack.sessions, to) if (m.subject or "").startswith(subject_prefix)
    ]


async def test_reply_codes_are_unique_per_phone_not_globally(stack):

    document = await seed_document(stack)
    same_phone = [{"name": "Pat", "phone": "+15550100009"}]
    codes = set()
    for _ in range(3):
        created = await create_approval(
            stack, document["id"], approvers=same_phone, channels=["sms"], routing="any"
        )
        async with stack.sessions() as session:
            code = await session.scalar(
                select(Approver.sms_code).where(Approver.approval_id == created["id"])
            )
        codes.add(code)
    assert len(codes) == 3  # one number never holds the same code twice
    service = stack.http.app[SERVICE]
    async with stack.sessions() as session:
        now = datetime.now(UTC)
        assert await service._codes_in_use(session, {"+15550100009"}, now) == codes
        assert await service._codes_in_use(session, {"+15550100008"}, now) == set()
    # Even a number with every code in use gets a clear refusal, never an endless loop.
    with pytest.raises(Conflict):
        free_sms_code({str(n) for n in range(1000, 10000)})
