"""The signing page in headless Chromium, found the way people and assistive technology find it:
by the accessible names of CONTRACT section 4 ("Full name", "Signature pad", "Notes", a checkbox
labelled "…electronic…", "Approve", "Decline", "Reason", "Signed PDF", "Upload signed PDF")."""

from __future__ import annotations

import asyncio
import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Page, expect
from sqlalchemy import select

from portico import pdf
from portico.files import FileStore
from portico.models import Approver
from tests.browser.conftest import PHONE, Watched, axe_violations, describe, open_context
from tests.conftest import start_stack
from tests.support.helpers import create_approval, sample_pdf, seed_document, token_of, wait_until

pytestmark = pytest.mark.browser

INK = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 160) n++;
  return n;
}"""
CSP_PROBE = """() => {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
}"""


async def signing_link(stack: Any, n: int = 1, **document: Any) -> tuple[dict, list[str]]:
    doc = await seed_document(stack, **document)
    created = await create_approval(stack, doc["id"], n=n)
    urls = [str(stack.http.make_url(f"/s/{token_of(a['sign_url'])}")) for a in created["approvers"]]
    return created, urls


async def open_signing_page(watched: Watched, url: str) -> Page:
    page = watched.page
    await page.add_init_script(CSP_PROBE)
    await page.goto(url)
    return page


async def pdf_rendered(page: Page) -> None:
    """pdf.js drew page 1 into a canvas (non-white pixels), in the page itself."""
    first = page.get_by_role("img", name=re.compile(r"^Page 1 of \d+$"))
    await expect(first).to_have_attribute("data-rendered", "true")
    assert await first.evaluate(INK) > 500


async def no_errors(watched: Watched) -> None:
    violations = await watched.page.evaluate("() => window.__csp || []")
    assert violations == [], f"Content-Security-Policy violations: {violations}"
    assert watched.errors == [], watched.errors


async def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw with the mouse on the signature pad; points are fractions of its size."""
    pad = page.get_by_role("img", name="Signature pad")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box
    for stroke in strokes:
        x, y = stroke[0]
        await page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        await page.mouse.down()
        for x, y in stroke[1:]:
            await page.mouse.move(
                box["x"] + x * box["width"], box["y"] + y * box["height"], steps=6
            )
        await page.mouse.up()


async def draw_by_touch(watched: Watched, points: list[tuple[float, float]]) -> None:
    """A finger stroke on the pad (CDP touch events, which Chromium turns into pointer events)."""
    page = watched.page
    pad = page.get_by_role("img", name="Signature pad")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box
    cdp = await watched.context.new_cdp_session(page)

    def at(x: float, y: float) -> list[dict[str, float]]:
        return [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]}]

    async def touch(kind: str, points: list[dict[str, float]]) -> None:
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    await touch("touchStart", at(*points[0]))
    for x, y in points[1:]:
        await touch("touchMove", at(x, y))
    # Hold still before lifting, as a finger does: a lift at speed starts a fling, and Chromium
    # swallows the next tap to stop it.
    await page.wait_for_timeout(150)
    await touch("touchMove", at(*points[-1]))
    await page.wait_for_timeout(150)
    await touch("touchEnd", [])
    await cdp.detach()


async def approver_row(stack: Any, approver_id: int) -> Approver:
    async with stack.sessions() as session:
        return (await session.scalars(select(Approver).where(Approver.id == approver_id))).one()


def inked_pixels(png: bytes) -> int:
    data = Image.open(io.BytesIO(png)).convert("RGBA").tobytes()
    return sum(1 for i in range(0, len(data), 4) if data[i + 3] > 0 and data[i] < 160)


SIGNATURE = [
    [(0.1, 0.7), (0.2, 0.3), (0.3, 0.7), (0.4, 0.3), (0.5, 0.7)],
    [(0.55, 0.5), (0.9, 0.45)],
]


