"""Webhooks in the console, in headless Chromium on a desktop and a 375 px phone: add an
endpoint with the form (the secret shown once verifies the deliveries), retry a failed delivery
from its log, delete the endpoint after the confirmation page; axe-core on every step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import PHONE, axe_violations, describe, open_context
from tests.browser.test_console_browser import sign_in
from tests.conftest import Stack, start_stack
from tests.support.console_support import ADMIN, add_member
from tests.support.portal_support import create_invoice, seed_client
from tests.support.webhook_support import Receiver, eventually, fast, running_receivers

pytestmark = pytest.mark.browser


@pytest.fixture
async def hooks(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """Receivers on 127.0.0.1 allowed; retries fast and given up after one second."""
    quick = fast(settings, webhook_give_up_hours=1.0 / 3600)
    async for s in start_stack(quick, sessions, dev_env.client):
        yield s


async def check_page(page: Page, width: int, artifacts: Path, name: str) -> None:
    violations = await axe_violations(page)
    assert not violations, f"{page.url}:\n{describe(violations)}"
    assert await page.evaluate("document.documentElement.scrollWidth") <= width, page.url
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_add_retry_and_delete_a_webhook(browser: Browser, hooks, artifacts, device):
    await add_member(hooks, ADMIN)
    base = str(hooks.http.make_url("")).rstrip("/")
    width = 375 if device == "phone" else 1280
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    async with running_receivers() as made:
        rx = Receiver(default=500)
        await rx.start()
        made.append(rx)
        try:
            page = await sign_in(hooks, watched, base)
            await page.get_by_role("link", name="Webhooks").click()
            await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
            await page.get_by_label("URL").fill(rx.url)
            await page.get_by_label("invoice.sent").check()
            await page.get_by_label("Description").fill("Accounting")
            await check_page(page, width, artifacts, f"console-webhooks-new-{device}")
            await page.get_by_role("button", name="Add endpoint").click()

            secret_box = page.get_by_label("Signing secret")
            await expect(secret_box).to_be_visible()
            secret = await secret_box.input_value()
            assert secret.startswith("whsec_")
            await expect(page.get_by_role("status")).to_contain_text("not shown again")
            await check_page(page, width, artifacts, f"console-webhook-secret-{device}")

            _, project = await seed_client(hooks)
            await create_invoice(hooks, project["id"])
            await eventually(lambda: rx.got)
            row = page.get_by_role("row").filter(has_text="invoice.sent")
            for _ in range(100):  # given up after a second: reload until the log says so
                await page.reload()
                if await row.filter(has_text="Failed").count():
                    break
                await page.wait_for_timeout(200)
            await expect(row).to_contain_text("Failed")
            await expect(row).to_contain_text("500")
            await check_page(page, width, artifacts, f"console-webhook-log-{device}")

            rx.default = 200
            await row.get_by_role("button", name="Retry").click()
            await expect(page.get_by_role("status")).to_contain_text("being sent again")
            await eventually(rx.delivered)
            assert len({headers["webhook-id"] for headers, _, _ in rx.got}) == 1
            assert [p["type"] for p in rx.verified(secret)][-1] == "invoice.sent"
            for _ in range(100):
                await page.reload()
                if await row.filter(has_text="Delivered").count():
                    break
                await page.wait_for_timeout(200)
            await expect(row).to_contain_text("Delivered")
            await expect(row.get_by_role("button", name="Retry")).to_have_count(0)

            await page.get_by_role("link", name="Delete endpoint").click()
            await expect(page.get_by_role("heading", name="Delete this endpoint?")).to_be_visible()
            await check_page(page, width, artifacts, f"console-webhook-delete-{device}")
            await page.get_by_role("button", name="Delete endpoint").click()
            await expect(page.get_by_role("status")).to_contain_text("The endpoint was deleted")
            await expect(page.get_by_text("No endpoints yet.")).to_be_visible()
            await check_page(page, width, artifacts, f"console-webhooks-{device}")
            assert (await hooks.api("GET", "/webhooks", 200))["items"] == []
            assert not watched.errors, watched.errors
        finally:
            await watched.context.close()


async def test_the_event_checkboxes_fit_a_phone(browser: Browser, stack):
    """On a 375 px phone the Events fieldset stays inside its card and no checkbox is squeezed
    by a long label (`approval.partially_approved` used to push both)."""
    await add_member(stack, ADMIN)
    watched = await open_context(browser, **PHONE)
    try:
        page = await sign_in(stack, watched, str(stack.http.make_url("")).rstrip("/"))
        await page.get_by_role("link", name="Webhooks").click()
        layout = await page.evaluate(
            """() => {
                const set = document.querySelector("fieldset.events");
                const card = set.closest("section").getBoundingClientRect();
                return {
                    inside: set.getBoundingClientRect().right <= card.right,
                    widths: [...set.querySelectorAll("input[type=checkbox]")]
                        .map((box) => box.getBoundingClientRect().width),
                };
            }"""
        )
        assert layout["inside"], layout
        assert len(layout["widths"]) == 13 and set(layout["widths"]) == {20}, layout
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()
