"""Console sign-in (CONTRACT section 9): same answer for every address, single-use links that
expire and that a GET never uses up, server-side sessions (sign out, removal, 12 h idle), the
cookie's attributes, CSRF on the forms, and roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from portico import tokens
from portico.models import StaffSession, StaffSignInLink
from portico.services.staff import StaffMemberIn
from tests.support.console_support import (
    ADMIN,
    STAFF,
    add_member,
    next_staff_link,
    post_form,
    request_staff_link,
    staff_auth,
    staff_sign_in,
    use_staff_link,
)
from tests.support.portal_support import Browser, background_mail_sent, mails_to
from web.app import create_app
from web.console.keys import STAFF_AUTH as KEY

SAME_ANSWER = "If that address belongs to a staff member, we&#39;ve sent a sign-in link."


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_sign_in_page_has_the_email_box_and_button(stack):
    browser = Browser(stack)
    try:
        status, html, _ = await browser.get("/staff")
        assert status == 200
        assert '<label for="email">Email</label>' in html
        assert '<input id="email" name="email" type="email"' in html
        assert ">Email me a sign-in link</button>" in html
        assert "Sign out" not in html
    finally:
        await browser.close()


async def test_members_and_strangers_get_the_same_answer_and_only_members_mail(stack):
    await add_member(stack, ADMIN)
    browser = Browser(stack)
    try:
        known = await request_staff_link(browser, "Office@Firm.test ")
        unknown = await request_staff_link(browser, "nobody@firm.test")
        assert known[0] == unknown[0] == 200
        assert SAME_ANSWER in known[1] and SAME_ANSWER in unknown[1]
        token = await next_staff_link(stack, ADMIN)
        await background_mail_sent(stack)
        assert await mails_to(stack, "nobody@firm.test") == []
        async with stack.sessions() as session:
            link = await session.scalar(select(StaffSignInLink))
        assert link.token_hash == tokens.hash_token(token)  # only the hash is stored
        assert timedelta(minutes=14) < link.expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    finally:
        await browser.close()


async def test_get_never_consumes_and_the_link_works_once(stack):
    await add_member(stack, ADMIN)
    browser, other = Browser(stack), Browser(stack)
    try:
        await request_staff_link(browser, ADMIN)
        token = await next_staff_link(stack, ADMIN)
        for _ in range(3):  # mail scanners prefetching the link
            status, html, _ = await browser.get(f"/staff/link/{token}")
            assert status == 200 and ">Sign in</button>" in html
        status, html = await use_staff_link(browser, token)
        assert status == 200 and "Sign out" in html and "<h1>Approvals</h1>" in html
        cookie = [c for c in browser.session.cookie_jar if c.key == "portico_staff"][0]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert not cookie["secure"]  # PORTICO_PUBLIC_URL is http in tests
        status, html = await use_staff_link(other, token)
        assert status == 404 and "already been used" in html
        status, html, _ = await other.get("/staff")
        assert "Sign out" not in html
    finally:
        await browser.close()
        await other.close()


async def test_an_expired_link_opens_nothing(stack):
    await add_member(stack, ADMIN)
    clock = Clock()
    staff_auth(stack).clock = clock
    link = await staff_auth(stack).issue_link(ADMIN)
    clock.now += timedelta(minutes=15, seconds=1)
    browser = Browser(stack)
    try:
        status, html = await use_staff_link(browser, link.token)
        assert status == 404 and "expired" in html
        clock.now -= timedelta(seconds=2)  # a moment before the end it still worked
        status, html = await use_staff_link(browser, link.token)
        assert status == 200 and "Sign out" in html
    finally:
        await browser.close()


async def test_the_link_form_needs_its_csrf_token(stack):
    await add_member(stack, ADMIN)
    link = await staff_auth(stack).issue_link(ADMIN)
    browser = Browser(stack)
    try:
        status, _, _ = await browser.post(f"/staff/link/{link.token}", {"csrf": "0" * 64})
        assert status == 400
        assert await staff_auth(stack).peek(link.token) is not None  # not used up
        status, _, _ = await browser.post("/staff/sign-in", {"csrf": "x", "email": ADMIN})
        assert status == 400
    finally:
        await browser.close()


async def test_sign_out_ends_the_session_on_the_server(stack):
    browser = await staff_sign_in(stack)
    try:
        stolen = browser.cookie("portico_staff")
        status, html = await post_form(browser, "/staff", "/staff/sign-out", {})
        assert status == 200 and "You are signed out" in html
        thief = Browser(stack)
        thief.session.cookie_jar.update_cookies({"portico_staff": stolen})
        status, html, _ = await thief.get("/staff")
        assert "Email me a sign-in link" in html and "Sign out" not in html
        await thief.close()
        async with stack.sessions() as session:
            row = await session.scalar(select(StaffSession))
        assert row.ended_at is not None
        assert row.session_hash == tokens.hash_token(stolen)
    finally:
        await browser.close()


async def test_sign_out_without_its_csrf_token_changes_nothing(stack):
    browser = await staff_sign_in(stack)
    try:
        status, _, _ = await browser.post("/staff/sign-out", {"csrf": "nope"})
        assert status == 400
        status, html, _ = await browser.get("/staff")
        assert "Sign out" in html
    finally:
        await browser.close()


async def test_idle_sessions_end_after_12_hours(stack):
    clock = Clock()
    staff_auth(stack).clock = clock
    browser = await staff_sign_in(stack)
    try:
        clock.now += timedelta(hours=11, minutes=59)
        status, html, _ = await browser.get("/staff")
        assert "Sign out" in html  # and this visit counts as activity
        clock.now += timedelta(hours=11, minutes=59)
        status, html, _ = await browser.get("/staff")
        assert "Sign out" in html
        clock.now += timedelta(hours=12)
        status, html, _ = await browser.get("/staff/clients")
        assert status == 200 and "Your session has ended" in html and "Sign out" not in html
    finally:
        await browser.close()


async def test_removing_a_member_ends_their_sessions(stack):
    clerk = await staff_sign_in(stack, STAFF, role="staff")
    try:
        await staff_auth(stack).remove(STAFF)
        status, html, _ = await clerk.get("/staff")
        assert "Sign out" not in html
        assert await staff_auth(stack).issue_link(STAFF) is None  # and no new link for them
    finally:
        await clerk.close()


async def test_staff_get_403_on_settings_and_members(stack):
    clerk = await staff_sign_in(stack, STAFF, role="staff")
    admin = await staff_sign_in(stack, ADMIN, role="admin")
    try:
        for path in ("/staff/settings", "/staff/members"):
            status, html, _ = await clerk.get(path)
            assert status == 403, path
            assert "Only administrators" in html
            status, _, _ = await admin.get(path)
            assert status == 200, path
        token = await admin.csrf("/staff/members")  # a valid token is no key to admin pages
        status, _, _ = await clerk.post(
            "/staff/members", {"csrf": token, "email": "x@firm.test", "name": "X", "role": "admin"}
        )
        assert status == 403
        assert "x@firm.test" not in {m.email for m in await staff_auth(stack).members()}
        status, html, _ = await clerk.get("/staff")
        assert ">Settings</a>" not in html and ">Staff members</a>" not in html
    finally:
        await clerk.close()
        await admin.close()


async def test_every_console_page_needs_a_session(stack):
    browser = Browser(stack)
    try:
        for path in (
            "/staff/approvals/new",
            "/staff/approvals/1",
            "/staff/clients",
            "/staff/clients/1",
            "/staff/invoices/1",
            "/staff/settings",
            "/staff/members",
            "/staff/events?ids=1",
        ):
            status, _, response = await browser.get(path, allow_redirects=False)
            assert status == 303 and response.headers["Location"] == "/staff", path
        status, _, _ = await browser.post("/staff/clients", {"name": "X"}, allow_redirects=False)
        assert status == 303
    finally:
        await browser.close()


async def test_the_staff_api_key_keeps_working(stack):
    body = await stack.api("GET", "/approvals", 200)
    assert body == {"items": []}


async def test_a_cross_site_sign_in_post_is_refused(stack):
    await add_member(stack, ADMIN)
    link = await staff_auth(stack).issue_link(ADMIN)
    browser = Browser(stack)
    try:
        status, html, _ = await browser.get(f"/staff/link/{link.token}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        status, _, _ = await browser.post(
            f"/staff/link/{link.token}", {"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert status == 403
        assert await staff_auth(stack).peek(link.token) is not None
    finally:
        await browser.close()


async def test_behind_https_the_cookie_is_host_prefixed_and_secure(settings):
    http = TestClient(
        TestServer(create_app(settings.model_copy(update={"public_url": "https://portico.test"})))
    )
    await http.start_server()
    try:
        await http.app[KEY].add(StaffMemberIn(email=ADMIN, name="Office", role="admin"))
        link = await http.app[KEY].issue_link(ADMIN)
        page = await http.get(f"/staff/link/{link.token}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await page.text()).group(1)
        response = await http.post(
            f"/staff/link/{link.token}", data={"csrf": csrf}, allow_redirects=False
        )
        assert response.status == 303
        jar: SimpleCookie = SimpleCookie()
        for header in response.headers.getall("Set-Cookie", []):
            jar.load(header)
        assert "portico_staff" not in jar
        cookie = jar["__Host-portico_staff"]
        assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
        assert cookie["samesite"] == "Lax" and not cookie["domain"]
        http.session.cookie_jar.clear()
        board = await http.get("/staff", headers={"Cookie": f"__Host-portico_staff={cookie.value}"})
        assert "Sign out" in await board.text()
    finally:
        await http.close()
