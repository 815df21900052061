"""Signing from the client portal (CONTRACT section 8): a client signs only as an approver who is
them (same email, any case, or same phone); requests waiting on other people are read-only with
whose turn it is, mint no signing token, and a decision made through the portal records which
client and which portal session it came from, in the audit trail and on the certificate."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portico import tokens
from portico.clock import utcnow
from portico.models import Approver, Client, PortalSession, SigningLink
from portico.services.portal import is_the_client
from tests.support.helpers import token_of, wait_until
from tests.support.portal_support import CSRF, Browser, sign_in
from web.http.portal_session import COOKIE


async def seed_request(
    stack: Any, client: dict[str, Any], approvers: list[dict[str, str]], channels: list[str]
) -> dict[str, Any]:
    """A project of `client` with a proposal sent, in order, to `approvers`."""
    project = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Office fit-out"}
    )
    document = await stack.api(
        "POST",
        "/documents",
        201,
        json={
            "project_id": project["id"],
            "kind": "proposal",
            "title": "Fit-out proposal",
            "number": "P-77",
            "line_items": [{"description": "Design", "quantity": 1, "unit_price_cents": 90000}],
        },
    )
    return await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": approvers,
            "routing": "sequential",
            "expires_in_days": 14,
            "channels": channels,
        },
    ) | {"project_id": project["id"]}


async def signing_links(stack: Any) -> int:
    async with stack.sessions() as session:
        return await session.scalar(select(func.count()).select_from(SigningLink)) or 0


async def portal_session_id(stack: Any, browser: Browser) -> int:
    cookie = browser.cookie(COOKIE)
    assert cookie
    async with stack.sessions() as session:
        found = await session.scalar(
            select(PortalSession.id).where(PortalSession.session_hash == tokens.hash_token(cookie))
        )
    assert found is not None
    return found


async def open_portal_signing_page(browser: Browser, approval_id: int) -> tuple[str, str]:
    """(signing URL, page) the portal opens for the client's own approver."""
    status, _, response = await browser.get(
        f"/portal/approvals/{approval_id}/sign", allow_redirects=False
    )
    assert status == 303, status
    location = response.headers["Location"]
    assert re.fullmatch(r"/s/[A-Za-z0-9_\-]{32}", location)
    status, html, _ = await browser.get(location)
    assert status == 200
    return location, html


def decision_event(detail: dict[str, Any], kind: str, approver_id: int) -> dict[str, Any]:
    (event,) = [
        e
        for e in detail["events"]
        if e["type"] == kind and e["actor"].startswith(f"approver:{approver_id}:")
    ]
    return event


