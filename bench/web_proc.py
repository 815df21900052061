"""The benchmark's web process: Portico's app as `portico web` serves it (access log on), plus
two bench-only routes on this instance, never in production:

- `GET /s/bench/render`: sign.html rendered from a context built once from constants
  (no DB, no token hashing, no CSRF HMAC per request);
- `GET /s/bench/bare`: a bare handler returning a small text.

Both sit under `/s/` so they pass through exactly the same middlewares as `GET /s/{token}`.
Usage: `python -m bench.web_proc FD` (a bound socket it inherits); prints READY once listening,
stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from portico import tokens
from portico.models import Approval, Approver, Document
from portico.settings import load_settings
from web.app import create_app
from web.http.access_log import MaskedAccessLogger
from web.pages.signing import Link, page_context

HOLDER = web.AppKey("bench_holder", dict)  # the app is frozen once running: a mutable holder


def constant_link() -> Link:
    """A signing link made of transient rows (never stored), like a fresh single-approver one."""
    now = datetime.now(UTC)
    document = Document(
        id=1,
        project_id=1,
        kind="change_order",
        title="Extra outlets",
        number="CO-17",
        amount_cents=63500,
        currency="USD",
        file_path="documents/none.pdf",
        sha256="0" * 64,
        size_bytes=1000,
        version=1,
    )
    approval = Approval(
        id=1,
        document_id=1,
        workflow_id="approval-1",
        routing="sequential",
        status="pending",
        expires_at=now + timedelta(days=14),
        message="Here is the change order we discussed on site.",
        channels=["email"],
        division=None,
        notify_staff=[],
        created_at=now,
    )
    approver = Approver(
        id=1,
        approval_id=1,
        position=0,
        name="Approver 1",
        email="a1@client.test",
        status="viewed",
        token_hash=tokens.hash_token("x" * 32),
        token_expires_at=now + timedelta(days=200),
        sms_code="1234",
        view_count=1,
        viewed_seconds=0,
    )
    approval.document = document
    approval.approvers = [approver]
    approver.approval = approval
    return Link("x" * 32, approver, approval, document)


async def render_only(request: web.Request) -> web.Response:
    holder = request.app[HOLDER]
    context: dict[str, Any] | None = holder.get("context")
    if context is None:  # built on the first request (it needs the app), then reused
        context = holder["context"] = page_context(request, constant_link())
    return aiohttp_jinja2.render_template("sign.html", request, context)


async def bare(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def bench_app() -> web.Application:
    """Portico's app with the two bench-only routes."""
    app = create_app(load_settings(), freeze_heap=True)  # as `portico web` makes it
    app[HOLDER] = {}
    app.router.add_get("/s/bench/render", render_only)
    app.router.add_get("/s/bench/bare", bare)
    return app


async def main(fd: int) -> None:
    """Serve on the bound socket `fd` that the orchestrator handed over."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # as `portico web` does
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(bench_app(), access_log_class=MaskedAccessLogger)
    await runner.setup()
    await web.SockSite(runner, socket.socket(fileno=fd)).start()
    print("READY", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
