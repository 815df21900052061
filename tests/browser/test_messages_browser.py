"""The portal's Messages page in headless Chromium with JavaScript on, desktop and phone: sign
in, write to the business with the "Message" box and "Send", read the staff reply at the
bottom of the thread, with links safe and a <script> shown as text; axe-core finds nothing."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, axe_violations, describe, open_context
from tests.support.portal_support import seed_client
from web.http.portal_keys import AUTH

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_write_and_read_the_thread(browser, stack, artifacts, device):
    client, _ = await seed_client(stack)
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    page = watched.page
    try:
        link = (await stack.http.app[AUTH].issue_sign_in_links("dana@client.test", None))[0]
        await page.goto(f"{base}/portal/link/{link.token}")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Messages").click()
        await expect(page.get_by_role("heading", name="Messages")).to_be_visible()
        await expect(page.get_by_text("No messages yet.")).to_be_visible()

        await page.get_by_label("Message").fill(
            "Hello <script>document.title='owned'</script> see https://example.test/plan"
        )
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("status")).to_contain_text("has been told")
        thread = page.get_by_role("list", name="Conversation")
        await expect(thread.get_by_role("listitem")).to_have_count(1)
        await expect(thread).to_contain_text("<script>document.title='owned'</script>")
        assert "owned" not in await page.title()
        link_el = thread.get_by_role("link", name="https://example.test/plan")
        assert await link_el.get_attribute("rel") == "noopener nofollow noreferrer"

        await stack.api(
            "POST",
            f"/clients/{client['id']}/messages",
            201,
            json={"body": "Thanks Dana, we will call you tomorrow."},
        )
        await page.reload()
        items = thread.get_by_role("listitem")
        await expect(items).to_have_count(2)
        await expect(items.last).to_contain_text("Acme Builders")
        await expect(items.last).to_contain_text("we will call you tomorrow")
        await expect(page.get_by_label("Message")).to_have_value("")

        # An empty message is refused with the reason beside the box.
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("alert")).to_contain_text("Please write a message")
        await expect(items).to_have_count(2)

        await page.get_by_label("Message").fill("A second message")
        width = 375 if device == "phone" else 1280
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        violations = await axe_violations(page)
        assert not violations, describe(violations)
        await page.screenshot(path=str(artifacts / f"portal-messages-{device}.png"), full_page=True)
        errors = [e for e in watched.errors if "HTTP 422" not in e]  # the refused empty send
        assert not errors, errors
    finally:
        await watched.context.close()
