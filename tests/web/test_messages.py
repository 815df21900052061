"""Messages (CONTRACT section 14) over HTTP, as a browser with JavaScript off sends them: the
portal thread (escaping, links, limits, CSRF, a double submit), isolation between clients on the
page and in the API, the staff API both ways, the console's thread and reply form, the portal
switch, and the staff notice and client email each going out once."""

from __future__ import annotations

import html as html_lib
import re

from sqlalchemy import func, select

from portico.models import ClientMessage, OutboxMessage
from tests.support.console_support import staff_sign_in
from tests.support.helpers import wait_until
from tests.support.portal_support import (
    Browser,
    background_mail_sent,
    mails_to,
    seed_client,
    use_link,
)
from web.http.portal_keys import AUTH

KEY = re.compile(r'name="key" value="([0-9a-f]{32})"')
STAFF = "office@firm.test"  # PORTICO_STAFF_EMAILS of the test settings


async def portal_browser(stack, email: str) -> Browser:
    """A browser signed in to the portal as `email` (its link minted directly: no mail)."""
    browser = Browser(stack)
    link = (await stack.http.app[AUTH].issue_sign_in_links(email, None))[0]
    status, html = await use_link(browser, link.token)
    assert status == 200 and "Sign out" in html
    return browser


async def form_fields(browser: Browser, path: str) -> dict[str, str]:
    """The hidden fields of the message form on `path` (CSRF token and submission key)."""
    status, html, _ = await browser.get(path)
    assert status == 200, html[:500]
    key = KEY.search(html)
    assert key, "no submission key on " + path
    return {"csrf": await browser.csrf(path), "key": key.group(1)}


async def send(browser: Browser, body: str, fields: dict[str, str] | None = None):
    fields = fields or await form_fields(browser, "/portal/messages")
    return await browser.post("/portal/messages", {**fields, "body": body}, allow_redirects=False)


async def thread_bodies(stack, client_id: int) -> list[tuple[str, str]]:
    items = (await stack.api("GET", f"/clients/{client_id}/messages", 200))["items"]
    return [(m["direction"], m["body"]) for m in items]


async def count_messages(stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ClientMessage)) or 0)


async def mail(stack, to: str, subject_part: str):
    found = [m for m in await mails_to(stack, to) if subject_part in (m.subject or "")]
    return found or None


async def test_the_client_writes_and_reads_the_thread_with_javascript_off(stack):
    client, _ = await seed_client(stack)
    browser = await portal_browser(stack, "dana@client.test")
    try:
        status, html, _ = await browser.get("/portal")
        assert '<a href="/portal/messages">Messages</a>' in html  # the portal's nav
        status, html, _ = await browser.get("/portal/messages")
        assert status == 200 and "No messages yet." in html
        assert '<label for="body">Message</label>' in html and 'id="body" name="body"' in html
        assert '<button type="submit" class="primary">Send</button>' in html

        status, _, response = await send(browser, "Can you come on Tuesday\r\ninstead?")
        assert status == 303
        assert response.headers["Location"] == "/portal/messages?sent=1#latest"
        await stack.api(
            "POST", f"/clients/{client['id']}/messages", 201, json={"body": "Tuesday works."}
        )
        status, html, _ = await browser.get("/portal/messages?sent=1")
        assert "has been told" in html
        first = html.index("Can you come on Tuesday\ninstead?")
        second = html.index("Tuesday works.")
        assert first < second  # newest at the bottom
        assert html.count('id="latest"') == 1 and html.index('id="latest"') < second
        assert "You ·" in html and "Acme Builders ·" in html
        assert await thread_bodies(stack, client["id"]) == [
            ("in", "Can you come on Tuesday\ninstead?"),
            ("out", "Tuesday works."),
        ]
    finally:
        await browser.close()


async def test_bodies_are_escaped_and_only_http_addresses_become_safe_links(stack):
    await seed_client(stack)
    browser = await portal_browser(stack, "dana@client.test")
    hostile = (
        '<script>alert(1)</script> <b>bold</b> <a href="javascript:alert(2)">x</a> '
        "javascript:alert(3) see https://example.test/plan?a=1&b=<2>. "
        '"onmouseover=alert(4)" http://x.test/"onclick=alert(5)'
    )
    try:
        status, _, _ = await send(browser, hostile)
        assert status == 303
        _, html, _ = await browser.get("/portal/messages")
        assert "<script>alert(1)" not in html and "<b>bold</b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert 'href="javascript:' not in html
        assert (
            '<a href="https://example.test/plan?a=1&amp;b=" rel="noopener nofollow noreferrer" '
            'target="_blank">https://example.test/plan?a=1&amp;b=</a>&lt;2&gt;.'
        ) in html
        assert '<a href="http://x.test/" rel="noopener nofollow noreferrer"' in html
        assert "onclick=alert(5)" in html and ' onclick="' not in html
        # The whole text is there, as typed, once unescaped.
        text = re.search(r'<p class="text">(.*?)</p>', html, re.S)
        assert text and html_lib.unescape(re.sub(r"<[^>]+>", "", text.group(1))) == hostile
    finally:
        await browser.close()


