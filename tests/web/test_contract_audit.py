"""Deviations from CONTRACT.md found by a black-box acceptance audit (a client, a back office,
Twilio and Stripe talking to a running Portico), each pinned here from the outside."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

from aiohttp import FormData
from sqlalchemy import select, update

from portico.files import FileStore
from portico.models import Approval, AuditEvent
from portico.schemas import MAX_ID
from portico.settings import Settings, _read_or_create
from tests.support.fake_twilio import STAFF_PHONE, post_sms, running_fake, stack_with_fake
from tests.support.helpers import (
    approvers,
    create_approval,
    sample_pdf,
    seed_document,
    token_of,
    wait_until,
)
from tests.support.portal_support import sign_in

HUGE = "9" * 20  # beyond any id column (and beyond SQLite's 64-bit integers)


async def test_a_binary_form_field_other_than_file_is_422_not_500(stack):
    document = await seed_document(stack)
    form = FormData()
    form.add_field("project_id", str(document["project_id"]))
    form.add_field("kind", "estimate")
    form.add_field("title", "Roof")
    form.add_field("number", "EST-1")
    # The PDF under the wrong name: its bytes are no UTF-8 text.
    form.add_field("attachment", io.BytesIO(b"%PDF-1.4 \x93\xff\xfe"), filename="x.pdf")
    error = await stack.api("POST", "/documents", 422, data=form)
    assert "`file`" in error["error"]["message"]
    form = FormData(default_to_multipart=True)
    form.add_field("project_id", str(document["project_id"]))
    form.add_field("title", "x" * (70 * 1024))
    error = await stack.api("POST", "/documents", 422, data=form)
    assert "too long" in error["error"]["message"]


async def test_ids_no_row_can_have_are_404_or_422_never_500(stack):
    document = await seed_document(stack)
    for method, path in [
        ("GET", f"/approvals/{HUGE}"),
        ("GET", f"/approvals/{MAX_ID + 1}"),
        ("GET", f"/approvals/{HUGE}/signed.pdf"),
        ("POST", f"/approvals/{HUGE}/void"),
        ("POST", f"/approvals/{HUGE}/remind"),
        ("POST", f"/clients/{HUGE}/invite"),
        ("GET", f"/invoices/{HUGE}"),
    ]:
        error = await stack.api(method, path, 404, json={})
        assert error["error"]["code"] == "not_found", path
        assert path.split("/")[2] in error["error"]["message"]  # the id as it was sent
    # "²".isdigit() is true, int("²") fails: not a number.
    for path in ["/approvals/%C2%B2", "/approvals?client_id=%C2%B2", "/invoices?client_id=%C2%B2"]:
        error = await stack.api("GET", path, 422)
        assert error["error"]["code"] == "invalid", path
    assert (await stack.api("GET", f"/approvals?client_id={HUGE}", 200))["items"] == []
    await stack.api("POST", "/projects", 422, json={"client_id": int(HUGE), "name": "x"})
    body = {"document_id": int(HUGE), "approvers": approvers(1), "channels": ["email"]}
    await stack.api("POST", "/approvals", 422, json=body)
    invoice = {
        "project_id": int(HUGE),
        "number": "INV-1",
        "currency": "USD",
        "due_date": "2030-01-31",
        "line_items": [{"description": "x", "quantity": 1, "unit_price_cents": 100}],
    }
    await stack.api("POST", "/invoices", 422, json=invoice)
    form = FormData()
    for name, value in [("project_id", HUGE), ("kind", "estimate"), ("title", "T")]:
        form.add_field(name, value)
    form.add_field("number", "N")
    form.add_field("file", io.BytesIO(sample_pdf()), filename="x.pdf")
    await stack.api("POST", "/documents", 422, data=form)
    assert document["id"]


async def test_line_items_adding_up_beyond_the_columns_are_422(stack):
    document = await seed_document(stack)
    items = [{"description": "x", "quantity": 99999999, "unit_price_cents": 10**12}]
    body = {"project_id": document["project_id"], "kind": "estimate", "title": "T"}
    error = await stack.api(
        "POST", "/documents", 422, json={**body, "number": "B", "line_items": items}
    )
    assert "add up" in error["error"]["message"]
    invoice = {
        "project_id": document["project_id"],
        "number": "INV-BIG",
        "currency": "USD",
        "due_date": "2030-01-31",
        "line_items": items,
    }
    error = await stack.api("POST", "/invoices", 422, json=invoice)
    assert "add up" in error["error"]["message"]
    error = await stack.api(
        "POST", f"/documents/{document['id']}/versions", 422, json={"line_items": items}
    )
    assert "add up" in error["error"]["message"]


async def test_a_channel_listed_twice_counts_once(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], channels=["email", "email"])
    assert created["channels"] == ["email"]


async def test_a_signed_pdf_still_being_built_is_answered_at_once_not_awaited(stack):
    """`approved` is recorded a moment before the signed PDF is built. Asked for it in between,
    no request waits for the worker: the API says 409 `signed_pdf_pending` with Retry-After,
    a browser (signing link, portal) gets a 202 page that refreshes itself, and once the PDF
    is stored every one of them serves it."""
    document = await seed_document(stack, portal_visible=True)  # Dana Client's
    created = await create_approval(
        stack, document["id"], approvers=[{"name": "Dana", "email": "dana@client.test"}]
    )
    approval_id = created["id"]
    token = token_of(created["approvers"][0]["sign_url"])
    data = sample_pdf("Signed copy")
    path = FileStore(stack.settings.files_dir).save("signed", data, ".pdf")

    async def mark(**values):
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(Approval).where(Approval.id == approval_id).values(**values)
            )

    async def sent():
        shown = await stack.api("GET", f"/approvals/{approval_id}")
        return "sent" in [e["type"] for e in shown["events"]]

    await wait_until(sent)  # the workflow is quiet now: nothing else writes the row
    await mark(status="approved", signed_pdf_path=None)
    browser = await sign_in(stack, "dana@client.test")
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        response = await stack.http.get(
            f"/api/v1/approvals/{approval_id}/signed.pdf", headers=stack.auth
        )
        assert response.status == 409 and response.headers["Retry-After"] == "3"
        assert (await response.json())["error"]["code"] == "signed_pdf_pending"
        shown = await stack.api("GET", f"/approvals/{approval_id}")
        assert shown["signed_pdf_status"] == "pending"

        for url, status, html in [
            (f"/s/{token}/signed.pdf", *(await _page(stack, f"/s/{token}/signed.pdf"))),
            (
                f"/portal/approvals/{approval_id}/signed.pdf",
                *(await browser.get(f"/portal/approvals/{approval_id}/signed.pdf"))[:2],
            ),
        ]:
            assert status == 202, url
            assert "Your signed copy is being prepared" in html, url
            assert '<meta http-equiv="refresh" content="3">' in html, url
        assert loop.time() - began < 5  # answered, not waited out

        await mark(signed_pdf_path=path)
        response = await stack.http.get(
            f"/api/v1/approvals/{approval_id}/signed.pdf", headers=stack.auth
        )
        assert response.status == 200 and response.content_type == "application/pdf"
        assert await response.read() == data
        response = await stack.http.get(f"/s/{token}/signed.pdf")
        assert response.status == 200 and await response.read() == data
        status, _, answer = await browser.get(f"/portal/approvals/{approval_id}/signed.pdf")
        assert status == 200 and answer.content_type == "application/pdf"
    finally:
        await browser.close()


async def _page(stack, url: str) -> tuple[int, str]:
    response = await stack.http.get(url)
    assert response.headers["Retry-After"] == "3"
    return response.status, await response.text()


async def test_a_workflow_id_temporal_already_has_is_409_and_leaves_nothing(stack):
    document = await seed_document(stack)
    body = {"document_id": document["id"], "approvers": approvers(1), "channels": ["email"]}
    first = await stack.api("POST", "/approvals", 201, json=body)
    # Ids come from the database's sequence, one by one: the next request will be first + 1.
    squatter = await stack.temporal.start_workflow(
        "NoSuchWorkflow",
        id=f"approval-{first['id'] + 1}",
        task_queue=f"{stack.settings.task_queue}-void",
    )
    try:
        error = await stack.api("POST", "/approvals", 409, json=body)
        assert error["error"]["code"] == "workflow_exists"
        items = (await stack.api("GET", "/approvals", 200))["items"]
        assert [item["id"] for item in items] == [first["id"]]
        async with stack.sessions() as session:  # nor its `created` event, written with it
            left = await session.scalars(
                select(AuditEvent.approval_id).where(AuditEvent.approval_id != first["id"])
            )
            assert list(left) == []
    finally:
        await squatter.terminate()


async def test_staff_sms_ref_may_be_a_numeric_document_number(settings, sessions, dev_env):
    async for fake in running_fake():
        async for stack in stack_with_fake(settings, sessions, dev_env.client, fake):
            document = await seed_document(stack, number="1042")
            created = await create_approval(stack, document["id"])
            status, reply = await post_sms(stack, STAFF_PHONE, "STATUS 1042")
            assert status == 200
            assert reply.startswith(f"1042 (#{created['id']}): pending"), reply
            # An approval id still wins over a document number.
            status, reply = await post_sms(stack, STAFF_PHONE, f"STATUS {created['id']}")
            assert f"(#{created['id']})" in reply
            status, reply = await post_sms(stack, STAFF_PHONE, "STATUS 999999999")
            assert "No approval request for 999999999" in reply


async def test_web_layer_writes_its_generated_keys_at_start(tmp_path: Path):
    from web.app import create_app

    settings = Settings(
        PORTICO_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/p.db", PORTICO_VAR_DIR=str(tmp_path)
    )
    create_app(settings)
    key = (tmp_path / "staff-api.key").read_text().strip()
    assert key and key == settings.staff_api_key
    assert (tmp_path / "secret.key").read_text().strip() == settings.secret_key
    assert (tmp_path / "staff-api.key").stat().st_mode & 0o777 == 0o600


def test_processes_creating_a_secret_at_once_agree_on_it(tmp_path: Path):
    path = tmp_path / "var" / "secret.key"
    results: list[str] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        results.append(_read_or_create(path, 32))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and results[0] == path.read_text().strip()
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]  # no drafts left


async def test_openapi_marks_optional_bodies_and_document_kinds(stack):
    doc = await (await stack.http.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    for path in ["/approvals/{id}/void", "/approvals/{id}/remind", "/clients/{id}/invite"]:
        assert paths[path]["post"]["requestBody"]["required"] is False, path
    assert paths["/approvals"]["post"]["requestBody"]["required"] is True
    upload = paths["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["kind"]["enum"] == [
        "ticket",
        "estimate",
        "change_order",
        "purchase_order",
        "rfi",
        "proposal",
        "contract",
    ]
    assert "413" in paths["/documents"]["post"]["responses"]
    # What the staff API answers to is what the document lists (CONTRACT section 3).
    for method, path in [
        ("post", "/clients"),
        ("post", "/clients/{id}/invite"),
        ("post", "/projects"),
        ("post", "/documents"),
        ("post", "/approvals"),
        ("get", "/approvals"),
        ("get", "/approvals/{id}"),
        ("post", "/approvals/{id}/void"),
        ("post", "/approvals/{id}/extend"),
        ("post", "/approvals/{id}/remind"),
        ("get", "/approvals/{id}/signed.pdf"),
        ("post", "/invoices"),
        ("get", "/invoices/{id}"),
        ("post", "/invoices/{id}/payments"),
    ]:
        assert method in paths[path], (method, path)


async def test_the_browser_favicon_request_is_no_404(stack):
    """Every page view makes browsers ask for /favicon.ico; a 404 shows up as a console error."""
    response = await stack.http.get("/favicon.ico")
    assert response.status == 204


async def test_401_names_the_bearer_scheme(stack):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await stack.http.get("/api/v1/approvals/1", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_true_or_false_is_no_number(stack):
    """Lax parsing took JSON `true` for 1: document 1, one day, one cent."""
    document = await seed_document(stack)
    base = {"document_id": document["id"], "approvers": approvers(1), "channels": ["email"]}
    for body in ({**base, "document_id": True}, {**base, "expires_in_days": True}):
        error = await stack.api("POST", "/approvals", 422, json=body)
        assert "not true or false" in error["error"]["message"]
    assert (await stack.api("GET", "/approvals", 200))["items"] == []
    created = await create_approval(stack, document["id"], expires_in_days=3)
    await stack.api("POST", f"/approvals/{created['id']}/extend", 422, json={"days": True})
    await stack.api("POST", f"/approvals/{created['id']}/remind", 422, json={"extend_days": False})
