"""Outbound webhooks (CONTRACT section 11) against real local receivers: every delivery
verifies with `standardwebhooks`; a failing receiver gets the same `webhook-id` until it
answers 2xx, then nothing more; a receiver that is down gets it once it is up; a deleted
endpoint gets nothing more; a hanging receiver holds up no other; receivers on inside
addresses are refused (server-side request forgery)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from standardwebhooks import Webhook

from portico.db import create_engine, session_maker
from portico.models import WebhookDelivery, WebhookEndpoint
from portico.services import webhooks
from tests.conftest import Stack, start_stack
from tests.support.helpers import create_approval, seed_document, wait_until
from tests.support.portal_support import create_invoice, seed_client
from tests.support.webhook_support import (
    Receiver,
    eventually,
    fast,
    receiver,
    running_receivers,
)


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    async with running_receivers() as made:
        yield made


@pytest.fixture
async def hooks(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    async for s in start_stack(fast(settings), sessions, dev_env.client):
        yield s


async def add_endpoint(stack: Stack, url: str, events: list[str] | None = None) -> dict[str, Any]:
    created = await stack.api(
        "POST", "/webhooks", 201, json={"url": url, "events": events or ["*"]}
    )
    assert created["secret"].startswith("whsec_")
    return created


async def deliveries(stack: Stack, endpoint_id: int) -> list[dict[str, Any]]:
    return (await stack.api("GET", f"/webhooks/{endpoint_id}/deliveries", 200))["items"]


async def test_failure_then_success_same_id_delivered_once(hooks, receivers):
    rx = await receiver(receivers, answers=[500, 503])
    endpoint = await add_endpoint(hooks, rx.url, ["invoice.sent"])
    _, project = await seed_client(hooks)
    invoice = await create_invoice(hooks, project["id"])

    await eventually(rx.delivered)
    await asyncio.sleep(1.5)  # several back-off intervals: nothing more comes
    assert [status for _, _, status in rx.got] == [500, 503, 200]
    assert len({headers["webhook-id"] for headers, _, _ in rx.got}) == 1
    payloads = rx.verified(endpoint["secret"])
    assert {p["type"] for p in payloads} == {"invoice.sent"}
    shown = await hooks.api("GET", f"/invoices/{invoice['id']}", 200)
    data = payloads[-1]["data"]
    assert {k: data[k] for k in ("id", "number", "status", "total_cents", "pay_url")} == {
        k: shown[k] for k in ("id", "number", "status", "total_cents", "pay_url")
    }
    # a forged or altered delivery does not verify
    headers, raw, _ = rx.got[-1]
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(raw.replace(b"invoice", b"invoicx"), headers)

    [log] = await deliveries(hooks, endpoint["id"])
    assert log["status"] == "delivered" and log["attempts"] == 3
    assert log["last_status_code"] == 200 and log["next_attempt_at"] is None
    assert log["event_id"] == headers["webhook-id"] and log["type"] == "invoice.sent"


async def test_payment_and_paid_events(hooks, receivers):
    rx = await receiver(receivers)
    endpoint = await add_endpoint(hooks, rx.url, ["payment.succeeded", "invoice.paid"])
    _, project = await seed_client(hooks)
    invoice = await create_invoice(hooks, project["id"])
    body = {"amount_cents": invoice["total_cents"], "method": "check", "reference": "1042"}
    await hooks.api("POST", f"/invoices/{invoice['id']}/payments", 201, json=body)

    await eventually(lambda: len(rx.delivered()) == 2)
    payloads = {p["type"]: p["data"] for p in rx.verified(endpoint["secret"])}
    assert payloads["invoice.paid"]["status"] == "paid"
    assert payloads["invoice.paid"]["paid_cents"] == invoice["total_cents"]
    assert payloads["payment.succeeded"]["reference"] == "1042"
    assert payloads["payment.succeeded"]["invoice_id"] == invoice["id"]


async def test_approval_events_carry_the_approval_as_get_shows_it(hooks, receivers):
    rx = await receiver(receivers)
    endpoint = await add_endpoint(hooks, rx.url, ["approval.sent", "approval.voided"])
    document = await seed_document(hooks)
    approval = await create_approval(hooks, document["id"])
    await eventually(rx.delivered)
    await hooks.api("POST", f"/approvals/{approval['id']}/void", 200, json={"notify_client": False})
    await eventually(lambda: len(rx.delivered()) == 2)
    by_type = {p["type"]: p["data"] for p in rx.verified(endpoint["secret"])}
    assert set(by_type) == {"approval.sent", "approval.voided"}
    assert by_type["approval.sent"]["id"] == approval["id"]
    assert by_type["approval.voided"]["status"] == "void"
    shown = await hooks.api("GET", f"/approvals/{approval['id']}", 200)
    assert by_type["approval.voided"]["document"] == shown["document"]


async def test_receiver_down_then_up(hooks, receivers):
    rx = Receiver()  # not listening yet: connections are refused
    endpoint = await add_endpoint(hooks, rx.url)
    _, project = await seed_client(hooks)
    await create_invoice(hooks, project["id"])
    await wait_until(
        lambda: _attempted(hooks, endpoint["id"]),
    )
    [log] = await deliveries(hooks, endpoint["id"])
    assert log["status"] == "pending" and log["last_status_code"] is None
    assert log["next_attempt_at"] is not None
    await rx.start()
    receivers.append(rx)
    await eventually(rx.delivered)
    await wait_until(lambda: _status(hooks, endpoint["id"], "delivered"))
    assert len(rx.got) == 1
    rx.verified(endpoint["secret"])


async def _attempted(stack: Stack, endpoint_id: int) -> bool:
    return any(d["attempts"] >= 2 for d in await deliveries(stack, endpoint_id))


async def _status(stack: Stack, endpoint_id: int, status: str) -> bool:
    return all(d["status"] == status for d in await deliveries(stack, endpoint_id))


async def test_deleted_endpoint_gets_nothing_more(hooks, receivers):
    rx = await receiver(receivers, default=500)
    endpoint = await add_endpoint(hooks, rx.url)
    _, project = await seed_client(hooks)
    await create_invoice(hooks, project["id"])
    await eventually(lambda: len(rx.got) >= 1)
    await hooks.api("DELETE", f"/webhooks/{endpoint['id']}", 204)
    await asyncio.sleep(0.3)  # an attempt already on the wire may land
    seen = len(rx.got)
    await create_invoice(hooks, project["id"], number="INV-1002")
    await asyncio.sleep(2.0)  # many back-off intervals
    assert len(rx.got) == seen
    assert (await hooks.api("GET", "/webhooks", 200))["items"] == []
    await hooks.api("GET", f"/webhooks/{endpoint['id']}/deliveries", 404)
    await hooks.api("DELETE", f"/webhooks/{endpoint['id']}", 404)


async def test_hanging_receiver_delays_no_other(hooks, receivers):
    slow = await receiver(receivers, hang=True)
    quick = await receiver(receivers)
    await add_endpoint(hooks, slow.url)
    good = await add_endpoint(hooks, quick.url)
    _, project = await seed_client(hooks)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await create_invoice(hooks, project["id"])
    await create_invoice(hooks, project["id"], number="INV-1002")
    assert loop.time() - started < 10  # the API never waits on a receiver
    await eventually(lambda: len(quick.delivered()) == 2, timeout=5)
    assert slow.got == []  # still hanging (each attempt is cut at the timeout)
    assert {p["type"] for p in quick.verified(good["secret"])} == {"invoice.sent"}


@pytest.fixture
async def hooks_giving_up(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """Retries given up after one second."""
    quick = fast(settings, webhook_give_up_hours=1.0 / 3600)
    async for s in start_stack(quick, sessions, dev_env.client):
        yield s


async def test_failed_delivery_is_sent_again_on_request(hooks_giving_up, receivers):
    stack = hooks_giving_up
    rx = await receiver(receivers, default=500)
    endpoint = await add_endpoint(stack, rx.url)
    _, project = await seed_client(stack)
    await create_invoice(stack, project["id"])
    await wait_until(lambda: _status(stack, endpoint["id"], "failed"))
    [log] = await deliveries(stack, endpoint["id"])
    assert log["last_status_code"] == 500 and log["next_attempt_at"] is None
    retry = f"/webhooks/{endpoint['id']}/deliveries/{log['event_id']}/retry"
    rx.default = 200
    answer = await stack.api("POST", retry, 202)
    assert answer["status"] == "pending"
    await eventually(rx.delivered)
    await wait_until(lambda: _status(stack, endpoint["id"], "delivered"))
    assert {h["webhook-id"] for h, _, _ in rx.got} == {log["event_id"]}
    await stack.api("POST", retry, 409)  # delivered: not sent again
    await stack.api("POST", f"/webhooks/{endpoint['id']}/deliveries/msg_nope/retry", 404)


async def test_secret_is_sealed_and_never_in_history(hooks, receivers):
    rx = await receiver(receivers)
    endpoint = await add_endpoint(hooks, rx.url)
    listed = await hooks.api("GET", "/webhooks", 200)
    assert "secret" not in json.dumps(listed)
    async with hooks.sessions() as session:
        row = await session.get(WebhookEndpoint, endpoint["id"])
    assert row is not None and endpoint["secret"] not in row.secret_sealed
    assert webhooks.unseal(hooks.settings.secret_key, row.secret_sealed) == endpoint["secret"]
    with pytest.raises(ValueError):
        webhooks.unseal("another-key", row.secret_sealed)
    _, project = await seed_client(hooks)
    await create_invoice(hooks, project["id"])
    await eventually(rx.delivered)
    async with hooks.sessions() as session:
        delivery = await session.scalar(select(WebhookDelivery))
    assert delivery is not None
    history = await hooks.temporal.get_workflow_handle(f"webhook-{delivery.id}").fetch_history()
    text = json.dumps(history.to_json_dict())
    raw_secret = endpoint["secret"].removeprefix("whsec_")
    assert raw_secret not in text and rx.url not in text


# --- receivers are untrusted ------------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1:9/hooks",
    "http://localhost/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/",
    "http://192.168.0.10/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",  # 127.0.0.1 as one number
]
MALFORMED = ["ftp://example.com/", "file:///etc/passwd", "example.com", "http://u:p@example.com/"]


async def test_inside_addresses_and_other_schemes_are_refused(stack):
    assert stack.settings.webhooks_allow_private is False  # the default
    for url in REFUSED + MALFORMED:
        answer = await stack.api("POST", "/webhooks", 422, json={"url": url, "events": ["*"]})
        assert answer["error"]["code"], url
    bad_events = [[], ["invoice.eaten"], ["*", "invoice.sent"]]
    for events in bad_events:
        body = {"url": "https://hooks.example.com/", "events": events}
        await stack.api("POST", "/webhooks", 422, json=body)
    assert (await stack.api("GET", "/webhooks", 200))["items"] == []


async def test_delivery_refuses_a_name_that_now_resolves_inside(receivers):
    """DNS rebinding: a name checked when the endpoint was added resolves to loopback when
    the attempt is made: the connection's own resolver refuses it; nothing reaches it."""
    rx = await receiver(receivers)
    url = f"http://localhost:{rx.port}/hooks"
    sent = await webhooks.post(url, {}, "{}", timeout=2, allow_private=False)
    assert sent.refused and sent.status_code is None and rx.got == []
    literal = await webhooks.post(rx.url, {}, "{}", timeout=2, allow_private=False)
    assert literal.refused and rx.got == []
    allowed = await webhooks.post(url, {}, "{}", timeout=2, allow_private=True)
    assert allowed.ok and len(rx.got) == 1


