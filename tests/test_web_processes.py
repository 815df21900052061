"""`portico web` with PORTICO_WEB_PROCESSES=2: two processes on one port, stopped together."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.test_dev_command import PORTICO, env_for, free_port
from web import serve as serve_module


@dataclass
class WebSet:
    process: subprocess.Popen[str]
    port: int
    var_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving(self) -> list[psutil.Process]:
        """The processes that listen on the port."""
        found = []
        for child in psutil.Process(self.process.pid).children():
            listening = [
                c
                for c in child.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
            ]
            if listening:
                found.append(child)
        return found


@pytest.fixture
def web_set(tmp_path: Path) -> Iterator[WebSet]:
    port = free_port()
    env = env_for(tmp_path, PORTICO_HTTP_PORT=str(port), PORTICO_WEB_PROCESSES="2")
    subprocess.run([*PORTICO, "migrate"], env=env, cwd=tmp_path, check=True, timeout=120)
    process = subprocess.Popen(
        [*PORTICO, "web"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found = WebSet(process, port, tmp_path / "var")
    try:
        deadline = time.monotonic() + 60
        while len(found.serving()) < 2:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the two web processes did not start"
            time.sleep(0.2)
        yield found
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
        process.communicate(timeout=30)


async def hold_connections(web_set: WebSet, count: int) -> tuple[list[int], set[int]]:
    """Open `count` connections at once, each making a staff API call with the key the set
    generated; returns their statuses and the pids that held a connection meanwhile."""
    key = (web_set.var_dir / "staff-api.key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=count, force_close=False)
    async with aiohttp.ClientSession(web_set.url, connector=connector) as http:

        async def call() -> int:
            async with http.get("/api/v1/approvals", headers=headers) as response:
                await response.read()
                return response.status

        statuses = list(await asyncio.gather(*(call() for _ in range(count))))
        holders = {
            child.pid
            for child in web_set.serving()
            if any(
                c.status == psutil.CONN_ESTABLISHED and c.laddr.port == web_set.port
                for c in child.net_connections(kind="tcp")
            )
        }
    return statuses, holders


async def test_two_processes_share_the_port_the_key_and_the_load(web_set):
    serving = web_set.serving()
    assert len(serving) == 2
    statuses, holders = await hold_connections(web_set, 24)
    assert statuses == [200] * 24  # one generated staff key, whichever process answered
    assert holders == {p.pid for p in serving}  # the kernel spread the connections over both


async def test_sigterm_stops_every_process_and_frees_the_port(web_set):
    serving = web_set.serving()
    web_set.process.send_signal(signal.SIGTERM)
    assert web_set.process.wait(timeout=30) == 0
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in serving)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", web_set.port))  # nothing holds the port any more


async def test_a_process_that_dies_stops_the_set_with_an_error(web_set):
    one, other = web_set.serving()
    one.kill()
    assert web_set.process.wait(timeout=30) == 1
    assert f"web process {one.pid} exited" in web_set.process.communicate(timeout=10)[1]
    assert not (other.is_running() and other.status() != psutil.STATUS_ZOMBIE)


def test_a_fork_that_fails_takes_the_started_processes_with_it(monkeypatch):
    """The second fork fails (no memory, a process limit): the first process is stopped, not
    left serving on its own, and the error reaches `portico web`."""
    started = subprocess.Popen(["sleep", "60"])
    forks = iter([started.pid])

    def fork() -> int:
        pid = next(forks, None)
        if pid is None:
            raise BlockingIOError("Resource temporarily unavailable")
        return pid

    monkeypatch.setattr(serve_module.os, "fork", fork)
    sockets = serve_module.bind("127.0.0.1", 0, 1) + serve_module.bind("127.0.0.1", 0, 1)
    try:
        with pytest.raises(BlockingIOError):
            serve_module.serve(lambda: None, sockets)  # type: ignore[arg-type,return-value]
        assert started.wait(timeout=10) == -signal.SIGTERM
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGTERM, signal.SIGINT}
    finally:
        started.kill()
        for sock in sockets:
            sock.close()
