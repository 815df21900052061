"""Serving the web app in one process or in several on the same port (`PORTICO_WEB_PROCESSES`).

A Python process serves on one core. With N processes the parent binds N listening sockets to
the same address with SO_REUSEPORT, so the kernel spreads new connections over them, then forks
N children; each builds its own app (engine, pools, clients: nothing is shared across a fork)
and serves one socket. The parent only watches: when it is told to stop (SIGTERM, SIGINT) it
stops every child, each finishing the requests it has in flight; when a child exits on its own,
it stops the others and exits with an error, so a supervisor (docker's restart policy, systemd)
starts the whole set again rather than leave it one process short unnoticed. A request needs
nothing that lives in one process (docs/operations.md, "Scaling out").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

from aiohttp import web

AppFactory = Callable[[], web.Application]
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def bind(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on (host, port), all with SO_REUSEPORT when more than one;
    port 0 picks one free port for all of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    for _ in range(count):
        sockets.append(
            socket.create_server((host, port), family=family, backlog=1024, reuse_port=count > 1)
        )
        port = sockets[0].getsockname()[1]
    return sockets


def serve(make_app: AppFactory, sockets: list[socket.socket], **run_app: Any) -> int:
    """Serve `make_app()` on each socket, one process per socket; the exit code of the set.

    `run_app` is passed on to `aiohttp.web.run_app` (access_log_class, print, ...). With one
    socket the app is served in this process.
    """
    if len(sockets) == 1:
        web.run_app(make_app(), sock=sockets[0], **run_app)
        return 0
    # Stop signals wait until every child is forked and the parent's handlers are in place.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    children: list[int] = []
    try:
        for sock in sockets:
            pid = os.fork()
            if pid == 0:  # the child: serve this one socket, never return into the caller
                others = [s for s in sockets if s is not sock]
                os._exit(_serve_child(make_app, sock, others, run_app))
            children.append(pid)
        for sock in sockets:
            sock.close()  # the children hold them
        watcher = _Watcher(children)
    except BaseException:  # a fork that failed: the processes already started go too
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return watcher.wait()


def _serve_child(
    make_app: AppFactory, sock: socket.socket, others: list[socket.socket], run_app: Any
) -> int:
    for other in others:
        other.close()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # run_app installs its handlers
    try:
        web.run_app(make_app(), sock=sock, **run_app)
    except BaseException:  # a failed start-up, reported by the child that had it
        traceback.print_exc()
        return 1
    finally:  # os._exit follows, which flushes nothing
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


class _Watcher:
    """Waits for the children: a stop signal is passed on, a child's own exit stops the rest."""

    def __init__(self, children: list[int]) -> None:
        self.alive = set(children)
        self.stopping = False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.stop_all)

    def stop_all(self, *_: object) -> None:
        self.stopping = True
        for pid in self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def wait(self) -> int:
        code = 0
        while self.alive:
            try:
                pid, status = os.wait()  # retried after a signal handler runs (PEP 475)
            except ChildProcessError:
                break
            if pid not in self.alive:
                continue
            self.alive.discard(pid)
            exit_code = os.waitstatus_to_exitcode(status)
            if not self.stopping:
                print(
                    f"error: web process {pid} exited ({exit_code}); stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                self.stop_all()
            elif exit_code not in (0, -signal.SIGTERM):
                code = 1
        return code
