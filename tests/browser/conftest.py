"""Headless Chromium (Debian's /usr/bin/chromium, never a downloaded build) driven by
Playwright's async API against the real web app and worker of the `stack` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# How long an action or an `expect` waits for the page (Playwright's own default for `expect` is
# 5 s): pdf.js rendering or a workflow answering on a loaded CI machine can take longer. Only a
# failing check ever waits this long.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)
PHONE = {
    "viewport": {"width": 375, "height": 812},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Mobile Safari/537.36"
    ),
}


class Watched:
    """A page plus what went wrong in it: console errors, CSP violations, uncaught errors."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {message.text}")


async def open_context(browser: Browser, **options: Any) -> Watched:
    context = await browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    return Watched(context, page)


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[Watched]:
    watched = await open_context(browser, viewport={"width": 1280, "height": 900})
    yield watched
    await watched.context.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[Watched]:
    watched = await open_context(browser, **PHONE)
    yield watched
    await watched.context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page (the context must bypass the CSP to inject it)."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    return result["violations"]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [", ".join(n["target"]) for n in v["nodes"][:3]]
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return "\n".join(lines)
