"""The console's clients, projects, portal invitations, invoices and manual payments, portal
settings and staff members: each form validated by the API's schemas, CSRF-checked, and
answering bad input with a 4xx that changes nothing."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from portico.models import Client, Payment, Project
from tests.support.console_support import ADMIN, post_form, staff_auth, staff_sign_in
from tests.support.portal_support import (
    background_mail_sent,
    create_invoice,
    magic_links,
    seed_client,
)


async def count(stack, model) -> int:
    async with stack.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_add_a_client_with_a_language_then_a_project(stack):
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get("/staff/clients")
        for label in ("Name", "Email", "Phone", "Company", "Language", "Time zone"):
            assert f">{label}</label>" in html, label
        assert ">Add client</button>" in html
        status, html = await post_form(
            browser,
            "/staff/clients",
            "/staff/clients",
            {
                "name": "Marie Curie",
                "email": "marie@labo.test",
                "phone": "+33612345678",
                "company": "Labo",
                "locale": "fr",
                "timezone": "Europe/Paris",
            },
        )
        assert status == 200 and "<h1>Marie Curie</h1>" in html and "Français" in html
        assert "Europe/Paris" in html
        async with stack.sessions() as session:
            client = await session.scalar(select(Client).where(Client.email == "marie@labo.test"))
        assert client.locale == "fr" and client.timezone == "Europe/Paris"
        assert client.company == "Labo"

        page = f"/staff/clients/{client.id}"
        assert '<label for="project-name">Project name</label>' in html
        status, html = await post_form(browser, page, f"{page}/projects", {"name": "Bathroom"})
        assert status == 200 and "Bathroom" in html
        status, html = await post_form(browser, page, f"{page}/projects", {"name": ""})
        assert status == 422 and 'id="err-name"' in html
        assert await count(stack, Project) == 1
    finally:
        await browser.close()


async def test_bad_client_input_is_shown_beside_the_field_and_saves_nothing(stack):
    browser = await staff_sign_in(stack)
    try:
        status, html = await post_form(
            browser,
            "/staff/clients",
            "/staff/clients",
            {
                "name": "Zed",
                "email": "not-an-email",
                "phone": "12",
                "locale": "de",
                "timezone": "Mars/Olympus",
            },
        )
        assert status == 422
        for field in ("email", "phone", "locale", "timezone"):
            assert f'id="err-{field}"' in html and f'aria-describedby="err-{field}"' in html
        assert 'value="Zed"' in html
        assert await count(stack, Client) == 0
        status, _, _ = await browser.post("/staff/clients", {"csrf": "bad", "name": "Zed"})
        assert status == 400 and await count(stack, Client) == 0
    finally:
        await browser.close()


async def test_client_page_lists_approvals_invoices_and_invites_to_the_portal(stack):
    client, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])
    browser = await staff_sign_in(stack)
    page = f"/staff/clients/{client['id']}"
    try:
        status, html, _ = await browser.get(page)
        assert status == 200 and "Kitchen" in html and invoice["number"] in html
        assert ">Invite to portal</button>" in html
        status, html = await post_form(browser, page, f"{page}/invite", {})
        assert status == 200 and "A portal invitation was emailed" in html
        await background_mail_sent(stack)  # the outbox delivers it
        assert len(await magic_links(stack, client["email"])) == 1
        status, _, _ = await browser.get("/staff/clients/999999")
        assert status == 404
    finally:
        await browser.close()


async def test_record_a_manual_payment(stack):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"])  # $1,200.00
    browser = await staff_sign_in(stack)
    page = f"/staff/invoices/{invoice['id']}"
    try:
        status, html, _ = await browser.get(page)
        assert status == 200 and "Open" in html
        for label in ("Amount", "Method", "Reference"):
            assert f">{label}</label>" in html
        for option in (">Check</option>", ">Cash</option>", ">Bank transfer</option>"):
            assert option in html
        status, html = await post_form(
            browser, page, f"{page}/payments", {"amount": "abc", "method": "check"}
        )
        assert status == 422 and 'id="err-amount"' in html
        status, html = await post_form(
            browser, page, f"{page}/payments", {"amount": "5000.00", "method": "check"}
        )
        assert status == 409 and "more than the balance" in html
        status, html = await post_form(
            browser, page, f"{page}/payments", {"amount": "200", "method": "wire"}
        )
        assert status == 422 and 'id="err-method"' in html
        assert await count(stack, Payment) == 0
        status, html = await post_form(
            browser,
            page,
            f"{page}/payments",
            {"amount": "1,000.00", "method": "bank_transfer", "reference": "Wire 88"},
        )
        assert status == 200 and "The payment was recorded." in html and "Wire 88" in html
        body = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert body["paid_cents"] == 100000 and body["status"] == "partially_paid"
        assert body["payments"][0]["method"] == "bank_transfer"
        # The same form sent twice (a double click, a retry) books the payment once.
        key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
        assert key
        fields = {"amount": "50.00", "method": "cash", "idempotency_key": key.group(1)}
        for _ in range(2):
            status, html = await post_form(browser, page, f"{page}/payments", fields)
            assert status == 200 and "The payment was recorded." in html
        body = await stack.api("GET", f"/invoices/{invoice['id']}", 200)
        assert body["paid_cents"] == 105000 and len(body["payments"]) == 2
    finally:
        await browser.close()


async def test_admins_save_portal_settings(stack):
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get("/staff/settings")
        assert '<label for="enabled">Portal enabled</label>' in html
        assert '<label for="welcome_message">Welcome message</label>' in html
        for section in ("Projects", "Approvals", "Bookings", "Files", "Payments"):
            assert f">{section}</label>" in html
        assert ">Save settings</button>" in html
        status, html = await post_form(
            browser,
            "/staff/settings",
            "/staff/settings",
            {"enabled": "1", "welcome_message": "Hello!", "show_projects": "1"},
        )
        assert status == 200 and "Settings saved." in html
        body = await stack.api("GET", "/portal/settings", 200)
        assert body["enabled"] is True and body["welcome_message"] == "Hello!"
        assert body["sections"]["projects"] is True and body["sections"]["bookings"] is False
        status, html = await post_form(browser, "/staff/settings", "/staff/settings", {})
        body = await stack.api("GET", "/portal/settings", 200)
        assert body["enabled"] is False and body["welcome_message"] is None
        status, html = await post_form(
            browser, "/staff/settings", "/staff/settings", {"welcome_message": "x" * 6000}
        )
        assert status == 422
        assert (await stack.api("GET", "/portal/settings", 200))["welcome_message"] is None
    finally:
        await browser.close()


async def test_admins_add_and_remove_staff_members(stack):
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get("/staff/members")
        for label in ("Email", "Name", "Role"):
            assert f">{label}</label>" in html
        assert ">Add staff member</button>" in html
        status, html = await post_form(
            browser,
            "/staff/members",
            "/staff/members",
            {"email": "New@Firm.test", "name": "Nia", "role": "staff"},
        )
        assert status == 200 and "new@firm.test" in html
        status, html = await post_form(
            browser,
            "/staff/members",
            "/staff/members",
            {"email": "NEW@firm.test", "name": "Twin", "role": "staff"},
        )
        assert status == 409 and "already a staff member" in html
        status, html = await post_form(
            browser, "/staff/members", "/staff/members", {"email": "x", "name": "", "role": "boss"}
        )
        assert status == 422
        assert 'id="err-email"' in html and 'id="err-name"' in html and 'id="err-role"' in html
        status, html = await post_form(
            browser, "/staff/members", "/staff/members/remove", {"email": ADMIN}
        )
        assert status == 409 and "cannot remove yourself" in html
        status, html = await post_form(
            browser, "/staff/members", "/staff/members/remove", {"email": "new@firm.test"}
        )
        assert status == 200
        emails = {m.email for m in await staff_auth(stack).members()}
        assert emails == {ADMIN}
    finally:
        await browser.close()
