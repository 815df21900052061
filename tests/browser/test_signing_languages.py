"""The signing page in French and Spanish (CONTRACT section 10), found by its accessible names
in headless Chromium, with JavaScript on and off: the client's locale picks the language,
and the language switch changes it (remembered in a cookie)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PHONE, open_context
from tests.support.helpers import create_approval, token_of

pytestmark = pytest.mark.browser

NAMES = {
    "fr": {
        "full_name": "Nom complet",
        "notes": "Notes",
        "consent": "électronique",
        "approve": "Approuver",
        "decline": "Refuser",
        "reason": "Motif",
        "thanks": "Merci",
        "pad": "Zone de signature",
    },
    "es": {
        "full_name": "Nombre completo",
        "notes": "Notas",
        "consent": "electrónica",
        "approve": "Aprobar",
        "decline": "Rechazar",
        "reason": "Motivo",
        "thanks": "Gracias",
        "pad": "Panel de firma",
    },
}


async def link_for(stack: Any, client_locale: str | None, approver_locale: str | None = None):
    """A change order for a client in `client_locale` (set with PATCH /clients/{id}) and the
    signing link of its one approver (with their own `approver_locale`, if given)."""
    client = await stack.api(
        "POST", "/clients", 201, json={"name": "Dana Client", "email": "dana@client.test"}
    )
    if client_locale:
        changed = await stack.api(
            "PATCH",
            f"/clients/{client['id']}",
            200,
            json={"locale": client_locale, "timezone": "America/Toronto"},
        )
        assert changed["locale"] == client_locale
    project = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Cuisine"}
    )
    doc = await stack.api(
        "POST",
        "/documents",
        201,
        json={
            "project_id": project["id"],
            "kind": "change_order",
            "title": "Prises",
            "number": "CO-17",
            "line_items": [{"description": "Prise", "quantity": 4, "unit_price_cents": 12500}],
        },
    )
    approver: dict[str, Any] = {"name": "Dana Client", "email": "dana@client.test"}
    if approver_locale:
        approver["locale"] = approver_locale
    created = await create_approval(stack, doc["id"], approvers=[approver])
    url = str(stack.http.make_url(f"/s/{token_of(created['approvers'][0]['sign_url'])}"))
    return created, url


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("locale", ["fr", "es"])
async def test_approve_in_the_clients_language(stack, browser, artifacts, locale, javascript):
    created, url = await link_for(stack, locale)
    names = NAMES[locale]
    watched = await open_context(browser, java_script_enabled=javascript, **PHONE)
    page = watched.page
    try:
        await page.goto(url)
        assert await page.get_attribute("html", "lang") == locale
        if javascript:
            await expect(page.get_by_role("img", name=names["pad"])).to_be_visible()
        await expect(page.get_by_label(names["reason"], exact=True)).to_be_visible()
        await expect(page.get_by_role("button", name=names["decline"], exact=True)).to_be_visible()
        await page.get_by_label(names["full_name"], exact=True).fill("Dana Client")
        await page.get_by_label(names["notes"], exact=True).fill("OK")
        await page.get_by_label(re.compile(names["consent"])).check()
        await page.screenshot(path=str(artifacts / f"signing-{locale}-phone.png"), full_page=True)
        await page.get_by_role("button", name=names["approve"], exact=True).click()
        await expect(page.get_by_role("heading", name=names["thanks"])).to_be_visible()
        assert watched.errors == [], watched.errors
    finally:
        await watched.context.close()
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["status"] == "approved"


async def test_decline_in_spanish_for_an_approver_with_their_own_locale(stack, browser):
    created, url = await link_for(stack, "fr", approver_locale="es")  # approver's beats client's
    names = NAMES["es"]
    watched = await open_context(browser, java_script_enabled=False)
    page = watched.page
    try:
        await page.goto(url)
        await page.get_by_label(names["reason"], exact=True).fill("Demasiado caro")
        await page.get_by_role("button", name=names["decline"], exact=True).click()
        await expect(page.get_by_role("heading", name="Rechazó este documento")).to_be_visible()
    finally:
        await watched.context.close()
    shown = await stack.api("GET", f"/approvals/{created['id']}")
    assert shown["approvers"][0]["decline_reason"] == "Demasiado caro"


async def test_the_language_switch_is_remembered(stack, browser, artifacts):
    # A client with no locale reads PORTICO_DEFAULT_LOCALE, whatever the browser asks for: the
    # person is known (Accept-Language is for pages of nobody in particular, like sign-in).
    _, url = await link_for(stack, None)
    watched = await open_context(browser, viewport={"width": 1280, "height": 900}, locale="es-MX")
    page = watched.page
    try:
        await page.goto(url)
        await expect(page.get_by_label("Full name", exact=True)).to_be_visible()
        await page.get_by_role("button", name="Français").click()
        await expect(page.get_by_label("Nom complet", exact=True)).to_be_visible()
        await page.screenshot(path=str(artifacts / "signing-fr-desktop.png"), full_page=True)
        await page.goto(url)  # the choice is kept
        await expect(page.get_by_role("button", name="Approuver", exact=True)).to_be_visible()
        await page.get_by_role("button", name="Español").click()
        await expect(page.get_by_label("Nombre completo", exact=True)).to_be_visible()
    finally:
        await watched.context.close()


async def test_portal_sign_in_follows_accept_language(stack, browser):
    for locale, label, button in [
        ("fr-CA", "Courriel", "M’envoyer un lien de connexion"),
        ("es-MX", "Correo electrónico", "Enviarme un enlace para iniciar sesión"),
        ("en-US", "Email", "Email me a sign-in link"),
    ]:
        watched = await open_context(browser, locale=locale)
        try:
            await watched.page.goto(str(stack.http.make_url("/portal")))
            await expect(watched.page.get_by_label(label, exact=True)).to_be_visible()
            await expect(watched.page.get_by_role("button", name=button)).to_be_visible()
        finally:
            await watched.context.close()
