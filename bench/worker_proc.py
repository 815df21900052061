"""The benchmark's worker process: Portico's own `build_worker` (as `portico worker` runs it)
plus a worker for the baseline `BareWorkflow`, until SIGTERM. `python -m bench.worker_proc
timers` is instead section 4's baseline worker, `TimerWorkflow` alone, in a process of its own.

Settings come from the environment, like production. `BENCH_WORKER_OPTIONS` (JSON) passes
extra `temporalio.worker.Worker` keyword arguments (max_cached_workflows, ...) to every worker
`build_worker` makes, to try tuning knobs without editing worker.py; its key
`passthrough_modules` (a list of module names) adds those modules to the ones Portico's
workflow runner passes through its sandbox instead of re-importing them for every workflow run
(`worker.PASSTHROUGH_MODULES`). `BENCH_CORE_LOG`
and `BENCH_WORKER_METRICS` are diagnostics (`bench_runtime`), as is `BENCH_TRACEMALLOC` (a file:
Portico's worker traces its Python allocations and, when told to stop, writes what is held
then, by file and by line, before its workflows leave the cache; slow, for finding what a
cached workflow holds, not for timing).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import tracemalloc
from typing import Any

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Worker

import worker as portico_worker
from bench.workflows import (
    BARE_TASK_QUEUE_SUFFIX,
    TIMER_TASK_QUEUE_SUFFIX,
    BareWorkflow,
    FirstStepWorkflow,
    TimerWorkflow,
    mark,
    noop,
)
from portico import heap
from portico.db import engine_for, session_maker
from portico.settings import load_settings
from portico.temporal import connect


def bench_runtime() -> Runtime:
    """The SDK runtime: Core's log lines forwarded to Python logging (stderr, the worker's log
    file, with timestamps) at `BENCH_CORE_LOG`'s level (default WARN; `debug` shows pollers,
    cache and evictions), and the SDK's worker metrics (pollers, slots, cache) served for
    Prometheus at `BENCH_WORKER_METRICS` (host:port) if it is set."""
    level = (os.environ.get("BENCH_CORE_LOG") or "WARN").upper()
    core_logger = logging.getLogger("temporal_core")
    core_logger.setLevel(level)
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level=level, other_level="WARN"),
        forwarding=LogForwardingConfig(logger=core_logger),
    )
    metrics_address = os.environ.get("BENCH_WORKER_METRICS")
    metrics = PrometheusConfig(bind_address=metrics_address) if metrics_address else None
    return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))


def worker_options() -> dict[str, Any]:
    """Extra Worker keyword arguments from BENCH_WORKER_OPTIONS."""
    options = dict(json.loads(os.environ.get("BENCH_WORKER_OPTIONS") or "{}"))
    modules = options.pop("passthrough_modules", None)
    if modules:
        portico_worker.PASSTHROUGH_MODULES = (*portico_worker.PASSTHROUGH_MODULES, *modules)
    return options


def write_allocations(snapshot: tracemalloc.Snapshot, path: str) -> None:
    """The 40 largest holders of traced memory, by file and by line."""
    with open(path, "w") as out:
        for key in ("filename", "lineno"):
            stats = snapshot.statistics(key)
            total = sum(stat.size for stat in stats)
            out.write(f"# by {key}: {total / 2**20:.1f} MiB traced in all\n")
            for stat in stats[:40]:
                frame = stat.traceback[0]
                where = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
                out.write(f"{stat.size / 2**10:10.1f} KiB {stat.count:8d} blocks  {where}\n")


async def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    options = worker_options()
    if "max_cached_workflows" in options:  # Portico's own setting (PORTICO_WORKER_CACHE_SIZE)
        size = int(options.pop("max_cached_workflows"))
        settings = settings.model_copy(update={"worker_cache_size": size})
    # the baselines see the same cache as Portico's worker
    bare_options: dict[str, Any] = {"max_cached_workflows": settings.worker_cache_size}
    if options:
        portico_worker.Worker = functools.partial(Worker, **options)  # type: ignore[misc,assignment]
    client = await connect(
        settings.temporal_address or "127.0.0.1:7233",
        settings.temporal_namespace,
        settings=settings,
        runtime=bench_runtime(),
    )
    if sys.argv[1:] == ["timers"]:
        timers = Worker(
            client,
            task_queue=settings.task_queue + TIMER_TASK_QUEUE_SUFFIX,
            workflows=[TimerWorkflow],
            activities=[mark],
            **bare_options,
        )
        heap.freeze_startup_objects()  # as worker.py does, so the baseline compares
        async with timers:
            print("READY", flush=True)
            await stop.wait()
        return
    engine = engine_for(settings)
    bare = Worker(
        client,
        task_queue=settings.task_queue + BARE_TASK_QUEUE_SUFFIX,
        workflows=[BareWorkflow, FirstStepWorkflow],
        activities=[noop, mark],
        **bare_options,
    )
    heap.freeze_startup_objects()  # as worker.py does
    trace_path = os.environ.get("BENCH_TRACEMALLOC")
    if trace_path:
        tracemalloc.start(12)
    try:
        async with portico_worker.build_worker(client, settings, session_maker(engine)), bare:
            print("READY", flush=True)
            await stop.wait()
            if trace_path:
                write_allocations(tracemalloc.take_snapshot(), trace_path)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
