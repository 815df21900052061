"""The signing link as a client's browser sees it (plain HTML forms, JavaScript off)."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from datetime import timedelta

from aiohttp import FormData
from sqlalchemy import select

from portico import pdf, tokens
from portico.models import Approver
from tests.support.helpers import (
    create_approval,
    outbox,
    sample_pdf,
    seed_document,
    token_of,
    wait_until,
)
from web.pages import signing
from web.pages.signing import VIEW_WINDOW


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def open_page(stack, token: str) -> tuple[int, str]:
    response = await stack.http.get(f"/s/{token}")
    return response.status, await response.text()


async def post(stack, token: str, action: str, fields: dict, follow: bool = False):
    form = FormData()
    form.add_field("csrf", tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)))
    for name, value in fields.items():
        form.add_field(name, value)
    return await stack.http.post(f"/s/{token}/{action}", data=form, allow_redirects=follow)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def approver_row(stack, approver_id: int) -> Approver:
    async with stack.sessions() as session:
        return (await session.scalars(select(Approver).where(Approver.id == approver_id))).one()


async def test_page_shows_the_document_and_the_accessible_form(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    status, html = await open_page(stack, token)
    assert status == 200
    assert "Extra outlets" in html and "CO-17" in html and "$635.00" in html
    for label in ('for="full_name">Full name<', 'for="notes">Notes<', 'for="reason">Reason<'):
        assert label in html
    assert re.search(r'<label for="consent">[^<]*electronic', html)
    assert ">Approve</button>" in html and ">Decline</button>" in html
    assert 'aria-label="Signature pad"' in html and ">Upload signed PDF</button>" in html
    assert f"/s/{token}/document.pdf" in html
    response = await stack.http.get(f"/s/{token}/document.pdf")
    assert response.content_type == "application/pdf"
    assert pdf.sha256_hex(await response.read()) == document["sha256"]
    row = await approver_row(stack, created["approvers"][0]["id"])
    assert row.view_count == 1 and row.first_viewed_at is not None
    await wait_until(lambda: outbox(stack.sessions, "office@firm.test"))  # first open
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["approvers"][0]["status"] == "viewed"
    assert "viewed" in [e["type"] for e in shown["events"]]


async def test_unknown_or_tampered_links_get_a_clear_404_page(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "short", "x" * 40):
        status, html = await open_page(stack, bad)
        assert status == 404
        assert "not valid" in html and "Traceback" not in html
    response = await stack.http.post(f"/s/{'x' * 40}/approve", data={"consent": "on"})
    assert response.status == 404


async def test_approving_needs_consent_and_csrf_then_says_thank_you(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], n=2)
    first, second = (token_of(a["sign_url"]) for a in created["approvers"])

    response = await post(stack, first, "approve", {"full_name": "Approver One"})
    assert response.status == 422
    assert "agree to sign electronically" in await response.text()
    response = await stack.http.post(
        f"/s/{first}/approve", data={"full_name": "A", "consent": "on", "csrf": "forged"}
    )
    assert response.status == 400
    assert (await stack.api("GET", f"/approvals/{created['id']}"))["status"] == "pending"

    # Approver 2 cannot go first.
    response = await post(stack, second, "approve", {"full_name": "Two", "consent": "on"})
    assert response.status == 409
    assert "Not your turn yet" in await response.text()

    signature = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    response = await post(
        stack,
        first,
        "approve",
        {
            "full_name": "Approver One",
            "consent": "on",
            "notes": "Go ahead",
            "signature_data": signature,
        },
    )
    assert response.status == 303
    status, html = await open_page(stack, first)
    assert "Thank you" in html
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "partially_approved"
    one = shown["approvers"][0]
    assert one["status"] == "approved" and one["notes"] == "Go ahead"
    assert one["signature_name"] == "Approver One" and one["decided_via"] == "web"
    row = await approver_row(stack, one["id"])
    assert row.signature_image and row.consent and row.decided_ip == "127.0.0.1"
    # Twice is refused and changes nothing.
    response = await post(stack, first, "approve", {"full_name": "Again", "consent": "on"})
    assert response.status == 409


async def test_declining_requires_a_reason(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], routing="any", n=2)
    token = token_of(created["approvers"][1]["sign_url"])
    response = await post(stack, token, "decline", {"reason": "   "})
    assert response.status == 422
    assert "reason" in (await response.text()).lower()
    assert (await stack.api("GET", f"/approvals/{created['id']}"))["status"] == "pending"
    response = await post(stack, token, "decline", {"reason": "Price too high"}, follow=True)
    assert response.status == 200
    assert "You declined" in await response.text()
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "declined"
    assert [a["status"] for a in shown["approvers"]] == ["skipped", "declined"]
    assert shown["approvers"][1]["decline_reason"] == "Price too high"
    other = token_of(created["approvers"][0]["sign_url"])
    status, html = await open_page(stack, other)
    assert "was declined" in html and 'name="full_name"' not in html


async def test_voided_link_says_withdrawn(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    await stack.api("POST", f"/approvals/{created['id']}/void", 200, json={"reason": "Replaced"})
    status, html = await open_page(stack, token)
    assert status == 200 and "withdrawn" in html and "Replaced" in html
    response = await stack.http.post(f"/s/{token}/approve", data={"csrf": "x"})
    assert response.status == 400  # the stale form is refused before anything else


async def test_upload_own_signed_pdf_approves_and_yields_a_signed_copy(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    bad = FormData()
    status, html = await open_page(stack, token)
    bad.add_field("csrf", csrf(html))
    bad.add_field("consent", "on")
    bad.add_field("signed_pdf", b"not a pdf", filename="x.pdf", content_type="application/pdf")
    response = await stack.http.post(f"/s/{token}/upload", data=bad)
    assert response.status == 422
    assert "not a PDF" in await response.text()

    signed = sample_pdf("Signed in Acrobat")
    form = FormData()
    form.add_field("csrf", csrf(html))
    form.add_field("consent", "on")  # the same consent as typed signing
    form.add_field("signed_pdf", signed, filename="signed.pdf", content_type="application/pdf")
    response = await stack.http.post(f"/s/{token}/upload", data=form, allow_redirects=False)
    assert response.status == 303
    shown = await wait_until(lambda: _approved_with_pdf(stack, created["id"]))
    assert shown["approvers"][0]["decided_via"] == "upload"
    response = await stack.http.get(
        f"/api/v1/approvals/{created['id']}/signed.pdf", headers=stack.auth
    )
    assert response.status == 200
    text = pdf.pdf_text(await response.read())
    assert "Signed in Acrobat" in text and "uploaded by the signer" in text
    response = await stack.http.get(f"/s/{token}/signed.pdf")
    assert response.status == 200 and response.content_type == "application/pdf"


async def _approved_with_pdf(stack, approval_id: int):
    shown = await stack.api("GET", f"/approvals/{approval_id}")
    return shown if shown["status"] == "approved" and shown["signed_pdf_sha256"] else None


async def test_reading_time_beacon_adds_up(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    for seconds in (15, 500, -3):
        response = await stack.http.post(f"/s/{token}/beacon", json={"seconds": seconds})
        assert response.status == 204
    row = await approver_row(stack, created["approvers"][0]["id"])
    assert row.viewed_seconds == 15 + 60


async def test_opens_from_different_browsers_count_separately(stack, monkeypatch):
    """Three browsers opening one link within seconds are three views; each browser's own
    reloads within the window stay one view (the count is per browser session, a cookie)."""
    monkeypatch.setattr(signing, "VIEW_WINDOW", max(VIEW_WINDOW, timedelta(hours=1)))
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    approver_id = created["approvers"][0]["id"]
    cookies = []
    for _ in range(3):  # a new browser each time: an empty cookie jar
        stack.http.session.cookie_jar.clear()
        response = await stack.http.get(f"/s/{token}")
        assert response.status == 200
        cookie = response.cookies[signing.VIEWER_COOKIE]
        assert cookie["httponly"] and cookie["path"] == "/s/"
        cookies.append(cookie.value)
        assert (await stack.http.get(f"/s/{token}")).status == 200  # that browser reloads
    assert len(set(cookies)) == 3
    assert (await approver_row(stack, approver_id)).view_count == 3
    row = await approver_row(stack, approver_id)
    assert row.last_viewer not in cookies  # stored only hashed


async def test_reading_time_beacon_takes_only_same_origin_json(stack):
    """A cross-site page may post `text/plain` without a preflight: the beacon refuses it, and
    refuses any post a browser marks as cross-site."""
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    url = f"/s/{token}/beacon"
    plain = await stack.http.post(
        url, data='{"seconds": 30}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status == 415
    form = await stack.http.post(url, data={"seconds": "30"})
    assert form.status == 415
    cross = await stack.http.post(
        url, json={"seconds": 30}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status == 403
    assert "sent from another website" in await cross.text()
    assert (await approver_row(stack, created["approvers"][0]["id"])).viewed_seconds == 0
    same = await stack.http.post(
        url, json={"seconds": 30}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status == 204
    assert (await approver_row(stack, created["approvers"][0]["id"])).viewed_seconds == 30


async def test_a_cross_site_decision_is_refused(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    form = {
        "csrf": tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)),
        "full_name": "Approver One",
        "consent": "on",
    }
    response = await stack.http.post(
        f"/s/{token}/approve", data=form, headers={"Origin": "https://evil.test"}
    )
    assert response.status == 403
    assert "sent from another website" in await response.text()
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "pending" and shown["approvers"][0]["status"] != "approved"


async def test_reloads_within_the_view_window_count_once(stack, monkeypatch):
    # The window is wall-clock time: widen it so that "the reloads came within it" holds however
    # slowly a loaded machine serves the three pages (30 s is not much margin under load).
    window = max(VIEW_WINDOW, timedelta(hours=1))
    monkeypatch.setattr(signing, "VIEW_WINDOW", window)
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    approver_id = created["approvers"][0]["id"]
    for _ in range(3):
        assert (await open_page(stack, token))[0] == 200
    assert (await approver_row(stack, approver_id)).view_count == 1
    async with stack.sessions() as session, session.begin():
        row = await session.get(Approver, approver_id)
        row.last_viewed_at = row.last_viewed_at - window - timedelta(seconds=1)
    await open_page(stack, token)
    assert (await approver_row(stack, approver_id)).view_count == 2
