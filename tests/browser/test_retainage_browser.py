"""Retainage on screen (CONTRACT §12): the pay page and the staff console's invoice page show
what is held and what is due, on a desktop and a 375 px phone, and axe-core finds nothing."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, axe_violations, describe, open_context
from tests.browser.test_console_browser import sign_in as staff_sign_in
from tests.support.console_support import ADMIN, add_member
from tests.support.portal_support import create_invoice, seed_client

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_pay_page_and_console_show_retainage(browser, stack, artifacts, device):
    await add_member(stack, ADMIN)
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"], retainage_percent="10")
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)
    try:
        page = watched.page
        await page.goto(base + invoice["pay_url"].removeprefix("http://portico.test"))
        held = page.get_by_role("definition").filter(has_text="$120.00")
        await expect(page.get_by_text("Retainage held (10%)")).to_be_visible()
        await expect(held).to_be_visible()
        await expect(page.get_by_text("Due on this invoice")).to_be_visible()
        await page.get_by_role("button", name="Pay").click()  # bank transfer (no Stripe)
        await expect(page.get_by_role("region", name="Bank transfer details")).to_contain_text(
            "Amount: $1,080.00"
        )
        await page.screenshot(path=str(artifacts / f"pay-retainage-{device}.png"), full_page=True)
        assert await axe_violations(page) == [], describe(await axe_violations(page))

        await staff_sign_in(stack, watched, base)
        await page.goto(f"{base}/staff/invoices/{invoice['id']}")
        await expect(page.get_by_text("Retainage held (10%)")).to_be_visible()
        await expect(page.get_by_text("Due now")).to_be_visible()
        await page.screenshot(
            path=str(artifacts / f"console-retainage-{device}.png"), full_page=True
        )
        assert await axe_violations(page) == [], describe(await axe_violations(page))
        assert watched.errors == []
    finally:
        await watched.context.close()