async def test_a_client_cannot_sign_as_approvers_who_are_not_them(stack):
    client = await stack.api(
        "POST", "/clients", 201, json={"name": "C One", "email": "c1@example.com"}
    )
    approval = await seed_request(
        stack,
        client,
        [
            {"name": "Sam Supervisor", "email": "supervisor@other.example"},
            {"name": "Pat PM", "email": "pm@other.example"},
        ],
        ["email"],
    )
    approval_id = approval["id"]
    browser = await sign_in(stack, "c1@example.com")
    try:
        for _ in range(2):  # the attack: once per approver in turn
            status, html, response = await browser.get(
                f"/portal/approvals/{approval_id}/sign", allow_redirects=False
            )
            assert status == 403
            assert "Location" not in response.headers and "/s/" not in html
            assert "Only the people asked to approve this request can sign it" in html
            assert "Waiting for Sam Supervisor" in html
        assert await signing_links(stack) == 0

        detail = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert detail["status"] == "pending"
        assert [a["status"] for a in detail["approvers"]] == ["pending", "waiting"]
        assert not [e for e in detail["events"] if e["type"] in ("approved", "declined")]

        # read-only: the request's page and the lists say whose turn it is, and link no signing
        status, html, _ = await browser.get(f"/portal/approvals/{approval_id}")
        assert status == 200 and "Fit-out proposal" in html
        assert "Waiting for Sam Supervisor" in html and "Pat PM: Waiting" in html
        assert f"/portal/approvals/{approval_id}/sign" not in html
        _, html, _ = await browser.get("/portal")
        assert "Waiting for your approval" not in html
        assert "Waiting for someone else" in html and "Waiting for Sam Supervisor" in html
        assert f"/portal/approvals/{approval_id}/sign" not in html
        _, html, _ = await browser.get(f"/portal/projects/{approval['project_id']}")
        assert f'href="/portal/approvals/{approval_id}"' in html
        assert f"/portal/approvals/{approval_id}/sign" not in html

        # once the supervisor signs through their own emailed link, it is the PM's turn
        supervisor = token_of(approval["approvers"][0]["sign_url"])
        status, page, _ = await browser.get(f"/s/{supervisor}")
        csrf = CSRF.search(page)
        assert csrf
        status, page, _ = await browser.post(
            f"/s/{supervisor}/approve",
            {"csrf": csrf.group(1), "full_name": "Sam Supervisor", "consent": "on"},
        )
        assert status == 200 and "Thank you" in page
        _, html, _ = await browser.get(f"/portal/approvals/{approval_id}")
        assert "Waiting for Pat PM" in html
        status, _, _ = await browser.get(
            f"/portal/approvals/{approval_id}/sign", allow_redirects=False
        )
        assert status == 403 and await signing_links(stack) == 0
        detail = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert [a["status"] for a in detail["approvers"]] == ["approved", "pending"]
        event = decision_event(detail, "approved", detail["approvers"][0]["id"])
        assert event["data"]["evidence"]["portal_client_id"] is None
    finally:
        await browser.close()


