"""A worker killed with SIGKILL: the next decision on its requests is answered within 5 s.

Each workflow a worker has cached is bound to that worker's sticky queue; after the worker dies
Temporal hands its next task to the shared queue only after the sticky schedule-to-start timeout
(PORTICO_WORKER_STICKY_TIMEOUT, 3 s; the SDK's default of 10 s would make the client wait 10 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from portico import tokens
from portico.settings import Settings
from tests.conftest import STAFF_KEY
from tests.support.helpers import outbox, token_of, wait_until

ROOT = Path(__file__).resolve().parent.parent


def start_worker(settings: Settings, address: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTICO_", "TEMPORAL_"))}
    env.update(
        PORTICO_DATABASE_URL=settings.database_url,
        PORTICO_FILES_DIR=str(settings.files_dir),
        PORTICO_VAR_DIR=str(settings.var_dir),
        PORTICO_SECRET_KEY=settings.secret_key,
        PORTICO_STAFF_API_KEY=STAFF_KEY,
        PORTICO_PUBLIC_URL=settings.public_url,
        PORTICO_TASK_QUEUE=settings.task_queue,
        PORTICO_STAFF_EMAILS=",".join(settings.staff_emails),
        TEMPORAL_ADDRESS=address,
        PYTHONPATH=str(ROOT),
    )
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")], env=env, stdout=out, stderr=out, cwd=ROOT
        )


async def wait_ready(log: Path, count: int) -> None:
    async def ready() -> bool:
        return log.read_text(errors="replace").count("worker polling task queues") >= count

    await wait_until(ready, timeout=60)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store is not the point
async def test_next_approval_after_a_worker_is_killed_answers_within_5_s(
    settings, sessions, dev_env, tmp_path
):
    from web.app import create_app

    address = dev_env.client.service_client.config.target_host
    log = tmp_path / "worker.log"
    first = start_worker(settings, address, log)
    second: subprocess.Popen[bytes] | None = None
    http = TestClient(TestServer(create_app(settings, temporal_client=dev_env.client)))
    await http.start_server()
    try:
        await wait_ready(log, 1)
        auth = {"Authorization": f"Bearer {STAFF_KEY}"}

        async def api(path: str, body: dict) -> dict:
            response = await http.post("/api/v1" + path, json=body, headers=auth)
            assert response.status == 201, await response.text()
            return await response.json()

        client = await api("/clients", {"name": "Dana", "email": "dana@client.test"})
        project = await api("/projects", {"client_id": client["id"], "name": "Kitchen"})
        items = [{"description": "Outlet", "quantity": 1, "unit_price_cents": 100}]
        body = {"project_id": project["id"], "kind": "change_order", "title": "Outlets"}
        document = await api("/documents", {**body, "number": "CO-1", "line_items": items})
        created = await api(
            "/approvals",
            {
                "document_id": document["id"],
                "approvers": [{"name": "Dana", "email": "dana@client.test"}],
                "routing": "sequential",
                "expires_in_days": 14,
                "channels": ["email"],
            },
        )
        # The first worker ran the request (its email is out and recorded as sent): the
        # workflow is idle and cached there.
        await wait_until(lambda: outbox(sessions, "dana@client.test"))

        async def sent() -> bool:
            response = await http.get(f"/api/v1/approvals/{created['id']}", headers=auth)
            return "sent" in [e["type"] for e in (await response.json())["events"]]

        await wait_until(sent)
        await asyncio.sleep(1)  # the task that recorded it completes
        # A second worker is up (a fleet of two); the one holding the workflow dies.
        second = start_worker(settings, address, log)
        await wait_ready(log, 2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

        token = token_of(created["approvers"][0]["sign_url"])
        form = FormData()
        form.add_field("csrf", tokens.csrf_token(settings.secret_key, tokens.hash_token(token)))
        form.add_field("full_name", "Dana")
        form.add_field("consent", "on")
        started = time.monotonic()
        response = await http.post(f"/s/{token}/approve", data=form, allow_redirects=False)
        elapsed = time.monotonic() - started
        assert response.status == 303, await response.text()
        print(f"approve after a worker was killed: {elapsed:.2f} s")
        assert elapsed < 5, f"the approval took {elapsed:.1f} s after the worker died"
    finally:
        await http.close()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
