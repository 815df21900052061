"""Long-running processes freeze their start-up objects out of garbage collection
(portico.heap): a full collection then walks only what was made since."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from portico import heap
from web.app import create_app
from web.http.keys import SESSIONS
from worker import run_worker


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()  # the suite freezes its heap after each test (tests/conftest.py)
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezing_collects_first_then_moves_what_is_alive(thawed: None) -> None:
    alive = Cycle()
    garbage = Cycle()
    collected: list[int] = []
    weakref.finalize(garbage, collected.append, 1)
    del garbage
    frozen = heap.freeze_startup_objects()
    assert collected == [1]  # start-up garbage is not frozen in
    assert frozen == gc.get_freeze_count() > 1000
    assert not any(o is alive for o in gc.get_objects())  # the permanent generation holds it
    made_later = Cycle()
    assert any(o is made_later for o in gc.get_objects())  # later objects are collected as usual


async def test_a_served_web_app_freezes_its_heap_once_started(settings, thawed: None) -> None:
    client = TestClient(TestServer(create_app(settings)))  # as tests build it: nothing frozen
    await client.start_server()
    try:
        assert gc.get_freeze_count() == 0
    finally:
        await client.close()
    app = create_app(settings, freeze_heap=True)  # as `portico web` makes it
    served = TestClient(TestServer(app))
    await served.start_server()
    try:
        assert gc.get_freeze_count() > 1000
        sessions = app[SESSIONS]  # made at start-up, before the freeze
        assert not any(o is sessions for o in gc.get_objects())
        assert (await served.get("/healthz")).status == 200
    finally:
        await served.close()


async def test_the_worker_process_freezes_its_heap_before_polling(
    settings, dev_env, thawed: None
) -> None:
    configured = settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(configured, stop, freeze_heap=True))
    try:
        for _ in range(600):
            if gc.get_freeze_count() or task.done():
                break
            await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 1000
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