async def test_draw_and_approve(stack, desktop, artifacts):
    created, (url,) = await signing_link(stack)
    page = await open_signing_page(desktop, url)
    await pdf_rendered(page)

    undo = page.get_by_role("button", name="Undo")
    clear = page.get_by_role("button", name="Clear signature")
    pad = page.get_by_role("img", name="Signature pad")
    await expect(undo).to_be_disabled()
    await draw(page, SIGNATURE)
    await expect(pad).to_have_attribute("data-strokes", "2")
    await undo.click()
    await expect(pad).to_have_attribute("data-strokes", "1")
    await clear.click()
    await expect(pad).to_have_attribute("data-strokes", "0")
    await expect(clear).to_be_disabled()
    await draw(page, SIGNATURE)

    await page.get_by_label("Full name", exact=True).fill("Approver One")
    await page.get_by_label("Notes", exact=True).fill("Signed in the browser")
    await page.get_by_label("electronic").check()
    await page.screenshot(path=str(artifacts / "signing-desktop.png"), full_page=True)
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    await no_errors(desktop)

    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "approved"
    one = shown["approvers"][0]
    assert one["status"] == "approved" and one["decided_via"] == "web"
    assert one["signature_name"] == "Approver One" and one["notes"] == "Signed in the browser"
    row = await approver_row(stack, one["id"])
    assert row.consent and row.signature_image
    png = FileStore(stack.settings.files_dir).read(row.signature_image)
    assert png.startswith(b"\x89PNG") and inked_pixels(png) > 200  # the drawing, not a blank


async def test_approving_without_consent_is_refused_by_the_server(stack, desktop):
    created, (url,) = await signing_link(stack)
    page = await open_signing_page(desktop, url)
    await page.get_by_label("Full name", exact=True).fill("Approver One")
    # Skip the browser's own check of the required box, as a crafted request would.
    await page.locator("#approve-form").evaluate("form => form.noValidate = true")
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("agree to sign electronically")
    assert (await stack.api("GET", f"/approvals/{created['id']}"))["status"] == "pending"


async def test_decline_with_reason(stack, desktop):
    created, (url,) = await signing_link(stack)
    page = await open_signing_page(desktop, url)
    await page.get_by_label("Reason", exact=True).fill("The price is too high")
    await page.get_by_role("button", name="Decline", exact=True).click()
    await expect(page.get_by_role("heading", name=re.compile("You declined"))).to_be_visible()
    await no_errors(desktop)
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "declined"
    assert shown["approvers"][0]["decline_reason"] == "The price is too high"


async def test_upload_own_signed_pdf(stack, desktop, tmp_path: Path):
    created, (url,) = await signing_link(stack)
    signed = sample_pdf("Signed with a pen and scanned")
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    page = await open_signing_page(desktop, url)
    await page.get_by_label("Signed PDF", exact=True).set_input_files(str(path))
    await page.get_by_label("electronic").check()  # the same consent as typed signing
    await page.get_by_role("button", name="Upload signed PDF").click()
    await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    shown = await wait_until(lambda: _signed(stack, created["id"]))
    assert shown["approvers"][0]["decided_via"] == "upload"
    copy = await stack.http.get(f"/api/v1/approvals/{created['id']}/signed.pdf", headers=stack.auth)
    assert "Signed with a pen and scanned" in pdf.pdf_text(await copy.read())


async def _signed(stack: Any, approval_id: int) -> dict | None:
    shown = await stack.api("GET", f"/approvals/{approval_id}")
    return shown if shown["status"] == "approved" and shown["signed_pdf_sha256"] else None


async def test_phone_renders_pdf_pages_as_canvases_and_the_form_works(stack, phone, artifacts):
    many = [
        {"description": f"Item {i}: materials and labour", "quantity": 1, "unit_price_cents": 1000}
        for i in range(1, 61)
    ]
    created, (url,) = await signing_link(stack, line_items=many)
    page = await open_signing_page(phone, url)
    await pdf_rendered(page)
    pages = page.get_by_role("img", name=re.compile(r"^Page \d+ of \d+$"))
    count = await pages.count()
    assert count >= 2, "the 60-line document should have several pages"
    last = pages.nth(count - 1)
    await last.scroll_into_view_if_needed()  # drawn when it comes near the screen
    await expect(last).to_have_attribute("data-rendered", "true")
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"
    box = await pages.first.bounding_box()
    assert box and box["width"] <= 375
    assert await page.get_by_role("link", name="Open the PDF").is_visible()
    assert await page.locator("iframe").count() == 0  # pdf.js replaced the fallback frame

    await page.get_by_label("Full name", exact=True).fill("Approver One")
    await draw_by_touch(phone, [(0.1, 0.6), (0.3, 0.3), (0.5, 0.6), (0.7, 0.3), (0.9, 0.6)])
    pad = page.get_by_role("img", name="Signature pad")
    await expect(pad).to_have_attribute("data-strokes", "1")
    pad_box = await pad.bounding_box()
    assert pad_box and pad_box["width"] <= 375 and pad_box["height"] >= 90
    await page.get_by_label("electronic").check()
    await page.screenshot(path=str(artifacts / "signing-phone.png"), full_page=True)
    await page.get_by_role("button", name="Approve", exact=True).tap()
    await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    await no_errors(phone)
    row = await approver_row(stack, created["approvers"][0]["id"])
    assert row.signature_image and row.decided_user_agent and "Mobile" in row.decided_user_agent
    assert inked_pixels(FileStore(stack.settings.files_dir).read(row.signature_image)) > 100


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_signing_page_has_no_axe_violations(stack, browser, device):
    options = PHONE if device == "phone" else {"viewport": {"width": 1280, "height": 900}}
    watched = await open_context(browser, bypass_csp=True, **options)  # to inject axe
    try:
        _, (url,) = await signing_link(stack)
        page = watched.page
        await page.goto(url)
        await pdf_rendered(page)
        await expect(page.get_by_role("img", name="Signature pad")).to_be_visible()
        violations = await axe_violations(page)
        assert violations == [], describe(violations)

        await page.get_by_label("Full name", exact=True).fill("Approver One")
        await page.get_by_label("electronic").check()
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
    finally:
        await watched.context.close()


