"""The signed-in portal: dashboard and project pages, isolation between clients (every URL of
another client's rows is 404), signing from the portal, contact details, service requests,
bookings, settings, share links and the signing page's "Pay deposit"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import FormData
from sqlalchemy import update

from portico import tokens
from portico.models import Approver
from portico.services.billing.deposits import deposit_url_for_signing_token
from tests.support.helpers import token_of, wait_until
from tests.support.portal_support import Browser, create_invoice, mails_to, seed_client, sign_in


async def seed_account(stack, name: str, email: str) -> dict[str, Any]:
    """A client with a project, a shared file, an approval request, an invoice, a booking."""
    client, project = await seed_client(stack, name, email, f"{name} kitchen")
    document = await stack.api(
        "POST",
        "/documents",
        201,
        json={
            "project_id": project["id"],
            "kind": "proposal",
            "title": f"{name} proposal",
            "number": f"P-{client['id']}",
            "portal_visible": True,
            "line_items": [{"description": "Design", "quantity": 1, "unit_price_cents": 90000}],
        },
    )
    approval = await stack.api(
        "POST",
        "/approvals",
        201,
        json={
            "document_id": document["id"],
            "approvers": [{"name": name, "email": email}],
            "routing": "sequential",
            "expires_in_days": 14,
            "channels": ["email"],
        },
    )
    invoice = await create_invoice(stack, project["id"], number=f"INV-{client['id']}")
    booking = await stack.api(
        "POST",
        "/bookings",
        201,
        json={
            "project_id": project["id"],
            "title": "Site visit",
            "kind": "visit",
            "date": (datetime.now(UTC).date() + timedelta(days=3)).isoformat(),
            "time": "09:30",
        },
    )
    return {
        "client": client,
        "project": project,
        "document": document,
        "approval": approval,
        "invoice": invoice,
        "booking": booking,
    }


async def test_dashboard_shows_the_clients_own_things(stack):
    mine = await seed_account(stack, "Dana", "dana@client.test")
    await stack.api(
        "PATCH",
        "/portal/settings",
        200,
        json={
            "welcome_message": "Welcome to your Acme portal!",
            "vat_number": "GB123456789",
            "registration_number": "0456789",
        },
    )
    browser = await sign_in(stack, "dana@client.test")
    try:
        status, html, _ = await browser.get("/portal")
        assert status == 200
        for text in (
            "Welcome to your Acme portal!",
            "Dana kitchen",
            "INV-",
            "Site visit",
            "09:30",
            "Dana proposal",
            "Waiting for your approval",
            "VAT no. GB123456789",
            "Registration no. 0456789",
            ">Active</a>",
            ">Complete</a>",
        ):
            assert text in html, text
        await stack.api(
            "PATCH", f"/projects/{mine['project']['id']}", 200, json={"status": "complete"}
        )
        _, html, _ = await browser.get("/portal?tab=active")
        assert "No active projects." in html
        _, html, _ = await browser.get("/portal?tab=complete")
        assert "Dana kitchen" in html

        status, html, _ = await browser.get(f"/portal/projects/{mine['project']['id']}")
        assert status == 200 and "Proposals and approvals" in html and "Valid until" in html
        assert f"/portal/approvals/{mine['approval']['id']}/sign" in html

        # sections can be hidden; invoices always show
        await stack.api(
            "PATCH",
            "/portal/settings",
            200,
            json={"show_bookings": False, "show_files": False, "show_payments": False},
        )
        _, html, _ = await browser.get("/portal")
        assert "Site visit" not in html and "Shared files" not in html and "Invoices" in html
        settings = await stack.api("GET", "/portal/settings", 200)
        assert settings["sections"]["invoices"] is True and settings["sections"]["files"] is False
    finally:
        await browser.close()


async def test_client_a_gets_404_for_every_url_of_client_b(stack):
    a = await seed_account(stack, "Alice", "alice@a.test")
    b = await seed_account(stack, "Bob", "bob@b.test")
    browser = await sign_in(stack, "alice@a.test")
    try:

        def urls(acct: dict[str, Any]) -> list[str]:
            return [
                f"/portal/projects/{acct['project']['id']}",
                f"/portal/invoices/{acct['invoice']['id']}",
                f"/portal/invoices/{acct['invoice']['id']}/pdf",
                f"/portal/files/{acct['document']['id']}",
                f"/portal/approvals/{acct['approval']['id']}/sign",
                f"/portal/approvals/{acct['approval']['id']}/signed.pdf",
                f"/portal/bookings/{acct['booking']['id']}",
            ]

        for url in urls(b):
            status, html, _ = await browser.get(url, allow_redirects=False)
            assert status == 404, url
            assert "Bob" not in html, url
        csrf = await browser.csrf("/portal")
        status, _, _ = await browser.post(
            f"/portal/files/{b['document']['id']}/share", {"csrf": csrf}
        )
        assert status == 404
        for url in urls(a)[:5]:
            status, _, _ = await browser.get(url, allow_redirects=False)
            assert status in (200, 303), url
        _, html, _ = await browser.get("/portal")
        assert "Bob" not in html and "INV-" + str(b["client"]["id"]) not in html
        # unsigned visitors are sent to the sign-in page
        anonymous = Browser(stack)
        status, _, response = await anonymous.get(urls(a)[0], allow_redirects=False)
        assert status == 303 and response.headers["Location"] == "/portal"
        await anonymous.close()
    finally:
        await browser.close()


async def test_signing_from_the_portal_keeps_the_emailed_link_working(stack):
    acct = await seed_account(stack, "Dana", "dana@client.test")
    emailed = token_of(acct["approval"]["approvers"][0]["sign_url"])
    browser = await sign_in(stack, "dana@client.test")
    try:
        status, _, response = await browser.get(
            f"/portal/approvals/{acct['approval']['id']}/sign", allow_redirects=False
        )
        assert status == 303
        location = response.headers["Location"]
        assert re.fullmatch(r"/s/[A-Za-z0-9_\-]{32}", location) and emailed not in location
        status, html, _ = await browser.get(location)
        assert status == 200 and "Dana proposal" in html and ">Approve</button>" in html
        status, html, _ = await browser.get(f"/s/{emailed}")
        assert status == 200 and ">Approve</button>" in html
    finally:
        await browser.close()


async def test_pay_deposit_link_after_approving(stack):
    acct = await seed_account(stack, "Dana", "dana@client.test")
    deposit = await create_invoice(
        stack, acct["project"]["id"], number="DEP-1", approval_id=acct["approval"]["id"]
    )
    token = token_of(acct["approval"]["approvers"][0]["sign_url"])
    response = await stack.http.get(f"/s/{token}")
    assert "Pay deposit" not in await response.text()  # not before approving
    form = FormData()
    form.add_field("csrf", tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)))
    form.add_field("full_name", "Dana Client")
    form.add_field("consent", "on")
    response = await stack.http.post(f"/s/{token}/approve", data=form)
    html = await response.text()
    assert "Thank you" in html
    link = re.search(r'<a class="button primary" href="([^"]+)">Pay deposit</a>', html)
    assert link and link.group(1) == deposit["pay_url"]


async def test_an_expired_signing_link_opens_no_deposit(stack):
    """The deposit lookup is the signing page's own lookup of a token: once the link has
    expired it finds nothing, as the page itself does (404)."""
    acct = await seed_account(stack, "Dana", "dana@client.test")
    deposit = await create_invoice(
        stack, acct["project"]["id"], number="DEP-1", approval_id=acct["approval"]["id"]
    )
    token = token_of(acct["approval"]["approvers"][0]["sign_url"])
    form = FormData()
    form.add_field("csrf", tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)))
    form.add_field("full_name", "Dana Client")
    form.add_field("consent", "on")
    response = await stack.http.post(f"/s/{token}/approve", data=form)
    assert "Pay deposit" in await response.text()
    lookup = partial(deposit_url_for_signing_token, stack.settings, stack.sessions)
    assert await lookup(token) == deposit["pay_url"]
    assert await lookup("x" * 40) is None and await lookup("short") is None
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Approver)
            .where(Approver.token_hash == tokens.hash_token(token))
            .values(token_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await lookup(token) is None
    response = await stack.http.get(f"/s/{token}")
    assert response.status == 404 and "Pay deposit" not in await response.text()


async def test_contact_details_and_service_requests_reach_staff(stack):
    acct = await seed_account(stack, "Dana", "dana@client.test")
    browser = await sign_in(stack, "dana@client.test")
    try:
        csrf = await browser.csrf("/portal/contact")
        status, html, _ = await browser.post(
            "/portal/contact",
            {
                "csrf": csrf,
                "name": "Dana Client",
                "company": "Dana Co",
                "phone": "+15550001111",
                "address": "1 Main St, Springfield",
            },
        )
        assert status == 200 and "Saved." in html
        status, html, _ = await browser.post(
            "/portal/contact", {"csrf": csrf, "name": "Dana", "phone": "not a phone"}
        )
        assert status == 422 and 'role="alert"' in html
        notice = await wait_until(
            lambda: _mail(stack, "office@firm.test", "updated their contact details")
        )
        assert "1 Main St, Springfield" in notice.body

        status, html, _ = await browser.get(
            f"/portal/service-request?project={acct['project']['id']}"
        )
        assert 'value="dana@client.test"' in html and "1 Main St, Springfield" in html
        assert 'value="+15550001111"' in html
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        status, html, _ = await browser.post(
            "/portal/service-request",
            {
                "csrf": csrf,
                "description": "The kitchen tap drips.",
                "project_id": str(acct["project"]["id"]),
                "preferred_date": "2031-05-01",
                "name": "Dana Client",
                "email": "dana@client.test",
                "phone": "+15550001111",
                "company": "Dana Co",
                "address": "1 Main St, Springfield",
            },
        )
        assert status == 200 and "Request sent" in html
        listed = await stack.api("GET", "/service-requests", 200)
        item = listed["items"][0]
        assert item["description"] == "The kitchen tap drips."
        assert item["client_id"] == acct["client"]["id"]
        assert item["preferred_date"] == "2031-05-01" and item["address"].startswith("1 Main")
        mail = await wait_until(lambda: _mail(stack, "office@firm.test", "Service request"))
        assert "The kitchen tap drips." in mail.body
        status, _, _ = await browser.post(
            "/portal/service-request", {"csrf": csrf, "description": "", "name": "D"}
        )
        assert status == 422
    finally:
        await browser.close()


async def _mail(stack, to: str, subject_part: str):
    found = [m for m in await mails_to(stack, to) if subject_part in (m.subject or "")]
    return found[-1] if found else None


async def test_bookings_api(stack):
    client, project = await seed_client(stack)
    made = await stack.api(
        "POST",
        "/bookings",
        201,
        json={"client_id": client["id"], "title": "Install", "kind": "job", "date": "2031-02-03"},
    )
    assert made["status"] == "scheduled" and made["time"] is None
    assert made["project_id"] is None
    await stack.api("POST", "/bookings", 422, json={"title": "x", "date": "2031-02-03"})
    await stack.api(
        "POST", "/bookings", 422, json={"client_id": client["id"], "title": "x", "date": "nope"}
    )
    await stack.api(
        "POST",
        "/bookings",
        404,
        json={"project_id": 999999, "title": "x", "date": "2031-02-03"},
    )
    changed = await stack.api(
        "PATCH", f"/bookings/{made['id']}", 200, json={"status": "confirmed", "time": "14:00"}
    )
    assert changed["status"] == "confirmed" and changed["time"] == "14:00"
    listed = await stack.api("GET", f"/bookings?client_id={client['id']}", 200)
    assert [b["id"] for b in listed["items"]] == [made["id"]]


async def test_share_links_open_without_sign_in(stack):
    acct = await seed_account(stack, "Dana", "dana@client.test")
    browser = await sign_in(stack, "dana@client.test")
    anonymous = Browser(stack)
    try:
        csrf = await browser.csrf("/portal")
        status, html, _ = await browser.post(
            f"/portal/files/{acct['document']['id']}/share", {"csrf": csrf}
        )
        assert status == 200
        url = re.search(r'id="share-url" readonly value="([^"]+)"', html).group(1)
        assert url.startswith("http://portico.test/share/")
        status, body, response = await anonymous.get(url.removeprefix("http://portico.test"))
        assert status == 200 and response.content_type == "application/pdf"
        status, _, _ = await anonymous.get("/share/" + "x" * 32)
        assert status == 404
        # an invoice's share link is its pay_url
        status, html, _ = await browser.get(f"/portal/invoices/{acct['invoice']['id']}")
        assert acct["invoice"]["pay_url"] in html
        status, html, _ = await anonymous.get(
            acct["invoice"]["pay_url"].removeprefix("http://portico.test")
        )
        assert status == 200 and ">Pay</button>" in html and "Sign out" not in html
    finally:
        await browser.close()
        await anonymous.close()


async def test_a_form_mistake_is_told_in_the_clients_language(stack):
    """CONTRACT section 10: a French client's portal says what is wrong with a form in French."""
    client, _ = await seed_client(stack, "Luc Roy", "luc@client.test")
    browser = await sign_in(stack, "luc@client.test")
    await stack.api("PATCH", f"/clients/{client['id']}", 200, json={"locale": "fr"})
    try:
        csrf = await browser.csrf("/portal/contact")
        status, html, _ = await browser.post(
            "/portal/contact", {"csrf": csrf, "name": "", "phone": "pas un numéro"}
        )
        assert status == 422
        assert "Nom : ce champ est obligatoire." in html
        assert "Téléphone : la valeur n&#39;est pas valide." in html or (
            "Téléphone : la valeur n'est pas valide." in html
        )
    finally:
        await browser.close()
