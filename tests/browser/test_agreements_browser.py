"""Service agreements in headless Chromium, desktop and phone: the client finds the
"Agreements" section and an agreement's schedule and progress; staff cancel one with the
console's button; axe-core finds nothing and nothing scrolls sideways on those pages."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, axe_violations, describe, open_context
from tests.support.console_support import staff_sign_in
from tests.support.portal_support import Browser, seed_client, sign_in
from tests.web.test_agreements import create, shown

pytestmark = pytest.mark.browser


async def checked(page: Page, url: str, width: int) -> None:
    """Open `url`; no axe violation, no sideways scrolling."""
    await page.goto(url)
    violations = await axe_violations(page)
    assert not violations, f"{url}:\n{describe(violations)}"
    assert await page.evaluate("document.documentElement.scrollWidth") <= width, url


async def cookies_of(browser: Browser, base: str) -> list[dict[str, Any]]:
    """The signed-in session of an aiohttp browser, for Chromium."""
    return [
        {"name": c.key, "value": c.value, "url": base + "/"} for c in browser.session.cookie_jar
    ]


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_the_client_follows_an_agreement_and_staff_cancel_it(browser, stack, device):
    dana, _ = await seed_client(stack)
    created = await create(stack, dana["id"], visits=12, every="month")
    found = await shown(stack, created["id"], lambda a: a["visits"][0]["booking_id"])
    await stack.api(
        "PATCH", f"/bookings/{found['visits'][0]['booking_id']}", 200, json={"status": "completed"}
    )
    await shown(stack, created["id"], lambda a: a["visits_done"] == 1)
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    width = 375 if device == "phone" else 1280

    portal = await sign_in(stack, dana["email"])
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    try:
        await watched.context.add_cookies(await cookies_of(portal, base))
        page = watched.page
        await checked(page, base + "/portal", width)
        section = page.get_by_role("region", name="Agreements")
        await expect(section).to_contain_text("1 of 12 visits")
        await section.get_by_role("link", name="HVAC maintenance").click()
        await expect(page.get_by_role("heading", name="HVAC maintenance")).to_be_visible()
        await expect(page.get_by_text("1 of 12 visits").first).to_be_visible()
        await expect(page.get_by_role("heading", name="Schedule")).to_be_visible()
        await checked(page, page.url, width)
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()
        await portal.close()

    staff = await staff_sign_in(stack)
    watched = await open_context(browser, bypass_csp=True, **options)
    try:
        await watched.context.add_cookies(await cookies_of(staff, base))
        page = watched.page
        await checked(page, f"{base}/staff/clients/{dana['id']}", width)
        agreements = page.get_by_role("region", name="Agreements")
        await expect(agreements).to_contain_text("1 of 12 visits")
        await agreements.get_by_role("button", name="Cancel agreement").click()
        await expect(page.get_by_role("status")).to_contain_text("The agreement was cancelled")
        await expect(agreements.get_by_role("button", name="Cancel agreement")).to_have_count(0)
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()
        await staff.close()
    assert (await stack.api("GET", f"/agreements/{created['id']}", 200))["status"] == "cancelled"
