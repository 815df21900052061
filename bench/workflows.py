"""A minimal workflow, the baseline for Portico's own workflow calls in the benchmark."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from temporalio import activity, workflow

BARE_TASK_QUEUE_SUFFIX = "-bench-bare"
# Section 4's TimerWorkflow baseline: served by a worker process of its own (`bench.worker_proc
# timers`), so that Portico's worker RSS holds nothing of the baseline's.
TIMER_TASK_QUEUE_SUFFIX = "-bench-timers"


@activity.defn(name="bench_noop")
async def noop(value: str) -> str:
    """An activity that does nothing: the cost of one activity round trip."""
    return value


@workflow.defn
class BareWorkflow:
    """Waits for one `touch` update (or `linger_seconds`), then completes."""

    def __init__(self) -> None:
        self._touched = False

    @workflow.run
    async def run(self, linger_seconds: float) -> str:
        try:
            await workflow.wait_condition(
                lambda: self._touched, timeout=timedelta(seconds=linger_seconds)
            )
        except TimeoutError:
            return "lingered"
        return "touched"

    @workflow.update
    async def touch(self, value: str) -> str:
        """The bare update: no activity."""
        self._touched = True
        return value

    @workflow.update
    async def touch_via_activity(self, value: str) -> str:
        """An update that awaits one no-op activity before answering, as `approve` awaits
        its SQL sync."""
        result = await workflow.execute_activity(
            "bench_noop", value, start_to_close_timeout=timedelta(seconds=30)
        )
        self._touched = True
        return str(result)


@activity.defn(name="bench_mark")
async def mark(path: str) -> None:
    """The baseline's one no-op activity: appends the time it ran to `path` (one short
    O_APPEND write), so the orchestrator can time the burst as it times Portico's reminders
    by their outbox rows."""
    with open(path, "a") as out:
        out.write(f"{time.time():.6f}\n")


@workflow.defn
class FirstStepWorkflow:
    """Section 3's baseline: the shape of an approval's way to its first email, with nothing
    of Portico's in it. Its first task schedules one no-op activity that marks its time in a
    file (as the request email writes its outbox row), the next task starts a timer (as the
    expiry's), and it waits there for `linger_seconds`."""

    @workflow.run
    async def run(self, mark_path: str, linger_seconds: float) -> None:
        await workflow.execute_activity(
            "bench_mark", mark_path, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.sleep(timedelta(seconds=linger_seconds))


@workflow.defn
class TimerWorkflow:
    """Section 4's baseline: one timer to `due` (as an open approval's reminder timer), then
    one no-op activity (as the reminder email), then done. Its history is ~11 events, so a
    replay after an eviction costs next to nothing; Portico's burst is reported as a ratio
    of this one's at the same open count. Plain strings in (an ISO time and a path), so no
    per-instance type adapter is built for a sandbox-local class."""

    @workflow.run
    async def run(self, due: str, mark_path: str) -> None:
        delay = datetime.fromisoformat(due) - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
        await workflow.execute_activity(
            "bench_mark", mark_path, start_to_close_timeout=timedelta(seconds=30)
        )