async def test_empty_too_long_or_forged_messages_are_refused_and_change_nothing(stack):
    client, _ = await seed_client(stack)
    browser = await portal_browser(stack, "dana@client.test")
    try:
        for body in ("", "   \r\n  "):
            status, html, _ = await send(browser, body)
            assert status == 422 and "Please write a message" in html
            assert 'role="alert"' in html and 'aria-invalid="true"' in html
        status, html, _ = await send(browser, "x" * 4001)
        assert status == 422 and "at most 4,000 characters; this one has 4,001" in html
        assert "x" * 4001 in html  # the text is kept for shortening
        # CRLF counts once, as the browser's maxlength counts it
        status, _, _ = await send(browser, ("y" * 99 + "\r\n") * 40)
        assert status == 303
        fields = await form_fields(browser, "/portal/messages")
        status, _, _ = await send(browser, "no CSRF", {**fields, "csrf": "0" * 64})
        assert status == 400
        assert len(await thread_bodies(stack, client["id"])) == 1

        # A double click sends the same form twice: one message, one staff notice.
        status, _, _ = await send(browser, "Sent twice", fields)
        status_again, _, _ = await send(browser, "Sent twice", fields)
        assert status == status_again == 303
        assert [b for _, b in await thread_bodies(stack, client["id"])].count("Sent twice") == 1
        await background_mail_sent(stack)
        notices = await mail(stack, STAFF, "Message from Dana Client")
        assert notices and len(notices) == 2  # the long message and "Sent twice"
    finally:
        await browser.close()


async def test_a_client_never_sees_another_clients_thread(stack):
    dana, _ = await seed_client(stack, "Dana", "dana@client.test")
    eve, _ = await seed_client(stack, "Eve", "eve@client.test", "Garage")
    dana_browser = await portal_browser(stack, "dana@client.test")
    eve_browser = await portal_browser(stack, "eve@client.test")
    try:
        await send(dana_browser, "Dana's secret gate code is 4242")
        await stack.api(
            "POST", f"/clients/{dana['id']}/messages", 201, json={"body": "Reply for Dana only"}
        )
        _, html, _ = await eve_browser.get("/portal/messages")
        assert "4242" not in html and "Dana only" not in html and "No messages yet." in html
        # Eve's form cannot write into Dana's thread, whatever she adds to it
        fields = await form_fields(eve_browser, "/portal/messages")
        await eve_browser.post(
            "/portal/messages",
            {**fields, "body": "Eve here", "client_id": str(dana["id"])},
            allow_redirects=False,
        )
        assert await thread_bodies(stack, eve["id"]) == [("in", "Eve here")]
        assert ("in", "Eve here") not in await thread_bodies(stack, dana["id"])
        _, html, _ = await dana_browser.get("/portal/messages")
        assert "Eve here" not in html and "4242" in html
        signed_out = Browser(stack)
        status, _, response = await signed_out.get("/portal/messages", allow_redirects=False)
        await signed_out.close()
        assert status == 303 and response.headers["Location"] == "/portal"
    finally:
        await dana_browser.close()
        await eve_browser.close()


async def test_the_staff_api_reads_and_writes_the_thread(stack):
    client, _ = await seed_client(stack)
    path = f"/clients/{client['id']}/messages"
    assert (await stack.api("GET", path, 200)) == {"items": []}
    sent = await stack.api("POST", path, 201, json={"body": "  Your permit arrived.\r\n"})
    assert sent["body"] == "Your permit arrived." and sent["direction"] == "out"
    assert sent["author"] == "api" and sent["channel"] == "api"
    assert sent["client_id"] == client["id"] and sent["created_at"].endswith("Z")

    for bad in ({"body": ""}, {"body": "   "}, {"body": "x" * 4001}, {"body": "a\x00b"}, {}):
        error = await stack.api("POST", path, 422, json=bad)
        assert error["error"]["code"] and error["error"]["message"]
    await stack.api("POST", path, 422, json={"body": "hi", "direction": "in"})
    await stack.api("POST", path, 201, json={"body": "x" * 4000})
    await stack.api("POST", "/clients/999999/messages", 404, json={"body": "hi"})
    await stack.api("GET", "/clients/999999/messages", 404)
    await stack.api("GET", "/clients/0/messages", 404)

    # A retried call with the same Idempotency-Key records (and sends) one reply.
    headers = {"Idempotency-Key": "retry-1"}
    one = await stack.api("POST", path, 201, json={"body": "Once"}, headers=headers)
    two = await stack.api("POST", path, 201, json={"body": "Once"}, headers=headers)
    assert one["id"] == two["id"]
    items = (await stack.api("GET", path, 200))["items"]
    assert [m["body"] for m in items] == ["Your permit arrived.", "x" * 4000, "Once"]

    await background_mail_sent(stack)
    replies = await mail(stack, "dana@client.test", "New message from Acme Builders")
    assert replies and len(replies) == 3
    # one email per reply, each its own outbox workflow: they may be recorded in any order
    (first,) = [r for r in replies if "Your permit arrived." in r.body]
    assert "http://portico.test/portal/messages" in first.body

    doc = await (await stack.http.get("/api/v1/openapi.json")).json()
    operations = doc["paths"]["/clients/{id}/messages"]
    assert set(operations) == {"get", "post"}
    body_schema = doc["components"]["schemas"]["MessageIn"]["properties"]["body"]
    assert body_schema["maxLength"] == 4000 and body_schema["minLength"] == 1
    answer = operations["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/MessageOut"}