async def test_a_portal_token_minted_before_links_recorded_their_client_opens_nothing(stack):
    """Tokens the old code minted for whoever's turn it was (no client on the row)."""
    client = await stack.api(
        "POST", "/clients", 201, json={"name": "C One", "email": "c1@example.com"}
    )
    approval = await seed_request(
        stack, client, [{"name": "Sam Supervisor", "email": "supervisor@other.example"}], ["email"]
    )
    token = tokens.new_token()
    async with stack.sessions() as session, session.begin():
        session.add(
            SigningLink(
                approver_id=approval["approvers"][0]["id"],
                token_hash=tokens.hash_token(token),
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    response = await stack.http.get(f"/s/{token}")
    assert response.status == 404
    assert ">Approve</button>" not in await response.text()


async def test_a_client_who_is_an_approver_by_email_signs_and_the_trail_says_portal(stack):
    client = await stack.api(
        "POST", "/clients", 201, json={"name": "Dana Client", "email": "Dana@Client.test"}
    )
    approval = await seed_request(
        stack,
        client,
        [
            {"name": "Dana Client", "email": "dana@client.TEST"},
            {"name": "Sam Supervisor", "email": "supervisor@other.example"},
        ],
        ["email"],
    )
    approval_id = approval["id"]
    dana_id, sam_id = (a["id"] for a in approval["approvers"])
    browser = await sign_in(stack, "Dana@Client.test")
    try:
        _, html, _ = await browser.get("/portal")
        assert "Waiting for your approval" in html and "Waiting for you" in html
        location, page = await open_portal_signing_page(browser, approval_id)
        assert "Fit-out proposal" in page and ">Approve</button>" in page
        csrf = CSRF.search(page)
        assert csrf
        status, page, _ = await browser.post(
            f"{location}/approve",
            {"csrf": csrf.group(1), "full_name": "Dana Client", "consent": "on"},
        )
        assert status == 200 and "Thank you" in page

        detail = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert [a["status"] for a in detail["approvers"]] == ["approved", "pending"]
        event = decision_event(detail, "approved", dana_id)
        evidence = event["data"]["evidence"]
        assert evidence["portal_client_id"] == client["id"]
        assert evidence["portal_session_id"] == await portal_session_id(stack, browser)
        cookie = browser.cookie(COOKIE)
        assert cookie and cookie not in json.dumps(detail)
        _, html, _ = await browser.get(f"/portal/approvals/{approval_id}")
        assert "Waiting for Sam Supervisor" in html and "Dana Client (you): Approved" in html

        # the supervisor finishes through the emailed link; the certificate tells them apart
        sam = token_of(approval["approvers"][1]["sign_url"])
        response = await stack.http.get(f"/s/{sam}")
        csrf = CSRF.search(await response.text())
        assert csrf
        response = await stack.http.post(
            f"/s/{sam}/approve",
            data={"csrf": csrf.group(1), "full_name": "Sam Supervisor", "consent": "on"},
        )
        assert response.status == 200

        async def signed_pdf() -> bytes | None:
            response = await stack.http.get(
                f"/api/v1/approvals/{approval_id}/signed.pdf", headers=stack.auth
            )
            return await response.read() if response.status == 200 else None

        data = await wait_until(signed_pdf)
        text = " ".join(
            " ".join((page.extract_text() or "").split())
            for page in PdfReader(io.BytesIO(data)).pages
        )
        assert text.count("via client portal") == 1
        assert f"Web signing link via client portal (client #{client['id']})" in text
        detail = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert (
            decision_event(detail, "approved", sam_id)["data"]["evidence"]["portal_session_id"]
            is None
        )
    finally:
        await browser.close()


async def test_a_client_who_is_an_approver_by_phone_declines_from_the_portal(stack):
    client = await stack.api(
        "POST",
        "/clients",
        201,
        json={"name": "Phil Phone", "email": "phil@client.test", "phone": "+15550100042"},
    )
    approval = await seed_request(
        stack,
        client,
        [
            {"name": "Phil on WhatsApp", "phone": "whatsapp:+15550100042"},
            {"name": "Pat PM", "phone": "+15550100099"},
        ],
        ["sms"],
    )
    approval_id = approval["id"]
    browser = await sign_in(stack, "phil@client.test")
    try:
        location, page = await open_portal_signing_page(browser, approval_id)
        assert ">Decline</button>" in page
        csrf = CSRF.search(page)
        assert csrf
        status, page, _ = await browser.post(f"{location}/decline", {"csrf": csrf.group(1)})
        assert status == 422 and "reason" in page  # bad input changes nothing
        status, _, _ = await browser.post(
            f"{location}/decline", {"csrf": csrf.group(1), "reason": "Too expensive"}
        )
        assert status == 200

        detail = await stack.api("GET", f"/approvals/{approval_id}", 200)
        assert detail["status"] == "declined"
        assert detail["approvers"][0]["decline_reason"] == "Too expensive"
        evidence = decision_event(detail, "declined", approval["approvers"][0]["id"])["data"][
            "evidence"
        ]
        assert evidence["portal_client_id"] == client["id"]
        assert evidence["portal_session_id"] == await portal_session_id(stack, browser)
        async with stack.sessions() as session:
            (link,) = await session.scalars(select(SigningLink))
        assert link.approver_id == approval["approvers"][0]["id"]
        assert link.client_id == client["id"]
    finally:
        await browser.close()


@pytest.mark.parametrize(
    ("approver", "expected"),
    [
        (Approver(email="C1@Example.COM", phone=None), True),
        (Approver(email=" c1@example.com ", phone=None), True),
        (Approver(email="c1@example.co", phone=None), False),
        (Approver(email=None, phone="whatsapp:+15550100042"), True),
        (Approver(email=None, phone="+1 (555) 010-0042"), True),
        (Approver(email=None, phone="+15550100043"), False),
        (Approver(email="", phone=""), False),
    ],
)
def test_who_counts_as_the_client(approver: Approver, expected: bool) -> None:
    client = Client(name="C One", email="c1@example.com", phone="+15550100042")
    assert is_the_client(approver, client) is expected


def test_a_client_without_a_phone_matches_no_phoneless_approver() -> None:
    client = Client(name="C One", email="c1@example.com", phone=None)
    assert not is_the_client(Approver(email="other@example.com", phone=None), client)
