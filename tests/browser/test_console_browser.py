"""The staff console in headless Chromium: sign in with the link, send a request with the
form (PDF upload, "Add approver"), find it on the board, and watch its status change live
when it is voided through the API; axe-core on every console page, desktop and phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from portico.models import Project
from tests.browser.conftest import PHONE, Watched, axe_violations, describe, open_context
from tests.support.console_support import ADMIN, add_member, staff_auth
from tests.support.helpers import sample_pdf, seed_document
from tests.support.portal_support import create_invoice

pytestmark = pytest.mark.browser


async def sign_in(stack: Any, watched: Watched, base: str) -> Page:
    page = watched.page
    await page.goto(base + "/staff")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await expect(page.get_by_role("status")).to_contain_text("we've sent a sign-in link")
    link = await staff_auth(stack).issue_link(ADMIN)  # as `portico staff link` prints it
    await page.goto(f"{base}/staff/link/{link.token}")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    return page


async def test_send_a_request_and_see_it_change_live(browser, stack, tmp_path, artifacts):
    await add_member(stack, ADMIN)
    doc = await seed_document(stack)
    base = str(stack.http.make_url("")).rstrip("/")
    watched = await open_context(browser, viewport={"width": 1280, "height": 900})
    try:
        page = await sign_in(stack, watched, base)
        await page.get_by_role("link", name="New approval").click()
        await page.get_by_label("Project").select_option(str(doc["project_id"]))
        await page.get_by_label("Kind").select_option("estimate")
        await page.get_by_label("Title").fill("Deck rebuild")
        await page.get_by_label("Number", exact=True).fill("EST-42")
        await page.get_by_label("Amount").fill("1250.00")
        pdf_path = tmp_path / "estimate.pdf"
        pdf_path.write_bytes(sample_pdf("Deck rebuild"))
        await page.get_by_label("PDF").set_input_files(str(pdf_path))
        await page.get_by_label("Routing").select_option(label="All")
        await page.get_by_label("Expires in days").fill("14")
        await page.get_by_label("Message").fill("As discussed on site.")
        await page.get_by_label("Approver 1 name").fill("Dana Client")
        await page.get_by_label("Approver 1 email").fill("dana@client.test")
        await expect(page.get_by_label("Approver 2 name")).to_be_hidden()  # until asked for
        await page.get_by_role("button", name="Add approver").click()
        await page.get_by_label("Approver 2 name").fill("Sam Partner")
        await page.get_by_label("Approver 2 email").fill("sam@client.test")
        await page.screenshot(path=str(artifacts / "console-new.png"), full_page=True)
        await page.get_by_role("button", name="Send for approval").click()
        await expect(page.get_by_role("heading", name="Deck rebuild")).to_be_visible()
        approval_id = int(page.url.rsplit("/", 1)[1])
        await expect(page.get_by_role("cell", name="Sam Partner")).to_be_visible()

        await page.get_by_role("link", name="Approvals").click()
        row = page.get_by_role("row").filter(has_text="EST-42")
        await expect(row).to_contain_text("Deck rebuild")
        await expect(row).to_contain_text("Pending")
        await page.screenshot(path=str(artifacts / "console-board.png"), full_page=True)
        await page.wait_for_timeout(500)  # the stream is open

        await stack.api("POST", f"/approvals/{approval_id}/void", 200, json={"reason": "Redo"})
        await expect(row).to_contain_text("Void", timeout=5_000)  # no reload
        await expect(
            page.get_by_role("status").filter(has_text="EST-42 is now Void")
        ).to_be_visible()
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()


CONSOLE_PAGES = (
    "/staff",
    "/staff/approvals/new",
    "/staff/approvals/{approval}",
    "/staff/clients",
    "/staff/clients/{client}",
    "/staff/invoices/{invoice}",
    "/staff/settings",
    "/staff/members",
)


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_axe_finds_nothing_on_the_console_pages(browser, stack, artifacts, device):
    await add_member(stack, ADMIN)
    doc = await seed_document(stack)
    created = await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": doc["id"],
            "approvers": [{"name": "Dana", "email": "dana@client.test"}],
            "channels": ["email"],
        },
    )
    invoice = await create_invoice(stack, doc["project_id"])
    async with stack.sessions() as session:
        client_id = (await session.get(Project, doc["project_id"])).client_id
    ids = {"approval": created["id"], "client": client_id, "invoice": invoice["id"]}
    base = str(stack.http.make_url("")).rstrip("/")
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    try:
        await sign_in(stack, watched, base)
        page = watched.page
        width = 375 if device == "phone" else 1280
        for path in CONSOLE_PAGES:
            url = base + path.format(**ids)
            await page.goto(url)
            violations = await axe_violations(page)
            assert not violations, f"{path}:\n{describe(violations)}"
            assert await page.evaluate("document.documentElement.scrollWidth") <= width, path
            name = path.strip("/").replace("/", "-").replace("{", "").replace("}", "")
            await page.screenshot(path=str(artifacts / f"{name}-{device}.png"), full_page=True)
        assert not watched.errors, watched.errors
    finally:
        await watched.context.close()
