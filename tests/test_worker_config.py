"""PORTICO_WORKER_CACHE_SIZE sizes the worker's workflow cache (memory against replays)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from portico.db import create_engine, session_maker
from portico.settings import Settings
from worker import build_worker, workflow_runner


async def test_the_workflow_cache_size_comes_from_settings(tmp_path, dev_env):
    settings = Settings(
        PORTICO_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/p.db",
        PORTICO_VAR_DIR=str(tmp_path),
        PORTICO_WORKER_CACHE_SIZE="400",
    )
    engine = create_engine(settings.database_url)
    client: Client = dev_env.client
    main, sms, hooks = build_worker(client, settings, session_maker(engine)).workers
    assert main.config()["max_cached_workflows"] == 400
    assert hooks.task_queue == settings.webhook_task_queue  # slow receivers wait apart
    assert Settings(PORTICO_VAR_DIR=str(tmp_path)).worker_cache_size == 600
    await engine.dispose()


def test_a_cache_too_small_for_the_workflow_task_slots_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="PORTICO_WORKER_CACHE_SIZE"):
        Settings(PORTICO_VAR_DIR=str(tmp_path), PORTICO_WORKER_CACHE_SIZE="10")


async def test_the_worker_sandbox_comes_from_settings(tmp_path, dev_env):
    """Strict by default (each run imports its workflow module, every call checked); `shared`
    passes the workflow modules through, as docker-compose.yml runs the worker."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    settings = Settings(
        PORTICO_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/p.db",
        PORTICO_VAR_DIR=str(tmp_path),
        PORTICO_WORKER_SANDBOX="shared",
        PORTICO_TASK_QUEUE="portico-shared-sandbox",  # beside the other test's worker
    )
    main, _, _ = build_worker(dev_env.client, settings, session_maker(engine)).workers
    assert "workflows" in main.config()["workflow_runner"].restrictions.passthrough_modules
    assert Settings(PORTICO_VAR_DIR=str(tmp_path)).worker_sandbox == "strict"
    assert "workflows" not in workflow_runner().restrictions.passthrough_modules
    with pytest.raises(ValidationError, match="PORTICO_WORKER_SANDBOX"):
        Settings(PORTICO_VAR_DIR=str(tmp_path), PORTICO_WORKER_SANDBOX="off")
    await engine.dispose()
