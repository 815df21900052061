"""Branding on the signing page, in its Content-Security-Policy and in the emails."""

from __future__ import annotations

import re

import pytest

from tests.conftest import start_stack
from tests.support.helpers import create_approval, outbox, seed_document, token_of, wait_until

ROOF = "https://cdn.example.test/roofing.png"


@pytest.fixture
async def branded(settings, sessions, dev_env):
    branded = settings.model_copy(
        update={
            "accent_color": "#0f766e",
            "logo_url": "/static/acme-logo.png",
            "division_logos_value": f"Roofing={ROOF},HVAC=https://img.example.test/hvac.png",
        }
    )
    async for s in start_stack(branded, sessions, dev_env.client):
        yield s


async def page_of(stack, created) -> tuple[str, dict]:
    response = await stack.http.get(f"/s/{token_of(created['approvers'][0]['sign_url'])}")
    assert response.status == 200
    return await response.text(), dict(response.headers)


async def request_email(stack, address: str) -> str:
    async def sent():
        found = [m for m in await outbox(stack.sessions, address) if m.channel == "email"]
        return found[0] if found else None

    return (await wait_until(sent)).html


async def test_division_logo_on_page_and_email_else_default_logo(branded):
    stack = branded
    document = await seed_document(stack)
    roofing = await create_approval(stack, document["id"], division="roofing")
    html, headers = await page_of(stack, roofing)
    assert f'<img class="logo" src="{ROOF}" alt="Acme Builders · roofing">' in html
    assert '<link rel="stylesheet" href="/brand.css">' in html
    csp = headers["Content-Security-Policy"]
    img_src = re.search(r"img-src ([^;]+);", csp).group(1).split()
    assert img_src == ["'self'", "data:", "https://cdn.example.test", "https://img.example.test"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
    email = await request_email(stack, "a1@client.test")
    assert f'src="{ROOF}"' in email and "background:#0f766e" in email

    plain = await create_approval(
        stack,
        document["id"],
        approvers=[{"name": "Sam", "email": "sam@client.test"}],
    )
    html, _ = await page_of(stack, plain)
    assert '<img class="logo" src="/static/acme-logo.png" alt="Acme Builders">' in html
    # Emails need absolute URLs: the site path is made absolute under PORTICO_PUBLIC_URL.
    email = await request_email(stack, "sam@client.test")
    assert 'src="http://portico.test/static/acme-logo.png"' in email

    response = await stack.http.get("/brand.css")
    assert response.content_type == "text/css"
    css = await response.text()
    assert "--accent: #0f766e;" in css and "--on-accent: #ffffff;" in css


async def test_without_branding_the_company_name_and_default_accent_show(stack):
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"], division="Roofing")
    html, headers = await page_of(stack, created)
    assert '<span class="brand">Acme Builders</span>' in html and 'class="logo"' not in html
    assert "img-src 'self' data:;" in headers["Content-Security-Policy"]
    email = await request_email(stack, "a1@client.test")
    assert "<img" not in email and "Acme Builders · Roofing" in email
    css = await (await stack.http.get("/brand.css")).text()
    assert "--accent: #1d4ed8;" in css


async def test_custom_message_per_request_on_page_and_email(stack):
    document = await seed_document(stack)
    created = await create_approval(
        stack, document["id"], message="Hi Dana,\nhere is the change we discussed."
    )
    html, _ = await page_of(stack, created)
    assert "here is the change we discussed." in html
    email = await request_email(stack, "a1@client.test")
    assert "here is the change we discussed." in email
