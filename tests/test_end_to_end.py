"""End to end on a real Temporal dev server: email through an SMTP sink, approvals through the
HTTP form, the result in the API, the Temporal UI's search attributes, the CLI and the audit."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import update

from portico import cli, tokens
from portico.models import AuditEvent
from portico.smtp_sink import SmtpSink
from tests.conftest import start_stack
from tests.support.helpers import approvers, seed_document, token_of, wait_until


@pytest.fixture
def sink():
    server = SmtpSink()
    server.controller.ready_timeout = 30.0  # aiosmtpd's 5 s start-up limit is tight under load
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def mail_stack(settings, sessions, dev_env, sink):
    mailing = settings.model_copy(update={"smtp_host": sink.host, "smtp_port": sink.port})
    async for s in start_stack(mailing, sessions, dev_env.client):
        yield s


def links_to(sink: SmtpSink, address: str) -> list[str]:
    found = []
    for message in sink.messages:
        if message["To"] == address and "needs your approval" in message["Subject"]:
            found += re.findall(r"https?://\S+/s/[A-Za-z0-9_\-]+", SmtpSink.text_of(message))
    return found


async def approve_by_form(stack, link: str, name: str) -> None:
    token = token_of(link)
    page = await stack.http.get(f"/s/{token}")
    html = await page.text()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    response = await stack.http.post(
        f"/s/{token}/approve",
        data={"csrf": csrf, "full_name": name, "consent": "on", "notes": f"ok from {name}"},
    )
    assert response.status == 200 and "Thank you" in await response.text()


async def test_sequential_three_approvers_by_email_links(mail_stack, sink, dev_env):
    stack = mail_stack
    document = await seed_document(stack)
    created = await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": approvers(3),
            "routing": "sequential",
            "expires_in_days": 30,
            "channels": ["email"],
        },
    )
    for i in (1, 2, 3):
        address = f"a{i}@client.test"
        links = await wait_until(lambda a=address: _async(links_to(sink, a)))
        assert links == [created["approvers"][i - 1]["sign_url"]]
        if i < 3:
            assert links_to(sink, f"a{i + 1}@client.test") == []  # not their turn yet
        await approve_by_form(stack, links[0], f"Approver {i}")

    shown = await wait_until(lambda: _finished(stack, created["id"]))
    assert shown["status"] == "approved"
    assert [a["status"] for a in shown["approvers"]] == ["approved"] * 3
    assert all(a["signed_at"] and a["signature_name"] for a in shown["approvers"])
    types = [e["type"] for e in shown["events"]]
    assert types.count("approved") == 3 and types[0] == "created" and "signed_pdf" in types

    staff_mail = await wait_until(
        lambda: _async(
            [
                m
                for m in sink.messages
                if m["To"] == "office@firm.test" and m["Subject"].startswith("Approved:")
            ]
        )
    )
    assert staff_mail[0]["Subject"].startswith("Approved: Change order CO-17")
    attachments = [p.get_content_type() for p in staff_mail[0].iter_attachments()]
    assert attachments == ["application/pdf"]
    opened = [m["Subject"] for m in sink.messages if m["To"] == "office@firm.test"]
    assert opened.count("Opened: Change order CO-17 by Approver 1") == 1

    response = await stack.http.get(
        f"/api/v1/approvals/{created['id']}/signed.pdf", headers=stack.auth
    )
    assert response.status == 200 and (await response.read()).startswith(b"%PDF-")

    # Operators see the same state in the Temporal UI, filtered by search attributes.
    query = (
        "PorticoStatus = 'approved' AND PorticoDocumentNumber = 'CO-17' "
        f"AND WorkflowId = 'approval-{created['id']}'"
    )
    found = await wait_until(lambda: _list(dev_env.client, query))
    attributes = found[0].typed_search_attributes
    from workflows import search_attributes as sa

    assert attributes.get(sa.DOCUMENT_KIND) == "change_order"
    assert attributes.get(sa.CLIENT) == "Client Co"
    assert attributes.get(sa.AMOUNT_CENTS) == document["amount_cents"]


async def test_cli_staff_actions_and_audit_verify(mail_stack, sink, dev_env, capsys, monkeypatch):
    stack = mail_stack
    address = dev_env.client.service_client.config.target_host
    for name, value in {
        "PORTICO_DATABASE_URL": stack.settings.database_url,
        "PORTICO_FILES_DIR": str(stack.settings.files_dir),
        "PORTICO_VAR_DIR": str(stack.settings.var_dir),
        "TEMPORAL_ADDRESS": address,
        "PORTICO_TASK_QUEUE": stack.settings.task_queue,
        "PORTICO_SECRET_KEY": stack.settings.secret_key,
        "PORTICO_STAFF_API_KEY": stack.settings.staff_api_key,
    }.items():
        monkeypatch.setenv(name, value)
    document = await seed_document(stack)
    created = await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": approvers(1),
            "expires_in_days": 5,
            "channels": ["email"],
        },
    )
    approval_id = created["id"]

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(list(argv))
        return code, capsys.readouterr().out

    import asyncio

    async def run_async(*argv: str) -> tuple[int, str]:
        return await asyncio.to_thread(run, *argv)

    code, out = await run_async("approvals", "list")
    assert code == 0 and "CO-17" in out and "pending" in out
    code, out = await run_async("approvals", "extend", str(approval_id), "3")
    assert code == 0 and '"expires_at"' in out
    code, out = await run_async("approvals", "extend", str(approval_id), "0")
    assert code == 2
    code, out = await run_async("approvals", "remind", str(approval_id))
    assert code == 0
    code, out = await run_async("approvals", "show", str(approval_id))
    assert code == 0 and '"extended"' in out and '"reminded"' in out
    shown = json.loads(out)
    staff_events = [e for e in shown["events"] if e["type"] in ("extended", "reminded")]
    assert staff_events and {e["actor"] for e in staff_events} == {"cli"}  # CONTRACT section 9

    link = created["approvers"][0]["sign_url"]
    await approve_by_form(stack, link, "Approver 1")
    await wait_until(lambda: _finished(stack, approval_id))
    code, out = await run_async("audit", "verify", str(approval_id))
    assert code == 0, out
    assert "intact" in out

    # Tamper with one event's data: verify must notice and exit non-zero.
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.approval_id == approval_id, AuditEvent.type == "approved")
            .values(actor="approver:0:Someone Else")
        )
    code, out = await run_async("audit", "verify", str(approval_id))
    assert code == 1 and "does not match its hash" in out

    code, out = await run_async("approvals", "void", str(approval_id))
    assert code == 1  # already approved: refused with a clear error
    assert tokens.hash_token("x")  # tokens module imported for the CLI environment


async def test_audit_verify_notices_a_replaced_signed_pdf(mail_stack, dev_env):
    from portico.audit import verify_approval

    stack = mail_stack
    document = await seed_document(stack)
    created = await stack.api(
        "POST",
        "/approvals",
        201,
        json={"document_id": document["id"], "approvers": approvers(1), "channels": ["email"]},
    )
    await approve_by_form(stack, created["approvers"][0]["sign_url"], "Approver 1")
    shown = await wait_until(lambda: _finished(stack, created["id"]))
    assert await verify_approval(stack.sessions, stack.settings.files_dir, created["id"]) == []
    from portico.models import Approval

    async with stack.sessions() as session:
        approval = await session.get(Approval, created["id"])
    path = stack.settings.files_dir / approval.signed_pdf_path
    path.write_bytes(path.read_bytes() + b"\n% edited")
    problems = await verify_approval(stack.sessions, stack.settings.files_dir, created["id"])
    assert any("does not match" in p for p in problems)
    assert shown["signed_pdf_sha256"]


async def _async(value):
    return value


async def _finished(stack, approval_id: int):
    shown = await stack.api("GET", f"/approvals/{approval_id}")
    done = shown["status"] == "approved" and any(e["type"] == "signed_pdf" for e in shown["events"])
    return shown if done else None


async def _list(client, query: str):
    return [wf async for wf in client.list_workflows(query)]
