"""`portico dev` and `portico web` as a developer meets them in a terminal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PORTICO = [sys.executable, "-m", "portico.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTICO_", "TEMPORAL_"))}
    return {
        **env,
        "PORTICO_VAR_DIR": str(tmp_path / "var"),
        "PORTICO_FILES_DIR": str(tmp_path / "var" / "files"),
        "PORTICO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/portico.db",
        **extra,
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        PORTICO + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_dev_with_its_web_port_taken_says_which_and_how_to_move_it(tmp_path, taken_port):
    done = run(["dev"], env_for(tmp_path, PORTICO_HTTP_PORT=str(taken_port)), tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert f"port {taken_port} on 127.0.0.1 is already in use" in done.stderr
    assert "PORTICO_HTTP_PORT" in done.stderr


def test_dev_with_the_temporal_port_taken_names_the_flag(tmp_path, taken_port):
    env = env_for(tmp_path, PORTICO_HTTP_PORT=str(free_port()))
    done = run(["dev", "--temporal-port", str(taken_port)], env, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert f"port {taken_port}" in done.stderr and "--temporal-port" in done.stderr


def test_web_with_its_port_taken_says_so(tmp_path, taken_port):
    done = run(["web"], env_for(tmp_path, PORTICO_HTTP_PORT=str(taken_port)), tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert f"port {taken_port} on 127.0.0.1 is already in use" in done.stderr


def test_dev_prints_its_banner_without_library_chatter(tmp_path):
    """The banner and Portico's own lines; alembic, the SMTP sink, aiohttp's access log and the
    Temporal SDK stay at WARNING unless --verbose."""
    http = free_port()
    env = env_for(
        tmp_path,
        PORTICO_HTTP_PORT=str(http),
        PORTICO_PUBLIC_URL=f"http://127.0.0.1:{http}",
    )
    args = ["dev", "--demo", "--temporal-port", str(free_port())]
    args += ["--temporal-ui-port", str(free_port())]
    process = subprocess.Popen(
        PORTICO + args,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        assert any("Demo signing link:" in line for line in lines), "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    output = "".join(lines) + rest
    for chatter in ("alembic", "mail.log", "twilio", "aiohttp.access", "temporalio"):
        assert chatter not in output, output
    assert "Traceback" not in output, output