async def test_redirects_are_not_followed_and_answers_are_cut(receivers):
    target = await receiver(receivers)
    redirect = await receiver(receivers, default=307)
    redirect.body = b"x" * 5000

    async def moved(request: web.Request) -> web.Response:
        await request.read()
        redirect.got.append((dict(request.headers), b"", 307))
        return web.Response(status=307, headers={"Location": target.url}, body=b"x" * 5000)

    redirect.handle = moved  # type: ignore[method-assign]
    await redirect.stop()
    await redirect.start()
    sent = await webhooks.post(redirect.url, {}, "{}", timeout=2, allow_private=True)
    assert sent.status_code == 307 and not sent.ok
    assert target.got == []
    assert sent.response is not None and len(sent.response.encode()) <= 1024


def test_public_addresses_are_allowed():
    for address in ("93.184.216.34", "2606:4700::1111", "8.8.8.8"):
        assert not webhooks.refused_address(address)
    for address in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "100.64.0.1", "::1", "fd00::1"):
        assert webhooks.refused_address(address)


async def test_a_delivery_never_handed_off_is_swept(hooks, receivers):
    """The process that committed the event died before handing it to Temporal (here: a
    session factory with no hand-off attached): the worker's sweep delivers it, once."""
    rx = await receiver(receivers)
    endpoint = await add_endpoint(hooks, rx.url)
    engine = create_engine(hooks.settings.database_url)
    try:
        async with session_maker(engine)() as session, session.begin():
            event = await webhooks.record(session, "invoice.paid", {"id": 7}, "test:swept")
        assert event is not None
        [log] = await deliveries(hooks, endpoint["id"])
        assert log["status"] == "pending" and log["attempts"] == 0
        await eventually(rx.delivered)
        assert [p["data"] for p in rx.verified(endpoint["secret"])] == [{"id": 7}]
        await wait_until(lambda: _status(hooks, endpoint["id"], "delivered"))
        async with session_maker(engine)() as session, session.begin():
            again = await webhooks.record(session, "invoice.paid", {"id": 7}, "test:swept")
        assert again is None  # the same occurrence is recorded once
    finally:
        await engine.dispose()
    await asyncio.sleep(0.8)
    assert len(rx.got) == 1
