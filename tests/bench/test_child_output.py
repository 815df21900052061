"""The benchmark's child processes: their output is kept and never blocks them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bench.run import ROOT, Child


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
