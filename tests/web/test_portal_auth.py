"""Portal sign-in by magic link: same answer for every address, single use, expiry, GET never
consumes, rate limits per address and per IP (in the database), sessions and their timeouts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from portico import tokens
from portico.models import MagicLink, PortalSession, PortalSignInRequest
from portico.services.portal_auth import EMAIL_LIMIT, IP_LIMIT
from tests.support.helpers import wait_until
from tests.support.portal_support import (
    Browser,
    background_mail_sent,
    magic_links,
    mails_to,
    next_magic_link,
    request_link,
    seed_client,
    sign_in,
    use_link,
)

SAME_ANSWER = "If that address has an account, we&#39;ve sent a sign-in link"


async def test_sign_in_page_has_the_email_box(stack):
    browser = Browser(stack)
    try:
        status, html, response = await browser.get("/portal")
        assert status == 200
        assert re.search(r'<label for="email">Email</label>', html)
        assert '<input id="email" name="email" type="email"' in html
        assert "Content-Security-Policy" in response.headers
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        await browser.close()


async def test_known_and_unknown_addresses_get_the_same_answer(stack):
    await seed_client(stack)
    browser = Browser(stack)
    try:
        known = await request_link(browser, "Dana@Client.test ")
        unknown = await request_link(browser, "nobody@client.test")
        assert known[0] == unknown[0] == 200
        assert SAME_ANSWER in known[1] and SAME_ANSWER in unknown[1]
        strip = lambda html: re.sub(r'value="[0-9a-f]{64}"', "", html)  # noqa: E731
        assert strip(known[1]) == strip(unknown[1])
        token = await next_magic_link(stack, "dana@client.test")
        assert len(token) >= 32
        await background_mail_sent(stack)
        assert await mails_to(stack, "nobody@client.test") == []
        async with stack.sessions() as session:
            link = await session.scalar(select(MagicLink))
        assert link.token_hash == tokens.hash_token(token)  # only the hash is stored
        assert token not in str(link.__dict__)
        assert timedelta(minutes=14) < link.expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    finally:
        await browser.close()


async def test_get_never_consumes_and_the_link_works_once(stack):
    await seed_client(stack)
    browser = Browser(stack)
    other = Browser(stack)
    try:
        await request_link(browser, "dana@client.test")
        token = await next_magic_link(stack, "dana@client.test")
        for _ in range(3):  # mail scanners prefetching the link
            status, html, _ = await browser.get(f"/portal/link/{token}")
            assert status == 200 and ">Sign in</button>" in html
        status, html = await use_link(browser, token)
        assert status == 200 and "Sign out" in html and "Hello, Dana Client" in html
        cookie = [c for c in browser.session.cookie_jar if c.key == "portico_portal"][0]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert not cookie["secure"]  # PORTICO_PUBLIC_URL is http in tests
        status, html = await use_link(other, token)
        assert status == 404 and "already been used" in html
        # a forged CSRF token does not sign in either
        status, _, _ = await other.post(f"/portal/link/{token}", {"csrf": "0" * 64})
        assert status == 400
    finally:
        await browser.close()
        await other.close()


async def test_an_expired_link_is_refused(stack):
    await seed_client(stack)
    browser = Browser(stack)
    try:
        await request_link(browser, "dana@client.test")
        token = await next_magic_link(stack, "dana@client.test")
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(MagicLink).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        status, html, _ = await browser.get(f"/portal/link/{token}")
        assert status == 404 and "expired" in html
        csrf = tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token))
        status, html, _ = await browser.post(f"/portal/link/{token}", {"csrf": csrf})
        assert status == 404
        assert browser.cookie("portico_portal") is None
    finally:
        await browser.close()


async def test_rate_limit_per_address(stack):
    await seed_client(stack)
    browser = Browser(stack)
    try:
        for _ in range(EMAIL_LIMIT):
            assert (await request_link(browser, "dana@client.test"))[0] == 200
        status, html = await request_link(browser, "DANA@client.test")
        assert status == 429 and "Too many" in html
        # unknown addresses are limited the same way: the limit reveals nothing
        for _ in range(EMAIL_LIMIT):
            assert (await request_link(browser, "ghost@client.test"))[0] == 200
        assert (await request_link(browser, "ghost@client.test"))[0] == 429
        async with stack.sessions() as session:
            rows = list(await session.scalars(select(PortalSignInRequest)))
        assert all("@" not in r.email_hash for r in rows)  # addresses kept only hashed
        await background_mail_sent(stack)  # every link is mailed in the background
        assert len(await magic_links(stack, "dana@client.test")) == EMAIL_LIMIT
    finally:
        await browser.close()


async def test_rate_limit_per_ip_across_addresses(stack):
    browser = Browser(stack)
    try:
        for n in range(IP_LIMIT):
            assert (await request_link(browser, f"person{n}@client.test"))[0] == 200
        status, html = await request_link(browser, "one-more@client.test")
        assert status == 429
        # the count lives in the database: a second web replica sees it too
        async with stack.sessions() as session:
            rows = list(await session.scalars(select(PortalSignInRequest)))
        assert len(rows) == IP_LIMIT + 1 and {r.ip for r in rows} == {"127.0.0.1"}
    finally:
        await browser.close()


async def test_sign_in_form_needs_its_csrf_token(stack):
    browser = Browser(stack)
    try:
        status, _, _ = await browser.post(
            "/portal/sign-in", {"csrf": "f" * 64, "email": "dana@client.test"}
        )
        assert status == 400
    finally:
        await browser.close()


async def test_session_idle_and_absolute_timeouts_and_sign_out(stack):
    await seed_client(stack)
    browser = await sign_in(stack, "dana@client.test")
    try:
        session_id = browser.cookie("portico_portal")
        assert session_id
        async with stack.sessions() as session:
            row = await session.scalar(select(PortalSession))
        assert row.session_hash == tokens.hash_token(session_id)
        assert row.expires_at - row.created_at == timedelta(hours=12)

        # idle for 31 minutes: signed out
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(PortalSession).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=31))
            )
        status, html, _ = await browser.get("/portal")
        assert status == 200 and 'for="email">Email<' in html and "session has ended" in html

        browser2 = await sign_in(stack, "dana@client.test")
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(PortalSession)
                .where(
                    PortalSession.session_hash
                    == tokens.hash_token(browser2.cookie("portico_portal"))
                )
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        status, html, _ = await browser2.get("/portal/contact", allow_redirects=True)
        assert 'for="email">Email<' in html
        await browser2.close()

        browser3 = await sign_in(stack, "dana@client.test")
        csrf = await browser3.csrf("/portal")
        status, html, _ = await browser3.post("/portal/sign-out", {"csrf": csrf})
        assert status == 200 and "You are signed out" in html
        status, html, _ = await browser3.get("/portal/contact")
        assert 'for="email">Email<' in html
        async with stack.sessions() as session:
            ended = await session.scalar(
                select(PortalSession.ended_at).where(
                    PortalSession.session_hash == tokens.hash_token(session_id)
                )
            )
        assert ended is None  # the first session timed out; it was not signed out
        await browser3.close()
    finally:
        await browser.close()


async def test_staff_invite_sends_a_longer_single_use_link(stack):
    client, _ = await seed_client(stack)
    answer = await stack.api("POST", f"/clients/{client['id']}/invite", 202)
    assert answer["sent"] is True
    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) > timedelta(days=6, hours=23)
    mail = (await wait_until(lambda: mails_to(stack, "dana@client.test")))[-1]
    assert "invited you" in mail.body
    token = (await magic_links(stack, "dana@client.test"))[-1]
    browser, other = Browser(stack), Browser(stack)
    try:
        assert (await use_link(browser, token))[0] == 200
        assert (await use_link(other, token))[0] == 404
    finally:
        await browser.close()
        await other.close()
    await stack.api("POST", "/clients/999999/invite", 404)


async def test_portal_turned_off_refuses_sign_in_but_keeps_data(stack):
    client, project = await seed_client(stack)
    browser = await sign_in(stack, "dana@client.test")
    try:
        await stack.api("PATCH", "/portal/settings", 200, json={"enabled": False})
        status, html, _ = await browser.get("/portal")
        assert "not available" in html and "Hello," not in html
        other = Browser(stack)
        status, html, _ = await other.get("/portal")
        assert "not available" in html and 'for="email"' not in html
        await other.close()
        await stack.api("POST", f"/clients/{client['id']}/invite", 409)
        settings = await stack.api("PATCH", "/portal/settings", 200, json={"enabled": True})
        assert settings["enabled"] is True
        again = await sign_in(stack, "dana@client.test")  # turning it off signed everyone out
        status, html, _ = await again.get("/portal")
        assert "Hello, Dana Client" in html and project["name"] in html  # the data was kept
        await again.close()
    finally:
        await browser.close()


async def test_a_used_sign_in_link_is_explained_in_the_browsers_language(stack):
    """CONTRACT section 10: nobody is signed in yet, so the answer follows Accept-Language."""
    response = await stack.http.get(
        "/portal/link/" + "x" * 43, headers={"Accept-Language": "fr-CA,fr;q=0.9"}
    )
    assert response.status == 404
    assert "Ce lien de connexion a expiré ou a déjà été utilisé" in await response.text()