async def test_reading_time_beacon_from_a_real_browser(stack, desktop):
    created, (url,) = await signing_link(stack)
    loop = asyncio.get_running_loop()
    opened = loop.time()
    page = await open_signing_page(desktop, url)
    await pdf_rendered(page)
    await page.wait_for_timeout(2500)
    await page.goto("about:blank")  # leaving the page sends the time read (pagehide)
    on_page = loop.time() - opened  # the page's clock starts after `opened`: an upper bound
    approver_id = created["approvers"][0]["id"]

    async def counted() -> Approver | None:
        row = await approver_row(stack, approver_id)
        return row if row.viewed_seconds >= 2 else None

    row = await wait_until(counted)
    assert row.view_count == 1 and row.first_viewed_at is not None
    # No more than the time the page was really open (rounded to whole seconds by the page);
    # how long that was depends on how fast this machine renders the PDF.
    assert row.viewed_seconds <= math.ceil(on_page) + 1
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["approvers"][0]["viewed_seconds"] == row.viewed_seconds


async def test_without_javascript_the_plain_form_and_pdf_frame_work(stack, browser):
    watched = await open_context(
        browser, java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    try:
        created, (url,) = await signing_link(stack)
        page = watched.page
        await page.goto(url)
        await expect(page.locator("iframe[title$='(PDF)']")).to_be_visible()
        await expect(page.get_by_role("img", name="Signature pad")).to_be_hidden()
        await expect(page.get_by_text("Loading the document")).to_be_hidden()
        await page.get_by_label("Full name", exact=True).fill("Approver One")
        await page.get_by_label("electronic").check()
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        row = await approver_row(stack, created["approvers"][0]["id"])
        assert row.status == "approved" and row.signature_image is None
    finally:
        await watched.context.close()


@pytest.fixture
async def branded_stack(settings, sessions, dev_env):
    branded = settings.model_copy(
        update={
            "accent_color": "#0f766e",
            "logo_url": "https://cdn.example.test/acme.png",
            "division_logos_value": "Roofing=https://cdn.example.test/roofing.png",
        }
    )
    async for s in start_stack(branded, sessions, dev_env.client):
        yield s


async def test_division_logo_and_accent_colour_in_the_browser(branded_stack, desktop):
    stack = branded_stack
    doc = await seed_document(stack)
    created = await create_approval(stack, doc["id"], division="Roofing")
    url = str(stack.http.make_url(f"/s/{token_of(created['approvers'][0]['sign_url'])}"))
    served: list[str] = []

    async def logo(route: Any) -> None:
        served.append(route.request.url)
        await route.fulfill(body=_png(120, 40), content_type="image/png")

    await desktop.page.route("https://cdn.example.test/**", logo)
    page = await open_signing_page(desktop, url)
    image = page.get_by_role("img", name="Acme Builders · Roofing")
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.naturalWidth") == 120  # the CSP let it load
    assert served == ["https://cdn.example.test/roofing.png"]
    approve = page.get_by_role("button", name="Approve", exact=True)
    colour = await approve.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(15, 118, 110)"
    await no_errors(desktop)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (15, 118, 110)).save(out, format="PNG")
    return out.getvalue()
