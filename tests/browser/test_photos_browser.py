"""A job's photos in headless Chromium, desktop and phone: the client's portal page shows the
thumbnails with their alt text and opens the full-size photo; staff upload one from the
console form. axe-core finds nothing on either page, and neither scrolls sideways."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, axe_violations, describe, open_context
from tests.browser.test_console_browser import sign_in as staff_sign_in
from tests.support.console_support import ADMIN, add_member
from tests.support.photos import phone_jpeg, png_with_metadata, webp_with_metadata
from tests.support.portal_support import next_magic_link, seed_client
from tests.web.test_photos import make_booking, photo_form

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_a_client_sees_the_photos_of_their_job(browser, stack, artifacts, device):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])
    upload = f"/bookings/{job['id']}/photos"
    first = await stack.api(
        "POST", upload, 201, data=photo_form(phone_jpeg(1200, 900, 1), caption="New boards")
    )
    await stack.api("POST", upload, 201, data=photo_form(webp_with_metadata()))
    await stack.api(
        "POST", upload, 201, data=photo_form(png_with_metadata(), portal_visible="false")
    )
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    page = watched.page
    try:
        await page.goto(base + "/portal")
        await page.get_by_label("Email").fill("dana@client.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_text("we've sent a sign-in link").wait_for()
        token = await next_magic_link(stack, "dana@client.test")
        await page.goto(f"{base}/portal/link/{token}")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Hello, Dana Client").wait_for()

        await page.goto(f"{base}/portal/bookings/{job['id']}")
        await expect(page.get_by_role("heading", name="Deck repair")).to_be_visible()
        await expect(page.get_by_text("Completed")).to_be_visible()
        await expect(page.get_by_role("img")).to_have_count(2)  # not the staff-only one
        await expect(page.get_by_role("img", name="New boards")).to_be_visible()
        await expect(page.get_by_role("img", name="Photo 2 of job Deck repair")).to_be_visible()
        loaded = await page.evaluate(
            "[...document.querySelectorAll('.photos img')].every(i => i.complete && i.naturalWidth)"
        )
        assert loaded
        violations = await axe_violations(page)
        assert not violations, describe(violations)
        width = 375 if device == "phone" else 1280
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await page.screenshot(path=str(artifacts / f"portal-job-{device}.png"), full_page=True)

        link = page.get_by_role("link", name="New boards")
        async with watched.context.expect_page() as opened:
            await link.click()
        full = await opened.value
        await full.wait_for_load_state()
        assert full.url == f"{base}/portal/photos/{first['id']}"
        size = await full.evaluate(
            "[document.images[0].naturalWidth, document.images[0].naturalHeight]"
        )
        assert size == [1200, 900]
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_staff_upload_a_photo_from_the_console(browser, stack, artifacts, tmp_path, device):
    await add_member(stack, ADMIN)
    client, _ = await seed_client(stack)
    await make_booking(stack, client["id"])
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)
    try:
        page = await staff_sign_in(stack, watched, base)
        await page.goto(f"{base}/staff/clients/{client['id']}")
        await page.get_by_role("link", name="Deck repair").click()
        photo = tmp_path / "deck.jpg"
        photo.write_bytes(phone_jpeg())
        await page.get_by_label("Photo", exact=True).set_input_files(str(photo))
        await page.get_by_label("Caption").fill("Finished deck")
        await page.get_by_label("Show in the client's portal").uncheck()
        await page.get_by_role("button", name="Upload photo").click()
        await expect(page.get_by_role("status")).to_contain_text("The photo was added.")
        await expect(page.get_by_role("img", name="Finished deck")).to_be_visible()
        await expect(page.get_by_text("Staff only")).to_be_visible()
        violations = await axe_violations(page)
        assert not violations, describe(violations)
        width = 375 if device == "phone" else 1280
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await page.screenshot(path=str(artifacts / f"console-job-{device}.png"), full_page=True)
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()
