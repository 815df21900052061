"""Bad input found by the review of jobs, agreements, messages and webhooks, each a clear 4xx
that changes nothing.

Text holding a NUL character (`\\u0000`) is refused with a clear 422 that changes nothing, on
every input: PostgreSQL cannot store one, so it used to reach the INSERT and answer 500 there
(agreement titles, photo captions, webhook descriptions, client names...). Run on both stores.
A message refused for its characters says so in words;
an upload with two files is refused."""

from __future__ import annotations

import io

from aiohttp import FormData
from sqlalchemy import func, select

from portico.models import Agreement, BookingPhoto, Client, WebhookEndpoint
from tests.support.console_support import post_form, staff_sign_in
from tests.support.photos import phone_jpeg
from tests.support.portal_support import seed_client
from tests.web.test_photos import make_booking

NUL_MESSAGE = "must not contain the NUL character"


async def count(stack, model) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def refused(stack, method: str, path: str, field: str, **kw) -> None:
    response = await stack.http.request(method, "/api/v1" + path, headers=stack.auth, **kw)
    body = await response.json()
    assert response.status == 422, (response.status, body)
    assert body["error"]["code"] == "invalid"
    assert body["error"]["message"].startswith(f"{field}: {NUL_MESSAGE}"), body


def photo_upload(caption: str) -> FormData:
    form = FormData()
    form.add_field("caption", caption)
    form.add_field("file", io.BytesIO(phone_jpeg()), filename="x.jpg", content_type="image/jpeg")
    return form


async def test_the_api_refuses_nul_in_any_text(stack):
    client, project = await seed_client(stack)
    agreement = {
        "client_id": client["id"],
        "title": "Lawn\x00care",
        "starts_on": "2027-01-01",
        "every": "week",
        "visits": 1,
    }
    await refused(stack, "POST", "/agreements", "title", json=agreement)
    assert await count(stack, Agreement) == 0

    made = await stack.api("POST", "/agreements", 201, json={**agreement, "title": "Lawn care"})
    await refused(
        stack, "POST", f"/agreements/{made['id']}/cancel", "reason", json={"reason": "\x00"}
    )
    assert (await stack.api("GET", f"/agreements/{made['id']}", 200))["status"] == "active"

    webhook = {"url": "https://hooks.example.com/p", "events": ["*"], "description": "a\x00b"}
    await refused(stack, "POST", "/webhooks", "description", json=webhook)
    assert await count(stack, WebhookEndpoint) == 0

    booking = await make_booking(stack, client["id"])
    await refused(
        stack, "POST", f"/bookings/{booking['id']}/photos", "caption", data=photo_upload("a\x00")
    )
    assert await count(stack, BookingPhoto) == 0
    photo = await stack.api(
        "POST", f"/bookings/{booking['id']}/photos", 201, data=photo_upload("Deck")
    )
    await refused(stack, "PATCH", f"/photos/{photo['id']}", "caption", json={"caption": "\x00"})
    assert (await stack.api("GET", f"/photos/{photo['id']}", 200))["caption"] == "Deck"

    clients = await count(stack, Client)
    await refused(
        stack, "POST", "/clients", "name", json={"name": "Eve\x00", "email": "eve@client.test"}
    )
    nested = {"project_id": project["id"], "title": "Deck", "kind": "estimate", "number": "E-1"}
    line = {"description": "Boards\x00", "quantity": 1, "unit_price_cents": 100}
    await refused(stack, "POST", "/documents", "line_items", json={**nested, "line_items": [line]})
    assert await count(stack, Client) == clients


async def test_the_console_shows_the_refusal_beside_the_field(stack):
    browser = await staff_sign_in(stack)
    try:
        status, html = await post_form(
            browser,
            "/staff/webhooks",
            "/staff/webhooks",
            {"url": "https://hooks.example.com/p", "events": "*", "description": "x\x00y"},
        )
        assert status == 422 and 'id="err-description"' in html
        assert "Must not contain the NUL character" in html
        assert await count(stack, WebhookEndpoint) == 0
    finally:
        await browser.close()


async def test_a_refused_message_says_why_in_words(stack):
    """A reply refused for its characters says which rule it broke, not the schema's regex."""
    client, _ = await seed_client(stack)
    path = f"/api/v1/clients/{client['id']}/messages"
    for body, why in (
        ("   \n\t", "body: must not be only blank space"),
        ("Tuesday\x07", "body: must not contain control characters other than tabs and line"),
        ("a\x00b", "body: must not contain"),
    ):
        response = await stack.http.post(path, headers=stack.auth, json={"body": body})
        answer = await response.json()
        assert response.status == 422 and answer["error"]["message"].startswith(why), answer
        assert "pattern" not in answer["error"]["message"]
    assert (await stack.api("GET", f"/clients/{client['id']}/messages", 200))["items"] == []


async def test_an_upload_with_two_files_is_refused(stack):
    """Two `file` parts: which was meant? A 422, and nothing stored (it used to keep the last)."""
    client, _ = await seed_client(stack)
    booking = await make_booking(stack, client["id"])
    form = FormData()
    for _ in range(2):
        form.add_field(
            "file", io.BytesIO(phone_jpeg()), filename="x.jpg", content_type="image/jpeg"
        )
    response = await stack.http.post(
        f"/api/v1/bookings/{booking['id']}/photos", headers=stack.auth, data=form
    )
    answer = await response.json()
    assert response.status == 422, answer
    assert answer["error"]["message"] == "Send one photo as the `file` part, not several."
    assert await count(stack, BookingPhoto) == 0
