"""Hostile PDFs from outside (issue 10, finding 3): staff uploads, versions and the client's
"Upload signed PDF" are checked off the event loop within limits, refused with 422, stored and
served without active content; a signed PDF that cannot be built fails in bounded time and
says so; an upload needs the same consent as typed signing."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from aiohttp import FormData
from sqlalchemy import func, select

from portico import pdf, tokens
from portico.files import FileStore
from portico.models import Approver, Document
from tests.conftest import start_stack
from tests.support.helpers import create_approval, outbox, seed_document, token_of, wait_until
from tests.support.hostile_pdfs import active_content, many_pages, with_active_content, zero_bomb


def document_form(project_id: int, data: bytes, number: str = "EST-9") -> FormData:
    form = FormData()
    form.add_field("project_id", str(project_id))
    form.add_field("kind", "estimate")
    form.add_field("title", "Roof estimate")
    form.add_field("number", number)
    form.add_field(
        "file", io.BytesIO(data), filename="estimate.pdf", content_type="application/pdf"
    )
    return form


async def upload_document(stack, project_id: int, data: bytes):
    return await stack.http.post(
        "/api/v1/documents", data=document_form(project_id, data), headers=stack.auth
    )


async def document_count(stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count(Document.id))) or 0)


def stored(stack, folder: str) -> list[Path]:
    root = Path(stack.settings.files_dir) / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload_form(stack, token: str, data: bytes, consent: bool = True) -> FormData:
    form = FormData()
    form.add_field("csrf", tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)))
    if consent:
        form.add_field("consent", "on")
    form.add_field(
        "signed_pdf", io.BytesIO(data), filename="signed.pdf", content_type="application/pdf"
    )
    return form


async def approval_status(stack, approval_id: int) -> str:
    return (await stack.api("GET", f"/approvals/{approval_id}"))["status"]


# --------------------------------------------------------------------------- staff uploads


async def test_staff_uploads_beyond_the_limits_are_refused_and_nothing_is_stored(stack):
    document = await seed_document(stack)
    before, files_before = await document_count(stack), stored(stack, "documents")
    cases = [
        (zero_bomb(), "expand to more than 50 MB"),  # 70 KB that inflates to 70 MB
        (zero_bomb(streams=4), "expand to more than 50 MB"),  # 4 of them, 280 KB
        (many_pages(501), "more than 500 pages"),
        (many_pages(180_000), "more than 100,000 objects"),  # the 19 MB file that froze the web
    ]
    for data, message in cases:
        response = await upload_document(stack, document["project_id"], data)
        body = await response.json()
        assert response.status == 422, body
        assert body["error"]["code"] == "invalid_pdf" and message in body["error"]["message"]
    version = FormData()
    version.add_field("file", io.BytesIO(zero_bomb()), filename="v2.pdf")
    response = await stack.http.post(
        f"/api/v1/documents/{document['id']}/versions", data=version, headers=stack.auth
    )
    assert response.status == 422
    assert "expand to more than 50 MB" in (await response.json())["error"]["message"]
    assert await document_count(stack) == before
    assert stored(stack, "documents") == files_before


async def test_a_staff_upload_is_stored_and_served_without_its_scripts(stack):
    document = await seed_document(stack)
    response = await upload_document(stack, document["project_id"], with_active_content("Roof"))
    assert response.status == 201, await response.text()
    created = await response.json()
    approval = await create_approval(stack, created["id"])
    token = token_of(approval["approvers"][0]["sign_url"])
    served = await (await stack.http.get(f"/s/{token}/document.pdf")).read()
    assert active_content(served) == set()
    assert "Roof" in pdf.pdf_text(served)
    assert created["sha256"] == pdf.sha256_hex(served)  # the hash is of what is served


async def test_the_web_server_answers_while_a_big_pdf_is_checked(settings, sessions, dev_env):
    """A 30 000-page PDF (within relaxed limits) takes seconds to parse; meanwhile other
    requests are answered at once, since the parsing happens in a child process."""
    relaxed = settings.model_copy(update={"pdf_max_pages": 10**6, "pdf_max_objects": 10**6})
    async for stack in start_stack(relaxed, sessions, dev_env.client):
        document = await seed_document(stack)
        loop = asyncio.get_running_loop()
        started = loop.time()
        upload = asyncio.create_task(
            upload_document(stack, document["project_id"], many_pages(30_000))
        )
        latencies = []
        while not upload.done():
            asked = loop.time()
            response = await stack.http.get("/healthz")
            latencies.append(loop.time() - asked)
            assert response.status == 200
            await asyncio.sleep(0.05)
        response = await upload
        took = loop.time() - started
        assert response.status == 201, await response.text()
        assert (await response.json())["size_bytes"] > 3_000_000
        assert took > 1.5 and len(latencies) >= 10, (took, latencies)
        assert max(latencies) < 1.0, latencies


# --------------------------------------------------------------------------- the client's upload


async def test_an_upload_without_consent_is_refused_on_the_page_and_by_the_workflow(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    response = await stack.http.post(
        f"/s/{token}/upload", data=upload_form(stack, token, with_active_content(), consent=False)
    )
    assert response.status == 422
    assert "agree to sign electronically" in await response.text()
    assert await approval_status(stack, created["id"]) == "pending"
    assert stored(stack, "uploads") == []


async def test_hostile_signed_uploads_are_refused_with_422(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    for data, message in [
        (zero_bomb(streams=4), "expand to more than 50 MB"),
        (many_pages(501), "more than 500 pages"),
    ]:
        response = await stack.http.post(f"/s/{token}/upload", data=upload_form(stack, token, data))
        assert response.status == 422
        assert message in await response.text()
    assert await approval_status(stack, created["id"]) == "pending"
    assert stored(stack, "uploads") == []


async def test_a_signed_upload_with_scripts_is_kept_and_signed_without_them(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    response = await stack.http.post(
        f"/s/{token}/upload",
        data=upload_form(stack, token, with_active_content("Signed with a script")),
        allow_redirects=False,
    )
    assert response.status == 303

    async def signed() -> dict | None:
        shown = await stack.api("GET", f"/approvals/{created['id']}")
        return shown if shown["signed_pdf_status"] == "ready" else None

    shown = await wait_until(signed)
    assert shown["approvers"][0]["decided_via"] == "upload"
    copy = await stack.http.get(f"/api/v1/approvals/{created['id']}/signed.pdf", headers=stack.auth)
    data = await copy.read()
    assert active_content(data) == set()
    assert "Signed with a script" in pdf.pdf_text(data)
    async with stack.sessions() as session:
        path = await session.scalar(
            select(Approver.uploaded_pdf).where(Approver.id == created["approvers"][0]["id"])
        )
    assert path and active_content(FileStore(stack.settings.files_dir).read(path)) == set()


# --------------------------------------------------------------------------- signed PDF failure


async def test_a_signed_pdf_that_cannot_be_built_fails_visibly_and_staff_are_told(stack):
    """A document stored before the limits existed (four 70 MB zero streams): the request is
    approved, the build fails for good at once, and everyone can see it."""
    document = await seed_document(stack)
    async with stack.sessions() as session:
        path = await session.scalar(select(Document.file_path).where(Document.id == document["id"]))
    assert path
    (Path(stack.settings.files_dir) / path).write_bytes(zero_bomb(streams=4))
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    form = FormData()
    form.add_field("csrf", tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)))
    form.add_field("full_name", "Approver 1")
    form.add_field("consent", "on")
    response = await stack.http.post(f"/s/{token}/approve", data=form, allow_redirects=False)
    assert response.status == 303

    async def failed() -> dict | None:
        shown = await stack.api("GET", f"/approvals/{created['id']}")
        return shown if shown["signed_pdf_status"] == "failed" else None

    shown = await wait_until(failed)
    assert shown["status"] == "approved"
    assert "expand to more than 50 MB" in shown["signed_pdf_error"]
    failures = [e for e in shown["events"] if e["type"] == "signed_pdf_failed"]
    assert len(failures) == 1 and "expand to more than 50 MB" in failures[0]["data"]["error"]

    response = await stack.http.get(
        f"/api/v1/approvals/{created['id']}/signed.pdf", headers=stack.auth
    )
    body = await response.json()
    assert response.status == 409 and body["error"]["code"] == "signed_pdf_failed"
    assert "could not be built" in body["error"]["message"]
    assert "Staff were told" in body["error"]["message"]
    response = await stack.http.get(f"/s/{token}/signed.pdf")
    assert response.status == 409 and "has been told" in await response.text()

    async def staff_mail() -> list:
        mails = await outbox(stack.sessions, "office@firm.test")
        return [m for m in mails if (m.subject or "").startswith("Approved, but the signed PDF")]

    (mail,) = await wait_until(staff_mail)
    assert "expand to more than 50 MB" in mail.body
    subjects = [m.subject for m in await outbox(stack.sessions, "office@firm.test")]
    assert not any(s and s.startswith("Approved: ") for s in subjects)  # no "PDF attached"

    async def client_copy() -> list:  # the approver already has the request's email
        mails = await outbox(stack.sessions, "a1@client.test")
        return [m for m in mails if "could not be prepared" in m.body]

    assert await wait_until(client_copy)
