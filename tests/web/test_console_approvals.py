"""The console's approvals: the board and its filters, the live stream (learned from the
database, so a second web process sees changes too), the new-approval form and a request's
page with its actions, each landing in the audit trail as `staff:<email>`."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from portico.models import Approval, AuditEvent, Document
from tests.support.console_support import ADMIN, post_form, staff_sign_in
from tests.support.helpers import create_approval, sample_pdf, seed_document, wait_until
from web.app import create_app

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def seed_request(stack: Any, **document: Any) -> dict[str, Any]:
    doc = await seed_document(stack, **document)
    return await create_approval(stack, doc["id"])


def new_approval_form(project_id: int, **overrides: Any) -> aiohttp.FormData:
    fields = {
        "project_id": str(project_id),
        "kind": "estimate",
        "title": "Deck rebuild",
        "number": "EST-9",
        "amount": "1,250.00",
        "routing": "any",
        "expires_in_days": "10",
        "remind_every_days": "",
        "message": "As discussed on site.",
        "approver1_name": "Dana Client",
        "approver1_email": "dana@client.test",
        "approver2_name": "Sam Partner",
        "approver2_phone": "+15550100002",
        **overrides,
    }
    return fields


async def post_new(browser: Any, fields: dict[str, str], pdf: bytes | None) -> tuple[int, str, Any]:
    token = await browser.csrf("/staff/approvals/new")
    data = aiohttp.FormData()
    data.add_field("csrf", token)
    for key, value in fields.items():
        data.add_field(key, value)
    if pdf is not None:
        data.add_field("file", pdf, filename="estimate.pdf", content_type="application/pdf")
    async with browser.session.post(
        browser.base + "/staff/approvals/new", data=data, allow_redirects=False
    ) as response:
        return response.status, await response.text(), response


async def counts(stack: Any) -> tuple[int, int]:
    async with stack.sessions() as session:
        documents = await session.scalar(select(func.count()).select_from(Document))
        approvals = await session.scalar(select(func.count()).select_from(Approval))
    return documents, approvals


# --- the board ------------------------------------------------------------------------------


async def test_board_lists_requests_and_filters_by_status_and_search(stack):
    first = await seed_request(stack, number="CO-17", title="Extra outlets")
    second = await seed_request(stack, number="CO-18", title="Skylight")
    await stack.api("POST", f"/approvals/{second['id']}/void", 200, json={"reason": "dup"})
    await wait_until(lambda: _status_is(stack, second["id"], "void"))
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get("/staff")
        assert status == 200
        assert '<label for="status">Status</label>' in html
        assert '<label for="q">Search</label>' in html
        for row in ("CO-17", "Extra outlets", "CO-18", "Skylight", "Dana Client (Client Co)"):
            assert row in html
        _, html, _ = await browser.get("/staff?status=void")
        assert "CO-18" in html and "CO-17" not in html
        _, html, _ = await browser.get("/staff?q=outlet")
        assert "CO-17" in html and "CO-18" not in html
        _, html, _ = await browser.get("/staff?q=co-18")
        assert "CO-18" in html and "CO-17" not in html
        _, html, _ = await browser.get("/staff?q=client+co")  # the client's company
        assert "CO-17" in html and "CO-18" in html
        _, html, _ = await browser.get("/staff?q=100%25")  # a LIKE wildcard is just a character
        assert "CO-17" not in html and "No request matches" in html
        _, html, _ = await browser.get("/staff?status=bogus")  # ignored, not an error
        assert "CO-17" in html and "CO-18" in html
        assert f'href="/staff/approvals/{first["id"]}"' in html
    finally:
        await browser.close()


async def _status_is(stack: Any, approval_id: int, status: str) -> bool:
    async with stack.sessions() as session:
        return (
            await session.scalar(select(Approval.status).where(Approval.id == approval_id))
            == status
        )


async def read_events(
    response: aiohttp.ClientResponse, until: Any, timeout: float = 15
) -> list[dict]:
    """`status` events from an SSE stream until `until(events)` holds."""
    events: list[dict] = []
    event = None

    async def pump() -> None:
        nonlocal event
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "status":
                events.append(json.loads(line.split(":", 1)[1]))
                if until(events):
                    return

    await asyncio.wait_for(pump(), timeout)
    return events


async def test_live_stream_shows_a_change_made_through_another_web_process(stack):
    """Two web processes on one database: the board streams from one, the request is voided
    through the other's API (and the worker), and the change arrives within 5 s."""
    request = await seed_request(stack)
    other = TestClient(TestServer(create_app(stack.settings, temporal_client=stack.temporal)))
    await other.start_server()
    browser = await staff_sign_in(stack)
    try:
        async with browser.session.get(
            browser.base + f"/staff/events?ids={request['id']},999999999"
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert "Content-Security-Policy" in response.headers
            first = await read_events(response, lambda e: len(e) >= 1)
            assert first == [{"id": request["id"], "status": "pending", "label": "Pending"}]
            voided = await other.post(
                f"/api/v1/approvals/{request['id']}/void",
                json={"reason": "Client changed their mind"},
                headers=stack.auth,
            )
            assert voided.status == 200
            loop = asyncio.get_running_loop()
            start = loop.time()
            later = await read_events(response, lambda e: any(x["status"] == "void" for x in e))
            assert loop.time() - start < 5
            assert later[-1] == {"id": request["id"], "status": "void", "label": "Void"}
    finally:
        await browser.close()
        await other.close()


# --- new approval ---------------------------------------------------------------------------


async def test_new_approval_form_has_every_field_without_javascript(stack):
    doc = await seed_document(stack)
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get("/staff/approvals/new")
        assert status == 200
        for label in (
            "Project",
            "Kind",
            "Title",
            "Number",
            "Amount",
            "PDF",
            "Routing",
            "Expires in days",
            "Remind every days",
            "Message",
        ):
            assert re.search(rf'<label for="[a-z_]+">{label}</label>', html), label
        for n in range(1, 6):
            for what in ("name", "email", "phone"):
                assert f'<label for="approver{n}_{what}">Approver {n} {what}</label>' in html
        for option in (">In order</option>", ">Any one</option>", ">All</option>"):
            assert option in html
        assert (
            f'value="{doc["project_id"]}">Kitchen remodel · Dana Client (Client Co)</option>'
            in html
        )
        assert ">Send for approval</button>" in html
        assert ">Add approver</button>" in html and 'id="add-approver" hidden' in html
    finally:
        await browser.close()


async def test_sending_the_form_creates_the_document_and_request(stack):
    doc = await seed_document(stack)
    browser = await staff_sign_in(stack)
    try:
        pdf = sample_pdf("Deck rebuild")
        status, _, response = await post_new(browser, new_approval_form(doc["project_id"]), pdf)
        assert status == 303, _
        location = response.headers["Location"]
        approval_id = int(location.rsplit("/", 1)[1])
        body = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert body["routing"] == "any"
        assert body["document"]["amount_cents"] == 125000
        assert body["document"]["kind"] == "estimate" and body["document"]["number"] == "EST-9"
        assert body["message"] == "As discussed on site."
        assert body["remind_every_days"] is None and body["expires_at"]
        assert [(a["name"], a["email"], a["phone"]) for a in body["approvers"]] == [
            ("Dana Client", "dana@client.test", None),
            ("Sam Partner", None, "+15550100002"),
        ]

        async def created_event() -> dict[str, Any] | None:  # written by the workflow's activity
            shown = await stack.api("GET", f"/approvals/{approval_id}", 200)
            return next((e for e in shown["events"] if e["type"] == "created"), None)

        created = await wait_until(created_event)
        assert created["actor"] == f"staff:{ADMIN}"  # who sent it, as CONTRACT section 9 names it
        status, html, _ = await browser.get(location)
        assert status == 200 and "Deck rebuild" in html and "Pending" in html
    finally:
        await browser.close()


async def test_errors_redisplay_the_form_with_the_input_and_create_nothing(stack):
    doc = await seed_document(stack)
    before = await counts(stack)
    browser = await staff_sign_in(stack)
    try:
        fields = new_approval_form(
            doc["project_id"],
            title="",
            amount="12.345",
            expires_in_days="999",
            approver2_phone="555",
        )
        status, html, _ = await post_new(browser, fields, sample_pdf())
        assert status == 422
        assert 'id="err-title"' in html and 'aria-describedby="err-title"' in html
        assert 'id="err-amount"' in html and "two decimals" in html
        assert 'id="err-expires_in_days"' in html
        assert 'id="err-approver2_phone"' in html
        assert 'value="EST-9"' in html and 'value="12.345"' in html  # the input is kept
        assert "As discussed on site.</textarea>" in html
        assert 'value="Sam Partner"' in html

        status, html, _ = await post_new(browser, new_approval_form(doc["project_id"]), None)
        assert status == 422 and 'id="err-file"' in html

        status, html, _ = await post_new(
            browser, new_approval_form(doc["project_id"]), b"%PDF-1.4 not really"
        )
        assert status == 422 and 'id="err-file"' in html

        fields = new_approval_form(
            doc["project_id"],
            approver1_name="",
            approver1_email="",
            approver2_name="",
            approver2_phone="",
        )
        status, html, _ = await post_new(browser, fields, sample_pdf())
        assert status == 422 and "Give at least one approver." in html
        assert await counts(stack) == before
    finally:
        await browser.close()


async def test_the_form_needs_its_csrf_token(stack):
    doc = await seed_document(stack)
    before = await counts(stack)
    browser = await staff_sign_in(stack)
    try:
        data = aiohttp.FormData()
        data.add_field("csrf", "0" * 64)
        for key, value in new_approval_form(doc["project_id"]).items():
            data.add_field(key, value)
        data.add_field("file", sample_pdf(), filename="x.pdf", content_type="application/pdf")
        async with browser.session.post(browser.base + "/staff/approvals/new", data=data) as r:
            assert r.status == 400
        assert await counts(stack) == before
    finally:
        await browser.close()


# --- a request's page -----------------------------------------------------------------------


async def test_request_page_shows_approvers_and_the_audit_trail(stack):
    request = await seed_request(stack)
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get(f"/staff/approvals/{request['id']}")
        assert status == 200
        for text in (
            "Approver 1",
            "Views",
            "Time in viewer",
            "Notes",
            "Decline reason",
            "Audit trail",
            ">Send reminder</button>",
            '<label for="days">Days</label>',
            ">Extend</button>",
            '<label for="reason">Reason</label>',
            '<label for="notify">Email the approvers</label>',
            ">Void request</button>",
            ">Verify audit trail</button>",
        ):
            assert text in html, text
        assert "Signed PDF" not in html  # not approved
        assert "<td>created</td><td>api</td>" in html  # every event: time, type, actor
        status, _, _ = await browser.get("/staff/approvals/424242")
        assert status == 404
    finally:
        await browser.close()


async def test_staff_actions_land_in_the_trail_with_the_member_as_actor(stack):
    request = await seed_request(stack)
    approval_id = request["id"]
    browser = await staff_sign_in(stack)
    page = f"/staff/approvals/{approval_id}"
    try:
        status, html = await post_form(browser, page, f"{page}/remind", {})
        assert status == 200 and "The approvers were reminded." in html
        status, html = await post_form(browser, page, f"{page}/extend", {"days": "abc"})
        assert status == 422 and "Days:" in html
        status, html = await post_form(browser, page, f"{page}/extend", {"days": "7"})
        assert status == 200 and "The deadline was moved." in html
        status, html = await post_form(
            browser, page, f"{page}/void", {"reason": "Wrong price", "notify": "1"}
        )
        assert status == 200 and "The request was voided." in html and "Void" in html
        status, html = await post_form(browser, page, f"{page}/extend", {"days": "7"})
        assert status == 409  # closed: the page says why, nothing changes

        async def trail() -> list[tuple[str, str]]:
            async with stack.sessions() as session:
                rows = await session.execute(
                    select(AuditEvent.type, AuditEvent.actor)
                    .where(AuditEvent.approval_id == approval_id)
                    .order_by(AuditEvent.seq)
                )
                return [tuple(r) for r in rows]

        events = await wait_until(lambda: _with_types(trail, {"reminded", "extended", "voided"}))
        actors = {t: a for t, a in events}
        assert actors["voided"] == f"staff:{ADMIN}"
        assert actors["extended"] == actors["reminded"] == f"staff:{ADMIN}"
        body = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert body["void_reason"] == "Wrong price"

        status, html = await post_form(browser, page, f"{page}/verify", {})
        assert status == 200 and "Audit trail intact" in html
    finally:
        await browser.close()


async def _with_types(trail: Any, wanted: set[str]) -> list[tuple[str, str]] | None:
    events = await trail()
    types = {t for t, _ in events}
    return events if wanted <= types else None


async def test_verify_says_what_broke(stack):
    request = await seed_request(stack)
    browser = await staff_sign_in(stack)
    page = f"/staff/approvals/{request['id']}"
    try:

        async def first_event() -> AuditEvent | None:  # `created`, written by the worker
            async with stack.sessions() as session:
                return await session.scalar(
                    select(AuditEvent).where(AuditEvent.approval_id == request["id"]).limit(1)
                )

        await wait_until(first_event)
        async with stack.sessions() as session, session.begin():
            event = await session.scalar(
                select(AuditEvent).where(AuditEvent.approval_id == request["id"]).limit(1)
            )
            event.actor = "someone-else"
        status, html = await post_form(browser, page, f"{page}/verify", {})
        assert status == 200
        assert "Audit trail intact" not in html
        assert "content does not match its hash" in html
    finally:
        await browser.close()


async def test_api_staff_actions_are_recorded_as_api(stack):
    request = await seed_request(stack)
    approval_id = request["id"]
    await stack.api("POST", f"/approvals/{approval_id}/remind", 202)
    await stack.api("POST", f"/approvals/{approval_id}/extend", 200, json={"days": 3})
    await stack.api("POST", f"/approvals/{approval_id}/void", 200, json={"reason": "x"})
    body = await stack.api("GET", f"/approvals/{approval_id}", 200)
    actors = {e["type"]: e["actor"] for e in body["events"]}
    assert actors["reminded"] == actors["extended"] == actors["voided"] == "api"
