"""The benchmark's child processes: their output is kept and never blocks them."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from bench.run import ROOT, Child, listening_sockets


def test_child_stdout_is_drained_into_its_log_after_ready(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = tmp_path / "done"
    child = Child("chatty", ["tests.bench.chatty_child", str(done)], env, tmp_path)
    try:
        asyncio.run(child.ready(timeout=30))
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), "the child blocked writing to its stdout"
        assert child.process.wait(timeout=30) == 0
    finally:
        child.stop()
    log = (tmp_path / "chatty.log").read_text()
    assert "core warning 00000" in log
    assert "core warning 03999" in log


def test_the_web_child_serves_on_the_port_bound_before_it_started(tmp_path: Path) -> None:
    """The port is bound by the orchestrator and handed over, so nothing started in between
    (the Temporal dev server picks free ports too) can take it: one socket per web process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listeners = listening_sockets(2)
    port = listeners[0].getsockname()[1]
    assert [s.getsockname()[1] for s in listeners] == [port, port]
    fds = tuple(s.fileno() for s in listeners)
    child = Child("serving", ["tests.bench.serving_child", *map(str, fds)], env, tmp_path, fds)
    for listener in listeners:
        listener.close()
    try:
        asyncio.run(child.ready(timeout=30, lines=2))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            assert conn.recv(16) == b"served"
        assert child.process.wait(timeout=30) == 0
    finally:
        child.stop()
