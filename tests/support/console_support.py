"""Helpers for the staff console tests: members, signing in with the mailed link, forms."""

from __future__ import annotations

import re
from typing import Any

from portico.services.staff import StaffAuth, StaffMemberIn
from tests.support.helpers import wait_until
from tests.support.portal_support import CSRF, Browser, mails_to
from web.console.keys import STAFF_AUTH

STAFF_LINK = re.compile(r"/staff/link/([A-Za-z0-9_\-]+)")
ADMIN = "office@firm.test"
STAFF = "clerk@firm.test"


def staff_auth(stack: Any) -> StaffAuth:
    return stack.http.app[STAFF_AUTH]


async def add_member(stack: Any, email: str = ADMIN, role: str = "admin", name: str = "") -> None:
    await staff_auth(stack).add(
        StaffMemberIn(email=email, name=name or email.split("@")[0].title(), role=role)
    )


async def staff_links(stack: Any, address: str) -> list[str]:
    return [
        m.group(1) for msg in await mails_to(stack, address) for m in STAFF_LINK.finditer(msg.body)
    ]


async def request_staff_link(browser: Browser, email: str) -> tuple[int, str]:
    token = await browser.csrf("/staff")
    status, html, _ = await browser.post("/staff/sign-in", {"csrf": token, "email": email})
    return status, html


async def next_staff_link(stack: Any, address: str, seen: int = 0) -> str:
    async def check() -> str | None:
        links = await staff_links(stack, address)
        return links[seen] if len(links) > seen else None

    return await wait_until(check)


async def use_staff_link(browser: Browser, token: str) -> tuple[int, str]:
    status, html, _ = await browser.get(f"/staff/link/{token}")
    if status != 200:
        return status, html
    match = CSRF.search(html)
    assert match
    status, html, _ = await browser.post(f"/staff/link/{token}", {"csrf": match.group(1)})
    return status, html


async def staff_sign_in(stack: Any, email: str = ADMIN, role: str = "admin") -> Browser:
    """A browser signed in to the console as a (new) member with this role."""
    if email not in {m.email for m in await staff_auth(stack).members()}:
        await add_member(stack, email, role)
    link = await staff_auth(stack).issue_link(email)
    assert link is not None
    browser = Browser(stack)
    status, html = await use_staff_link(browser, link.token)
    assert status == 200 and "Sign out" in html, (status, html[:800])
    return browser


async def csrf_of(browser: Browser, path: str) -> str:
    return await browser.csrf(path)


async def post_form(
    browser: Browser, page: str, action: str, data: dict[str, Any]
) -> tuple[int, str]:
    """Open `page` for its CSRF token, then post `data` to `action` as its form would."""
    token = await browser.csrf(page)
    status, html, _ = await browser.post(action, {"csrf": token, **data})
    return status, html
