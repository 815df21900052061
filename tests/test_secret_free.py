"""CONTRACT section 8: no signing token or SMS reply code where operators read, with the default
settings (no PORTICO_PAYLOAD_KEY): not in Temporal history, not in the copies of sent messages
kept in `outbound_messages` when a real relay (SMTP, Twilio) carries them. The links and codes
the client receives still work."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import select
from temporalio.client import WorkflowHistory
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from portico import tokens
from portico.models import Approval, Approver, OutboundMessage
from portico.smtp_sink import SmtpSink
from tests.conftest import Stack
from tests.support.fake_twilio import FakeTwilio, post_sms, running_fake, stack_with_fake
from tests.support.helpers import outbox, seed_document, token_of, wait_until
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    SIGN_URL,
    ApprovalInput,
    ApprovalState,
    ApproverInput,
    DocumentInfo,
    EmailMessage,
)

PHONE = "+15550100001"
EMAIL = "a1@client.test"


def _decoded(node: Any, out: list[str]) -> None:
    """Collect every string of a history event as JSON, payloads decoded from base64."""
    if isinstance(node, dict):
        if "data" in node and "metadata" in node:  # a Payload: what the Temporal UI shows
            out.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
        for value in node.values():
            _decoded(value, out)
    elif isinstance(node, list):
        for value in node:
            _decoded(value, out)
    elif isinstance(node, str):
        out.append(node)


def history_text(history: WorkflowHistory) -> str:
    """All an operator can read in a history: inputs, activity inputs and results, update and
    signal arguments, search attributes, failures."""
    out: list[str] = []
    for event in history.events:
        _decoded(MessageToDict(event), out)
    return "\n".join(out)


def assert_no_secret(text: str, token: str, code: str) -> None:
    assert token not in text
    for shown in (f"YES {code}", f"NO {code}", f'"{code}"', f"yes {code}"):
        assert shown not in text, shown


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async for fake in running_fake():
        yield fake


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def relayed(settings, sessions, dev_env, twilio, sink) -> AsyncIterator[Stack]:
    """The stack with real relays: mail through SMTP (a sink), SMS through the twilio client."""
    async for stack in stack_with_fake(
        settings, sessions, dev_env.client, twilio, smtp_host=sink.host, smtp_port=sink.port
    ):
        yield stack


async def _async(value: Any) -> Any:
    return value


async def code_of(stack: Stack, approval_id: int) -> str:
    async with stack.sessions() as session:
        code = await session.scalar(
            select(Approver.sms_code).where(Approver.approval_id == approval_id)
        )
    assert code
    return code


async def test_links_and_codes_stay_out_of_history_and_stored_messages(
    relayed: Stack, twilio: FakeTwilio, sink: SmtpSink
):
    document = await seed_document(relayed)
    created = await relayed.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": [{"name": "Approver 1", "email": EMAIL, "phone": PHONE}],
            "routing": "sequential",
            "expires_in_days": 14,
            "channels": ["email", "sms"],
        },
    )
    link = created["approvers"][0]["sign_url"]
    token = token_of(link)
    code = await code_of(relayed, created["id"])

    # What the client gets carries the link and the code ...
    mails = await wait_until(lambda: _async([m for m in sink.messages if m["To"] == EMAIL]))
    assert link in SmtpSink.text_of(mails[0])
    texts = await wait_until(lambda: _async(twilio.to(PHONE)))
    assert link in texts[0]["Body"]
    assert f"Reply YES {code} to approve or NO {code} <reason> to decline." in texts[0]["Body"]

    # ... and the link opens the signing page.
    page = await relayed.http.get(f"/s/{token}")
    assert page.status == 200
    assert ">Approve</button>" in await page.text()

    # `YES <code>` from the approver's phone approves.
    status, reply = await post_sms(relayed, PHONE, f"YES {code} fine by me")
    assert status == 200 and "You approved" in reply
    handle = relayed.temporal.get_workflow_handle_for(ApprovalWorkflow.run, created["workflow_id"])
    result: ApprovalState = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "approved"

    # Temporal history: neither the token nor the code, only the placeholders.
    text = history_text(await handle.fetch_history())
    assert "{sms_code}" in text and "{sign_url}" in text and "CO-17" in text  # payloads read
    assert_no_secret(text, token, code)

    # The copies kept of every message (request, signed copy, staff notices) hide them too.
    stored = await wait_until(lambda: _sent_after_approval(relayed))
    assert {m.transport for m in stored} == {"smtp", "twilio"}
    for message in stored:
        assert_no_secret(f"{message.subject}\n{message.body}\n{message.html}", token, code)
    request_mail = next(m for m in stored if m.to == EMAIL)
    assert "/s/****" in request_mail.body and "/s/****" in (request_mail.html or "")
    request_sms = next(m for m in stored if m.to == PHONE)
    assert "/s/****" in request_sms.body and "Reply YES **** to approve" in request_sms.body


async def _sent_after_approval(stack: Stack) -> list[OutboundMessage]:
    """Every message of the request once the signed copy went out (the last one sent)."""
    messages = await outbox(stack.sessions)
    copies = [m for m in messages if m.subject and "signed" in m.subject.lower()]
    return messages if copies and len([m for m in messages if m.to == EMAIL]) >= 2 else []


async def test_a_request_started_with_its_link_in_the_input_keeps_working(stack: Stack):
    """Requests started before links were derived carry a random link and the code in their
    workflow input; a worker of today still sends them as they are."""
    document = await seed_document(stack)
    token = tokens.new_token()
    now = datetime.now(UTC)
    async with stack.sessions() as session, session.begin():
        approval = Approval(
            document_id=document["id"],
            workflow_id="pending",
            routing="sequential",
            status="pending",
            expires_at=now + timedelta(days=14),
            channels=["email", "sms"],
            notify_staff=[],
            created_at=now,
        )
        session.add(approval)
        await session.flush()
        approval.workflow_id = f"approval-{approval.id}"
        approver = Approver(
            approval_id=approval.id,
            position=0,
            name="Old Timer",
            email=EMAIL,
            phone=PHONE,
            status="pending",
            token_hash=tokens.hash_token(token),
            token_expires_at=now + timedelta(days=120),
            sms_code="4821",
        )
        session.add(approver)
        await session.flush()
    link = stack.settings.url(f"/s/{token}")
    await stack.temporal.start_workflow(
        ApprovalWorkflow.run,
        ApprovalInput(
            approval_id=approval.id,
            document=DocumentInfo(
                id=document["id"], kind="change_order", title="Extra outlets", number="CO-17"
            ),
            approvers=[
                ApproverInput(
                    id=approver.id,
                    name="Old Timer",
                    email=EMAIL,
                    phone=PHONE,
                    sign_url=link,
                    sms_code="4821",
                )
            ],
            routing="sequential",
            created_at=now,
            expires_in_days=14,
        ),
        id=approval.workflow_id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    mail = await wait_until(lambda: outbox(stack.sessions, EMAIL))
    text = await wait_until(lambda: outbox(stack.sessions, PHONE))
    assert link in mail[0].body  # the dev outbox keeps the full text
    assert link in text[0].body and "Reply YES 4821 to approve" in text[0].body
    page = await stack.http.get(f"/s/{token}")
    assert page.status == 200
    assert ">Approve</button>" in await page.text()
    await stack.temporal.get_workflow_handle(approval.workflow_id).terminate("test over")


async def test_a_worker_with_another_secret_key_sends_no_broken_link(stack: Stack, settings):
    """Web and worker must share PORTICO_SECRET_KEY: a worker that derives another link than
    the one whose hash the database holds refuses to send it (the audit trail says why)."""
    document = await seed_document(stack)
    created = await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": [{"name": "Approver 1", "email": EMAIL}],
            "routing": "sequential",
            "expires_in_days": 14,
            "channels": ["email"],
        },
    )
    other = settings.model_copy(update={"secret_key_value": "another-" + secrets.token_hex(16)})
    other.__dict__.pop("secret_key", None)  # the cached value of the copied settings
    assert other.secret_key != settings.secret_key
    notify = NotifyActivities(other, stack.sessions)
    dedupe_key = f"test:{created['id']}:other-key"
    with pytest.raises(ApplicationError) as failed:
        await notify.send_email(
            EmailMessage(
                dedupe_key=dedupe_key,
                to=EMAIL,
                template="request",
                context={"sign_url": SIGN_URL, "approver_name": "Approver 1"},
                approver_id=created["approvers"][0]["id"],
            )
        )
    assert failed.value.type == "LinkUnavailable" and failed.value.non_retryable
    assert token_of(created["approvers"][0]["sign_url"]) not in str(failed.value)
    assert dedupe_key not in {m.dedupe_key for m in await outbox(stack.sessions)}
