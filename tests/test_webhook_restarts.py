"""A webhook survives restarts of every process (issue 14, CONTRACT sections 8 and 11): the
receiver is down while `portico web`, the worker and the Temporal dev server are all restarted
(web and worker killed with SIGKILL); once they are back and the receiver comes up, the event
arrives exactly once, with the `webhook-id` the delivery log showed before, and it verifies
with `standardwebhooks`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from portico.devserver import start_temporal, wait_for_temporal
from portico.settings import Settings
from portico.smtp_sink import free_port
from tests.conftest import STAFF_KEY
from tests.support.helpers import wait_until
from tests.support.webhook_support import Receiver, eventually, running_receivers

ROOT = Path(__file__).resolve().parent.parent


class Processes:
    """Temporal, `portico web` and the worker as an operator runs them, each restartable."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.logs = tmp_path
        self.temporal_port, self.ui_port, self.http_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PORTICO_", "TEMPORAL_"))},
            "PORTICO_DATABASE_URL": settings.database_url,
            "PORTICO_FILES_DIR": str(settings.files_dir),
            "PORTICO_VAR_DIR": str(settings.var_dir),
            "PORTICO_SECRET_KEY": settings.secret_key,
            "PORTICO_STAFF_API_KEY": STAFF_KEY,
            "PORTICO_PUBLIC_URL": self.base,
            "PORTICO_HTTP_PORT": str(self.http_port),
            "PORTICO_TASK_QUEUE": settings.task_queue,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "PORTICO_WEBHOOKS_ALLOW_PRIVATE": "true",
            "PORTICO_WEBHOOK_RETRY_SECONDS": "0.5",
            "PORTICO_WEBHOOK_RETRY_MAX_SECONDS": "1",
            "PORTICO_WEBHOOK_TIMEOUT_SECONDS": "2",
            "PORTICO_OUTBOX_SWEEP_SECONDS": "1",
            "PYTHONPATH": str(ROOT),
        }

    async def start(self) -> None:
        """Temporal (its history kept in var/temporal.db across restarts), then web and worker."""
        self.running["temporal"] = start_temporal(self.settings, self.temporal_port, self.ui_port)
        await wait_for_temporal(self.settings, self.env["TEMPORAL_ADDRESS"])
        worker_log = self.logs / "worker.log"
        ready = worker_log.read_text().count("worker polling") if worker_log.exists() else 0
        self.running["worker"] = self.spawn("worker", [sys.executable, str(ROOT / "worker.py")])
        self.running["web"] = self.spawn("web", [sys.executable, "-m", "portico.cli", "web"])

        async def up() -> bool:
            if worker_log.read_text(errors="replace").count("worker polling") <= ready:
                return False
            try:
                async with aiohttp.ClientSession() as http, http.get(self.base + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(up, timeout=60)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:  # the child keeps its own copy
            return subprocess.Popen(argv, env=self.env, stdout=out, stderr=out, cwd=ROOT)

    def stop_all(self) -> None:
        """Web and worker killed outright; Temporal stopped as an operator would restart it."""
        for name in ("web", "worker"):
            self.running[name].send_signal(signal.SIGKILL)
            self.running[name].wait(timeout=30)
        self.running["temporal"].terminate()
        self.running["temporal"].wait(timeout=30)

    def cleanup(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    async def api(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {STAFF_KEY}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.base}/api/v1{path}", headers=headers, **kw) as answer,
        ):
            body = await answer.json()
            assert answer.status == expect, (answer.status, body)
            return body


@pytest.fixture
async def processes(settings, tmp_path) -> AsyncIterator[Processes]:
    running = Processes(settings, tmp_path)
    try:
        yield running
    finally:
        running.cleanup()
        for log in sorted(tmp_path.glob("*.log")):  # shown when the test fails
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store is not the point
async def test_delivered_once_after_web_worker_and_temporal_restart(processes):
    rx = Receiver()  # not listening yet: every attempt is refused
    await processes.start()
    endpoint = await processes.api(
        "POST", "/webhooks", 201, json={"url": rx.url, "events": ["invoice.sent"]}
    )
    client = await processes.api(
        "POST", "/clients", 201, json={"name": "Dana", "email": "dana@client.test"}
    )
    project = await processes.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Kitchen"}
    )
    invoice = {
        "project_id": project["id"],
        "number": "INV-1001",
        "currency": "USD",
        "due_date": "2099-01-31",
        "line_items": [{"description": "Cabinets", "quantity": 1, "unit_price_cents": 50000}],
    }
    await processes.api("POST", "/invoices", 201, json=invoice)
    log_path = f"/webhooks/{endpoint['id']}/deliveries"

    async def attempted() -> dict[str, Any] | None:
        items = (await processes.api("GET", log_path, 200))["items"]
        return items[0] if items and items[0]["attempts"] >= 1 else None

    before = await wait_until(attempted)
    assert before["status"] == "pending" and before["last_status_code"] is None

    processes.stop_all()
    await asyncio.sleep(1)  # retries fall due while nothing runs
    await processes.start()
    async with running_receivers() as made:
        await rx.start()
        made.append(rx)
        await eventually(rx.delivered, timeout=45)

        async def delivered() -> dict[str, Any] | None:
            [after] = (await processes.api("GET", log_path, 200))["items"]
            return after if after["status"] == "delivered" else None

        after = await wait_until(delivered)
        await asyncio.sleep(3)  # several back-off intervals: nothing more comes
        assert len(rx.got) == 1
    headers, _, status = rx.got[0]
    assert status == 200 and headers["webhook-id"] == before["event_id"] == after["event_id"]
    [payload] = rx.verified(endpoint["secret"])
    assert payload["type"] == "invoice.sent" and payload["data"]["number"] == "INV-1001"
    assert after["attempts"] > before["attempts"] and after["last_status_code"] == 200