async def test_a_client_message_tells_staff_once(stack):
    client, _ = await seed_client(stack)
    browser = await portal_browser(stack, "dana@client.test")
    try:
        await send(browser, "The <gate> is open: https://maps.test/x")
        notices = await wait_until(lambda: mail(stack, STAFF, "Message from Dana Client"))
        notice = notices[0]
        assert "The <gate> is open: https://maps.test/x" in notice.body  # the text part
        assert "&lt;gate&gt;" in notice.html and "<gate>" not in notice.html
        assert f"http://portico.test/staff/clients/{client['id']}#messages" in notice.body
        await background_mail_sent(stack)
        assert len(await mail(stack, STAFF, "Message from") or []) == 1
        async with stack.sessions() as session:
            keys = list(await session.scalars(select(OutboxMessage.dedupe_key)))
        assert [k for k in keys if k.startswith("client-message-")] == [
            f"client-message-{(await first_message_id(stack))}:staff:0"
        ]
    finally:
        await browser.close()


async def first_message_id(stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.min(ClientMessage.id))) or 0)


async def test_the_portal_switch_hides_the_messages_section(stack):
    await seed_client(stack)
    browser = await portal_browser(stack, "dana@client.test")
    try:
        settings = await stack.api("GET", "/portal/settings", 200)
        assert settings["sections"]["messages"] is True
        fields = await form_fields(browser, "/portal/messages")
        changed = await stack.api("PATCH", "/portal/settings", 200, json={"show_messages": False})
        assert changed["sections"]["messages"] is False
        _, html, _ = await browser.get("/portal")
        assert "/portal/messages" not in html
        status, _, _ = await browser.get("/portal/messages")
        assert status == 404
        status, _, _ = await send(browser, "hidden", fields)
        assert status == 404 and await count_messages(stack) == 0
        await stack.api("PATCH", "/portal/settings", 422, json={"show_messages": None})
    finally:
        await browser.close()


async def test_the_console_shows_the_thread_and_sends_replies(stack):
    client, _ = await seed_client(stack)
    portal = await portal_browser(stack, "dana@client.test")
    staff = await staff_sign_in(stack)
    page = f"/staff/clients/{client['id']}"
    try:
        await send(portal, "Is <b>Friday</b> OK? https://photos.test/1")
        status, html, _ = await staff.get(page)
        assert status == 200 and '<h2 id="messages-h">Messages</h2>' in html
        assert 'role="alert"' not in html  # nothing wrong, nothing said
        assert "Is &lt;b&gt;Friday&lt;/b&gt; OK?" in html
        assert '<a href="https://photos.test/1" rel="noopener nofollow noreferrer"' in html
        assert '<label for="message-body">Message</label>' in html and "Send reply" in html
        fields = await form_fields(staff, page)
        status, html, response = await staff.post(
            f"{page}/messages", {**fields, "body": ""}, allow_redirects=False
        )
        assert status == 422 and '<p class="field-error" id="err-body">Please write' in html
        assert 'aria-invalid="true" aria-describedby="err-body"' in html
        status, _, response = await staff.post(
            f"{page}/messages", {**fields, "body": "Friday at 9."}, allow_redirects=False
        )
        assert status == 303 and response.headers["Location"].endswith("?done=replied#messages")
        await staff.post(f"{page}/messages", {**fields, "body": "Friday at 9."})  # double click
        items = (await stack.api("GET", f"/clients/{client['id']}/messages", 200))["items"]
        assert [(m["direction"], m["author"], m["channel"]) for m in items] == [
            ("in", "client", "portal"),
            ("out", "staff:office@firm.test", "console"),
        ]
        _, html, _ = await staff.get(page + "?done=replied")
        assert "Your reply was sent to the client." in html and "(office@firm.test)" in html
        status, _, _ = await staff.post(f"{page}/messages", {"csrf": "bad", "body": "x"})
        assert status == 400
        _, html, _ = await portal.get("/portal/messages")
        assert "Friday at 9." in html
        mails = await wait_until(lambda: mail(stack, "dana@client.test", "New message"))
        await background_mail_sent(stack)
        assert len(mails) == len(await mail(stack, "dana@client.test", "New message") or []) == 1
        status, _, _ = await staff.get("/staff/clients/999999")
        assert status == 404
    finally:
        await portal.close()
        await staff.close()
