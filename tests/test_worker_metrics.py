"""PORTICO_WORKER_METRICS_ADDRESS: the worker serves the Temporal SDK's Prometheus metrics."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from worker import run_worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def scrape(url: str, timeout: float = 60.0) -> str:
    """The metrics text once the SDK has recorded something (pollers start within a second;
    the timeout is for a loaded machine)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    text = await response.text()
                    if response.status == 200 and "temporal_" in text:
                        return text
            except aiohttp.ClientConnectionError:
                pass
            if loop.time() > end:
                raise AssertionError(f"no Temporal metrics at {url}")
            await asyncio.sleep(0.2)


async def test_worker_serves_sdk_metrics_when_enabled(settings, dev_env):
    address = f"127.0.0.1:{free_port()}"
    configured = settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "worker_metrics_address": address,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(configured, stop))
    try:
        text = await scrape(f"http://{address}/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert "temporal_" in text
    assert f'task_queue="{configured.task_queue}"' in text
