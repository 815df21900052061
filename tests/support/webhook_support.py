"""Local webhook receivers for the outbound-webhook tests: each records what it got and
answers as told (or hangs), and checks signatures with `standardwebhooks`, as receivers do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from portico.smtp_sink import free_port
from tests.support.helpers import wait_until


@dataclass
class Receiver:
    """A local HTTP receiver: answers the next of `answers` (then `default`), or hangs."""

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    default: int = 200
    hang: bool = False
    body: bytes = b"ok"
    got: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.hang:
            await asyncio.sleep(60)
        status = self.answers.pop(0) if self.answers else self.default
        self.got.append((dict(request.headers), raw, status))
        return web.Response(status=status, body=self.body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's payload, each checked with the library receivers use."""
        return [Webhook(secret).verify(raw, headers) for headers, raw, _ in self.got]

    def delivered(self) -> list[tuple[dict[str, str], bytes, int]]:
        return [g for g in self.got if 200 <= g[2] < 300]


async def eventually(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    async def check() -> Any:
        return predicate()

    return await wait_until(check, timeout)


@asynccontextmanager
async def running_receivers() -> AsyncIterator[list[Receiver]]:
    """The receivers a test starts with `receiver(made, ...)`, stopped at the end."""
    made: list[Receiver] = []
    try:
        yield made
    finally:
        for each in made:
            await each.stop()


async def receiver(made: list[Receiver], **kw: Any) -> Receiver:
    each = Receiver(**kw)
    await each.start()
    made.append(each)
    return each


def fast(settings: Any, **extra: Any) -> Any:
    return settings.model_copy(
        update={
            "webhooks_allow_private": True,
            "webhook_retry_seconds": 0.2,
            "webhook_retry_max_seconds": 0.5,
            "webhook_timeout_seconds": 2.0,
            "outbox_sweep_seconds": 0.3,
            **extra,
        }
    )
