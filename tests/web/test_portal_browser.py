"""The portal in headless Chromium at a phone's size: sign in by magic link, open the invoice,
press Pay and land on (the local fake of) Stripe Checkout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import start_stack
from tests.support.fake_stripe import FakeStripe
from tests.support.portal_support import create_invoice, next_magic_link, seed_client

pytestmark = pytest.mark.browser


@pytest.fixture
async def shop(settings, sessions, dev_env) -> AsyncIterator[tuple[Any, FakeStripe]]:
    fake = await FakeStripe().start()
    configured = settings.model_copy(
        update={
            "stripe_secret_key": "sk_test_fake_key",
            "stripe_webhook_secret": "whsec_browser",
            "stripe_api_base": fake.base_url,
        }
    )
    try:
        async for stack in start_stack(configured, sessions, dev_env.client):
            yield stack, fake
    finally:
        await fake.stop()


async def test_sign_in_open_invoice_and_pay_on_a_phone(browser, shop, tmp_path):
    stack, fake = shop
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    base = str(stack.http.make_url("")).rstrip("/")
    context = await browser.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(30_000)  # generous: a loaded CI machine renders slowly
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        await page.goto(base + "/portal")
        await page.get_by_label("Email").fill("dana@client.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_text(
            "If that address has an account, we've sent a sign-in link"
        ).wait_for()

        token = await next_magic_link(stack, "dana@client.test")
        await page.goto(f"{base}/portal/link/{token}")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Hello, Dana Client").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375

        await page.get_by_role("link", name=invoice["number"]).first.click()
        await page.get_by_role("heading", name=f"Invoice {invoice['number']}").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await page.screenshot(path=str(tmp_path / "invoice.png"), full_page=True)
        assert await page.get_by_label("Amount (USD)").input_value() == "1200.00"

        await page.get_by_role("button", name="Pay").click()
        await page.wait_for_url(fake.base_url + "/c/pay/**")
        await page.get_by_role("heading", name="Fake Stripe Checkout").wait_for()
        assert fake.idempotency_keys and fake.idempotency_keys[0]
        assert fake.requests[0]["line_items[0][price_data][unit_amount]"] == "120000"
        assert not [p for p in problems if "Content Security Policy" in p], problems
    finally:
        await context.close()
