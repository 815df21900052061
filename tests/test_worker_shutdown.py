"""Stopping the workers never hangs the process: a worker whose shutdown does not finish is
left behind after SHUTDOWN_TIMEOUT, and the others still stop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import worker as worker_module
from worker import Workers


class FakeWorker:
    def __init__(self, name: str, hang: bool = False) -> None:
        self.task_queue = name
        self.hang = hang
        self.events: list[str] = []

    async def __aenter__(self) -> FakeWorker:
        self.events.append("started")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("stopping")
        if self.hang:
            await asyncio.Event().wait()
        self.events.append("stopped")


async def test_a_hanging_shutdown_is_abandoned_and_the_others_still_stop(monkeypatch, caplog):
    monkeypatch.setattr(worker_module, "SHUTDOWN_TIMEOUT", timedelta(milliseconds=200))
    main, sms = FakeWorker("portico", hang=True), FakeWorker("portico-sms")
    async with Workers([main, sms]):  # type: ignore[list-item]
        assert main.events == sms.events == ["started"]
    assert sms.events == ["started", "stopping", "stopped"]
    assert main.events == ["started", "stopping"]
    assert "'portico' still shutting down" in caplog.text


async def test_workers_started_before_a_failure_are_stopped(monkeypatch):
    class Broken(FakeWorker):
        async def __aenter__(self) -> FakeWorker:
            raise RuntimeError("cannot poll")

    first = FakeWorker("portico")
    try:
        async with Workers([first, Broken("portico-sms")]):  # type: ignore[list-item]
            raise AssertionError("not reached")
    except RuntimeError as err:
        assert str(err) == "cannot poll"
    assert first.events == ["started", "stopping", "stopped"]
