"""Webhooks in the staff console (`/staff/webhooks`, admins only): add an endpoint with the form
and see its signing secret once (deliveries verify with it), the delivery log, "Retry" on a
failed delivery, deletion behind a confirmation page; bad input is a 4xx that adds nothing."""

from __future__ import annotations

import asyncio
import html as htmllib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Stack, start_stack
from tests.support.console_support import STAFF, staff_sign_in
from tests.support.helpers import wait_until
from tests.support.portal_support import Browser, create_invoice, seed_client
from tests.support.webhook_support import (
    Receiver,
    eventually,
    fast,
    receiver,
    running_receivers,
)

SECRET = re.compile(r'id="secret"[^>]*value="(whsec_[^"]+)"')


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    async with running_receivers() as made:
        yield made


@pytest.fixture
async def hooks(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    async for s in start_stack(fast(settings), sessions, dev_env.client):
        yield s


@pytest.fixture
async def hooks_giving_up(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """Retries given up after one second."""
    quick = fast(settings, webhook_give_up_hours=1.0 / 3600)
    async for s in start_stack(quick, sessions, dev_env.client):
        yield s


async def submit(
    browser: Browser, page: str, action: str, fields: list[tuple[str, str]]
) -> tuple[int, str, Any]:
    """Post a form the way a browser does: repeated names (checkboxes) kept."""
    token = await browser.csrf(page)
    return await browser.post(action, [("csrf", token), *fields])  # type: ignore[arg-type]


async def add_by_form(
    browser: Browser, url: str, events: list[str], description: str = ""
) -> tuple[int, str]:
    fields = [("url", url), *(("events", e) for e in events), ("description", description)]
    status, html, _ = await submit(browser, "/staff/webhooks", "/staff/webhooks", fields)
    return status, html


async def endpoints(stack: Stack) -> list[dict[str, Any]]:
    return (await stack.api("GET", "/webhooks", 200))["items"]


async def test_add_an_endpoint_see_its_secret_once_and_its_delivery_log(hooks, receivers):
    rx = await receiver(receivers)
    browser = await staff_sign_in(hooks)
    try:
        status, html, _ = await browser.get("/staff/webhooks")
        assert (
            status == 200 and '<a href="/staff/webhooks" aria-current="page">Webhooks</a>' in html
        )
        assert '<label for="url">URL</label>' in html and "<legend>Events</legend>" in html
        assert '<label for="event-all">All events' in html
        assert '<label for="event-invoice-sent"><code>invoice.sent</code>' in html
        assert '<label for="description">Description</label>' in html
        assert ">Add endpoint</button>" in html and "No endpoints yet." in html

        status, html = await add_by_form(
            browser, rx.url, ["invoice.sent", "invoice.paid"], "Accounting"
        )
        assert status == 200, html[:800]
        found = SECRET.search(html)
        assert found and "it is not shown again" in html
        secret = htmllib.unescape(found.group(1))
        assert browser.cookie("portico_new_webhook") is None  # read once, then cleared
        [listed] = await endpoints(hooks)
        assert listed["url"] == rx.url and listed["events"] == ["invoice.sent", "invoice.paid"]
        assert listed["description"] == "Accounting"
        page = f"/staff/webhooks/{listed['id']}"

        status, html, _ = await browser.get("/staff/webhooks")
        assert f'<a href="{page}">{rx.url}</a>' in html
        assert "invoice.sent, invoice.paid" in html and "Accounting" in html
        assert "whsec_" not in html
        status, html, _ = await browser.get(page)  # a reload: shown once, nothing added
        assert status == 200 and "whsec_" not in html and "No deliveries yet." in html
        assert len(await endpoints(hooks)) == 1

        _, project = await seed_client(hooks)
        await create_invoice(hooks, project["id"])
        await eventually(rx.delivered)
        [payload] = rx.verified(secret)  # the secret the page showed signs the deliveries
        assert payload["type"] == "invoice.sent"
        event_id = rx.got[0][0]["webhook-id"]

        async def logged() -> str | None:
            _, html, _ = await browser.get(page)
            return html if "Delivered" in html else None

        html = await wait_until(logged)
        for column in ("Event id", "Type", "Status", "Attempts", "Last status code"):
            assert f'<th scope="col">{column}</th>' in html
        assert '<th scope="col">Next attempt (UTC)</th>' in html
        row = re.search(r"<tr>\s*<td><code>" + event_id + r"</code>.*?</tr>", html, re.S)
        assert row, html
        cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
        assert "invoice.sent" in cells[1] and "Delivered" in cells[2]
        assert cells[3:6] == ["1", "200", "—"]
        assert ">Retry</button>" not in html  # delivered: nothing to retry
    finally:
        await browser.close()


async def test_all_events_and_bad_input(stack, receivers):
    """`stack` keeps the default: inside addresses are refused."""
    browser = await staff_sign_in(stack)
    try:
        status, html = await add_by_form(browser, "ftp://example.com/x", ["*"])
        assert status == 422 and 'id="err-url"' in html and 'aria-describedby="err-url"' in html
        assert "absolute http:// or https:// URL" in html
        assert 'value="ftp://example.com/x"' in html  # the input is kept
        status, html = await add_by_form(browser, "https://hooks.example.com/p", [])
        assert status == 422 and 'id="err-events"' in html
        status, html = await add_by_form(browser, "http://127.0.0.1:9/hooks", ["*"])
        assert status == 422 and "loopback, link-local or private" in html
        status, html = await add_by_form(browser, "http://169.254.169.254/", ["invoice.paid"])
        assert status == 422 and 'id="err-url"' in html
        assert re.search(r'id="event-invoice-paid"[^>]*checked', html)  # choices kept
        status, html = await add_by_form(browser, "https://hooks.example.com/p", ["*"], "x" * 501)
        assert status == 422 and 'id="err-description"' in html
        status, _, _ = await browser.post(
            "/staff/webhooks", {"csrf": "forged", "url": "https://a.example.com/", "events": "*"}
        )
        assert status == 400
        assert await endpoints(stack) == []

        # "All events" wins over single ones: every event, including later ones.
        status, html = await add_by_form(
            browser, "https://93.184.216.34/hooks", ["*", "invoice.paid"]
        )
        assert status == 200 and SECRET.search(html)
        assert [e["events"] for e in await endpoints(stack)] == [["*"]]
        _, html, _ = await browser.get("/staff/webhooks")
        assert "All events" in html
    finally:
        await browser.close()


async def test_only_admins_see_webhooks(stack):
    clerk = await staff_sign_in(stack, STAFF, role="staff")
    try:
        _, html, _ = await clerk.get("/staff")
        assert 'href="/staff/webhooks"' not in html
        for path in ("/staff/webhooks", "/staff/webhooks/1", "/staff/webhooks/1/delete"):
            status, _, _ = await clerk.get(path)
            assert status == 403, path
        fields = [("url", "https://93.184.216.34/"), ("events", "*")]
        token = await clerk.csrf("/staff")
        status, _, _ = await clerk.post("/staff/webhooks", [("csrf", token), *fields])  # type: ignore[arg-type]
        assert status == 403 and await endpoints(stack) == []
    finally:
        await clerk.close()
    anonymous = Browser(stack)
    try:
        status, _, response = await anonymous.get("/staff/webhooks", allow_redirects=False)
        assert status == 303 and response.headers["Location"] == "/staff"
    finally:
        await anonymous.close()


async def test_delete_asks_first_then_the_endpoint_gets_nothing_more(hooks, receivers):
    rx = await receiver(receivers)
    browser = await staff_sign_in(hooks)
    try:
        status, _ = await add_by_form(browser, rx.url, ["*"])
        assert status == 200
        [endpoint] = await endpoints(hooks)
        page = f"/staff/webhooks/{endpoint['id']}"
        _, html, _ = await browser.get(page)
        assert f'<a class="button danger" href="{page}/delete">Delete endpoint</a>' in html
        status, html, _ = await browser.get(f"{page}/delete")  # a GET deletes nothing
        assert status == 200 and "Delete this endpoint?" in html and rx.url in html
        assert ">Delete endpoint</button>" in html and f'<a href="{page}">Cancel</a>' in html
        assert len(await endpoints(hooks)) == 1
        status, _, _ = await browser.post(f"{page}/delete", {"csrf": "forged"})
        assert status == 400 and len(await endpoints(hooks)) == 1

        status, html, _ = await submit(browser, f"{page}/delete", f"{page}/delete", [])
        assert status == 200 and "The endpoint was deleted" in html and "No endpoints yet." in html
        assert await endpoints(hooks) == []
        _, project = await seed_client(hooks)
        await create_invoice(hooks, project["id"])
        await asyncio.sleep(2.0)  # many back-off intervals
        assert rx.got == []
        for path in (page, f"{page}/delete"):
            status, _, _ = await browser.get(path)
            assert status == 404, path
    finally:
        await browser.close()


async def test_retry_a_failed_delivery_from_its_log(hooks_giving_up, receivers):
    stack = hooks_giving_up
    rx = await receiver(receivers, default=500)
    browser = await staff_sign_in(stack)
    try:
        status, html = await add_by_form(browser, rx.url, ["invoice.sent"])
        secret = htmllib.unescape(SECRET.search(html).group(1))  # type: ignore[union-attr]
        [endpoint] = await endpoints(stack)
        page = f"/staff/webhooks/{endpoint['id']}"
        _, project = await seed_client(stack)
        await create_invoice(stack, project["id"])

        async def failed() -> str | None:
            _, html, _ = await browser.get(page)
            return html if "Failed" in html else None

        html = await wait_until(failed)
        event_id = rx.got[0][0]["webhook-id"]
        assert "500" in html
        button = f'aria-label="Retry invoice.sent {event_id}">Retry</button>'
        assert button in html
        action = f"{page}/deliveries/{event_id}/retry"
        assert f'action="{action}"' in html

        rx.default = 200
        status, html, _ = await submit(browser, page, action, [])
        assert status == 200 and "being sent again" in html
        await eventually(rx.delivered)
        assert {headers["webhook-id"] for headers, _, _ in rx.got} == {event_id}
        assert rx.verified(secret)

        async def delivered() -> str | None:
            _, html, _ = await browser.get(page)
            return html if "Delivered" in html else None

        await wait_until(delivered)
        status, html, _ = await submit(browser, page, action, [])
        assert status == 409 and "only a failed one is sent again" in html
        status, _, _ = await submit(browser, page, f"{page}/deliveries/msg_nope/retry", [])
        assert status == 404
        seen = len(rx.got)
        await asyncio.sleep(1.0)
        assert len(rx.got) == seen  # delivered once after the retry
    finally:
        await browser.close()
