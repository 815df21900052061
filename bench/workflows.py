"""A minimal workflow, the baseline for Portico's own workflow calls in the benchmark."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BARE_TASK_QUEUE_SUFFIX = "-bench-bare"


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
