"""Security headers on every answer (error pages, redirects and 405s included), HSTS and the
`__Host-` session cookie behind an https public URL, and the same-origin rule for browser form
posts (login CSRF)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from portico.models import Client, MagicLink, PortalSession
from portico.settings import Settings
from tests.conftest import STAFF_KEY
from web.app import create_app
from web.http.portal_keys import AUTH

EVIL = "https://evil.test"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
TOKEN = "x" * 32  # the length of a real token, matching nothing


async def started(settings: Settings) -> TestClient:
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    return http


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[TestClient]:
    """The web app alone (no worker): enough for pages that read SQL."""
    client = await started(settings)
    yield client
    await client.close()


@pytest.fixture
async def https_http(settings: Settings) -> AsyncIterator[TestClient]:
    """The same app deployed behind an https public URL (the test server itself speaks http)."""
    client = await started(settings.model_copy(update={"public_url": "https://portico.test"}))
    yield client
    await client.close()


def assert_security_headers(response: ClientResponse) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp, (response.url, csp)
    assert headers.get("X-Frame-Options") == "SAMEORIGIN", response.url
    assert headers.get("X-Content-Type-Options") == "nosniff", response.url
    assert headers.get("Referrer-Policy") == "no-referrer", response.url
    assert headers.get("Cache-Control") == "no-store", response.url


@pytest.mark.parametrize(
    "path",
    [
        f"/s/{TOKEN}",
        f"/s/{TOKEN}/document.pdf",
        f"/portal/link/{TOKEN}",
        "/portal/no-such-page",
        f"/pay/{TOKEN}",
        f"/share/{TOKEN}",
        "/no/such/page",
    ],
)
async def test_every_404_carries_the_security_headers(http: TestClient, path: str) -> None:
    response = await http.get(path)
    assert response.status == 404
    assert "text/html" in response.content_type
    assert_security_headers(response)
    assert "Strict-Transport-Security" not in response.headers  # the public URL is http


async def test_api_404_and_400_carry_them_too(http: TestClient) -> None:
    auth = {"Authorization": f"Bearer {STAFF_KEY}"}
    missing = await http.get("/api/v1/approvals/999999999", headers=auth)
    assert missing.status == 404
    assert_security_headers(missing)
    bad = await http.post("/api/v1/clients", data="{not json", headers=auth)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "bad_request"
    assert_security_headers(bad)


async def test_a_400_page_carries_the_security_headers(http: TestClient) -> None:
    response = await http.post(f"/portal/link/{TOKEN}", data={"csrf": "0" * 64})
    assert response.status == 400
    assert "This form has expired" in await response.text()
    assert_security_headers(response)


async def test_a_405_says_what_is_allowed(http: TestClient) -> None:
    page = await http.put("/portal")
    assert page.status == 405
    assert "does not accept that method" in await page.text()
    assert {"GET", "HEAD"} <= set(page.headers["Allow"].split(","))
    assert_security_headers(page)
    webhook = await http.get("/webhooks/stripe")
    assert webhook.status == 405
    assert webhook.headers["Allow"] == "POST"
    assert (await webhook.json())["error"]["code"] == "method_not_allowed"
    assert_security_headers(webhook)


async def test_redirects_carry_the_security_headers(http: TestClient) -> None:
    response = await http.get("/portal/projects/1", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/portal"
    assert_security_headers(response)


async def test_static_files_keep_their_own_cache_policy(http: TestClient) -> None:
    response = await http.get("/static/style.css")
    assert response.status == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    brand = await http.get("/brand.css")
    assert brand.headers["Cache-Control"] == "public, max-age=300"


# --- https: HSTS and the __Host- cookie -------------------------------------------------------


async def seed_link(http: TestClient) -> str:
    """A client and a portal invitation for them; returns the magic-link token."""
    app = http.app
    assert app is not None
    async with app[AUTH].sessions() as session, session.begin():
        client = Client(name="Dana Client", email="dana@client.test")
        session.add(client)
        await session.flush()
        client_id = client.id
    return (await app[AUTH].issue_invite(client_id)).token


async def link_csrf(http: TestClient, token: str) -> str:
    response = await http.get(f"/portal/link/{token}")
    assert response.status == 200
    match = CSRF.search(await response.text())
    assert match
    return match.group(1)


def set_cookies(response: ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


async def test_https_public_url_sends_hsts_everywhere(https_http: TestClient) -> None:
    for path in ("/portal", "/no/such/page", f"/s/{TOKEN}", "/healthz"):
        response = await https_http.get(path, allow_redirects=False)
        assert response.headers["Strict-Transport-Security"].startswith("max-age="), path
        assert int(response.headers["Strict-Transport-Security"][8:].split(";")[0]) >= 31536000


async def test_https_session_cookie_is_host_prefixed(https_http: TestClient) -> None:
    token = await seed_link(https_http)
    csrf = await link_csrf(https_http, token)
    response = await https_http.post(
        f"/portal/link/{token}", data={"csrf": csrf}, allow_redirects=False
    )
    assert response.status == 303
    assert_security_headers(response)
    cookies = set_cookies(response)
    assert "portico_portal" not in cookies
    cookie = cookies["__Host-portico_portal"]
    assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
    assert cookie["samesite"] == "Lax" and not cookie["domain"]
    header = {"Cookie": f"__Host-portico_portal={cookie.value}"}
    https_http.session.cookie_jar.clear()
    page = await https_http.get("/portal", headers=header)
    assert page.status == 200 and "Sign out" in await page.text()

    # a session opened before the switch to https, under the plain name, is still read
    plain = await https_http.get("/portal", headers={"Cookie": f"portico_portal={cookie.value}"})
    assert plain.status == 200 and "Sign out" in await plain.text()

    # signing out ends the session and expires the cookie (Secure, or browsers ignore it)
    csrf = CSRF.search(await page.text())
    assert csrf
    out = await https_http.post(
        "/portal/sign-out", data={"csrf": csrf.group(1)}, headers=header, allow_redirects=False
    )
    assert out.status == 303
    gone = set_cookies(out)["__Host-portico_portal"]
    assert gone.value == "" and gone["secure"] and gone["path"] == "/"
    again = await https_http.get("/portal", headers=header)
    assert "Sign out" not in await again.text()


# --- the same-origin rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": EVIL},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.portico.test"},
        {"Origin": EVIL},  # a browser without Sec-Fetch-*
        {"Origin": "null"},  # a sandboxed frame or a privacy-redirected form
    ],
)
async def test_cross_site_sign_in_post_is_refused(
    http: TestClient, headers: dict[str, str]
) -> None:
    """An attacker's page posting their own magic link would sign the victim in as them."""
    token = await seed_link(http)
    csrf = await link_csrf(http, token)
    response = await http.post(
        f"/portal/link/{token}", data={"csrf": csrf}, headers=headers, allow_redirects=False
    )
    assert response.status == 403
    assert "sent from another website" in await response.text()
    assert_security_headers(response)
    assert "portico_portal" not in set_cookies(response)
    app = http.app
    assert app is not None
    async with app[AUTH].sessions() as session:
        assert (await session.scalar(select(MagicLink))).used_at is None  # still usable
        assert await session.scalar(select(PortalSession)) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://portico.test"},
        {"Origin": "http://portico.test"},  # PORTICO_PUBLIC_URL, as the browser names it
        {"Sec-Fetch-Site": "none"},  # the user's own navigation
        {},  # scripts and old browsers send neither: the CSRF token still guards the form
    ],
)
async def test_same_origin_sign_in_post_passes(http: TestClient, headers: dict[str, str]) -> None:
    token = await seed_link(http)
    csrf = await link_csrf(http, token)
    response = await http.post(
        f"/portal/link/{token}", data={"csrf": csrf}, headers=headers, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/portal"
    assert set_cookies(response)["portico_portal"].value


async def test_the_request_host_counts_as_this_site(http: TestClient) -> None:
    """Reached at its own address (a dev box, a proxy keeping Host): Origin matches Host."""
    token = await seed_link(http)
    csrf = await link_csrf(http, token)
    own = str(http.make_url("")).rstrip("/")
    response = await http.post(
        f"/portal/link/{token}", data={"csrf": csrf}, headers={"Origin": own}, allow_redirects=False
    )
    assert response.status == 303


async def test_the_api_and_webhooks_are_not_browser_forms(http: TestClient) -> None:
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}
    created = await http.post(
        "/api/v1/clients",
        json={"name": "Api Client", "email": "api@client.test"},
        headers={**cross, "Authorization": f"Bearer {STAFF_KEY}"},
    )
    assert created.status == 201
    stripe = await http.post("/webhooks/stripe", data=b"{}", headers=cross)
    assert (await stripe.json())["error"]["code"] == "not_configured"  # its own check answered
    twilio = await http.post("/webhooks/twilio/sms", data={"Body": "YES 1"}, headers=cross)
    assert twilio.status == 403
    assert "another website" not in await twilio.text()  # refused by the signature check
