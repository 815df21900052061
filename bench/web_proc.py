"""The benchmark's web process: Portico's app as `portico web` serves it (access log on), plus
two bench-only routes on this instance, never in production:

- `GET /s/bench/render`: sign.html rendered from a context built once from constants
  (no DB, no token hashing, no CSRF HMAC per request);
- `GET /s/bench/bare`: a bare handler returning a small text.

Both sit under `/s/` so they pass through exactly the same middlewares as `GET /s/{token}`.
Usage: `python -m bench.web_proc FD...` (bound sockets it inherits, one process each); each
process prints READY once its app has started; stops on SIGTERM.
"""

from __future__ import annotations

import logging
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
from web.serve import serve

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


async def ready(app: web.Application) -> None:
    print("READY", flush=True)  # the socket listens already: connections wait in its backlog


def main(fds: list[int]) -> int:
    """Serve on the bound sockets `fds` the orchestrator handed over, one process each, as
    `portico web` does with PORTICO_WEB_PROCESSES; stops on SIGTERM."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # as `portico web` does

    def make_app() -> web.Application:
        app = bench_app()
        app.on_startup.append(ready)
        return app

    sockets = [socket.socket(fileno=fd) for fd in fds]
    return serve(make_app, sockets, access_log_class=MaskedAccessLogger, print=None)


if __name__ == "__main__":
    sys.exit(main([int(fd) for fd in sys.argv[1:]]))
