"""The Temporal worker: connects, makes sure the search attributes exist, runs the approval
workflow and every activity, and sweeps the outbox, until interrupted. Run it with
`python worker.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.agreements import AgreementActivities
from activities.documents import DocumentActivities
from activities.notify import NotifyActivities
from activities.outbox import OutboxActivities
from activities.payments import PaymentActivities
from activities.records import RecordActivities
from activities.webhooks import WebhookActivities
from portico import heap, pdf_sandbox
from portico.db import engine_for, session_maker
from portico.sandbox import share_workflow_code
from portico.sandbox_runner import ContextFreeSandboxRunner, context_free
from portico.services.agreements import Agreements
from portico.services.billing.announcements import PaymentHandOff
from portico.services.gateway import TemporalGateway
from portico.services.outbox import Outbox
from portico.services.portal_auth import PortalAuth
from portico.services.staff import StaffAuth
from portico.services.webhooks import Webhooks
from portico.settings import Settings, load_settings
from portico.temporal import connect, ensure_search_attributes, metrics_runtime
from workflows.agreement import AgreementWorkflow
from workflows.approval import ApprovalWorkflow
from workflows.invoice import InvoiceWorkflow, PaymentReviewWorkflow
from workflows.outbox import OutboxMessageWorkflow
from workflows.supersede import SupersedeWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

log = logging.getLogger("portico.worker")
# Deterministic, side-effect-free modules the workflows import: shared with the sandbox instead
# of re-imported for every workflow run (Temporal's advice; about 40% less memory per cached
# workflow, see docs/benchmarks.md).
PASSTHROUGH_MODULES = (
    "workflows.types",
    "workflows.messages",
    "workflows.search_attributes",
    "portico.money",
    "portico.i18n",
)
# The workflow modules themselves, shared too when the sandbox is `shared`
# (PORTICO_WORKER_SANDBOX).
WORKFLOW_PACKAGE = "workflows"
SHUTDOWN_TIMEOUT = timedelta(seconds=20)


def workflow_runner(
    converter: DataConverter | None = None, *, shared: bool = False
) -> SandboxedWorkflowRunner:
    """The sandbox every Portico workflow runs in: PASSTHROUGH_MODULES shared with the host.

    Strict (the default): each workflow instance executes its workflow module afresh inside
    the sandbox, so module state is its own and every call the workflow code makes is checked
    (the bytecode is loaded once per process, portico/sandbox.py). `shared`: the workflow
    modules are loaded once, outside the sandbox, and every instance uses them; a fifth to a
    quarter less memory per cached workflow, and less worker CPU per start and per reminder
    (docs/benchmarks.md, twelfth pass).
    The sandbox then no longer checks the workflow code's own calls: the test suite runs
    every workflow strict, and tests/test_worker_sandbox.py holds the workflow modules to
    module state that cannot change. For a `converter` that takes no serialization context
    (Portico's), the worker's per-payload questions are answered without entering the
    sandbox (portico/sandbox_runner.py)."""
    modules = PASSTHROUGH_MODULES + ((WORKFLOW_PACKAGE,) if shared else ())
    if not shared:
        share_workflow_code((WORKFLOW_PACKAGE,))
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*modules)
    if converter is not None and context_free(converter):
        return ContextFreeSandboxRunner(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions)


class Sweeper(Protocol):
    async def sweep_forever(self) -> None: ...


class Workers:
    """Portico's workers, run together with `async with`: the main one (workflows and every
    activity) and the SMS one, which serves `send_sms` on its own task queue with a
    server-side dispatch limit, so texts leave at the carrier's pace (~1/s per sender)
    however many are due at once, without sleeping in an activity.

    Stopping waits at most SHUTDOWN_TIMEOUT per worker: the SDK's final shutdown step has been
    seen to wait forever under load after every task was already handed back to the server;
    nothing is lost by not waiting longer (Temporal retries whatever was unfinished).

    The `sweepers` run while the workers do: they start the delivery of messages and webhooks
    the web layer recorded but could not hand to Temporal (portico/services/outbox.py,
    portico/services/webhooks.py), and the payment announcements whose hand-off failed
    (portico/services/billing/announcements.py)."""

    def __init__(self, workers: list[Worker], sweepers: Sequence[Sweeper] = ()) -> None:
        self.workers = workers
        self.sweepers = list(sweepers)
        self._running: list[Worker] = []
        self._sweeps: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Workers:
        # The PDF jobs' fork server, up before an approval completes (portico/pdf_sandbox.py).
        await asyncio.to_thread(partial(pdf_sandbox.warm_up, background=True))
        try:
            for worker in self.workers:
                await worker.__aenter__()
                self._running.append(worker)
        except BaseException:
            await self._stop()
            raise
        self._sweeps = [asyncio.create_task(s.sweep_forever()) for s in self.sweepers]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        while self._sweeps:
            sweep = self._sweeps.pop()
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep
        while self._running:
            worker = self._running.pop()
            try:
                await asyncio.wait_for(
                    worker.__aexit__(None, None, None), SHUTDOWN_TIMEOUT.total_seconds()
                )
            except TimeoutError:
                log.warning(
                    "worker on task queue %r still shutting down after %s; not waiting longer",
                    worker.task_queue,
                    SHUTDOWN_TIMEOUT,
                )


def build_worker(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Workers:
    """The workers with their activity objects, clients injected."""
    hooks = Webhooks(settings, sessions, TemporalGateway(settings, client))
    hooks.attach()  # events recorded by sync_approval are handed off right after their commit
    records = RecordActivities(sessions, hooks.record_approval_event)
    notify = NotifyActivities(settings, sessions, record=records.apply)
    documents = DocumentActivities(settings, sessions, record=records.apply)
    payments = PaymentActivities(settings, sessions, notify)
    outbox = Outbox(settings, sessions, TemporalGateway(settings, client))
    delivery = OutboxActivities(
        settings, sessions, notify, PortalAuth(settings, sessions, outbox), StaffAuth(sessions)
    )
    hook_delivery = WebhookActivities(settings, sessions)
    agreements = AgreementActivities(sessions)
    # completed bookings whose visit was never told (docs/agreements.md)
    visits = Agreements(settings, sessions, TemporalGateway(settings, client))
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            ApprovalWorkflow,
            InvoiceWorkflow,
            PaymentReviewWorkflow,
            OutboxMessageWorkflow,
            WebhookDeliveryWorkflow,
            AgreementWorkflow,
            SupersedeWorkflow,
        ],
        max_cached_workflows=settings.worker_cache_size,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout),
        workflow_runner=workflow_runner(
            client.data_converter, shared=settings.worker_sandbox == "shared"
        ),
        activities=[
            records.sync_approval,
            records.append_audit_event,
            notify.send_email,
            notify.send_sms,  # for requests started before the SMS queue existed
            documents.build_signed_pdf,
            payments.invoice_notice,
            delivery.deliver,  # emails (texts are delivered from the SMS queue)
            delivery.finish,
            payments.announce_payments,
            hook_delivery.finish,
            agreements.book_visit,
            agreements.sync,
            agreements.contact,
        ],
    )
    sms = Worker(
        client,
        task_queue=settings.sms_task_queue,
        activities=[notify.send_sms, delivery.deliver],
        max_task_queue_activities_per_second=settings.sms_per_second,
    )
    # Webhook attempts on their own queue: a slow receiver (up to its timeout per attempt) never
    # holds up the activities of approvals and invoices.
    hooks_worker = Worker(
        client, task_queue=settings.webhook_task_queue, activities=[hook_delivery.deliver]
    )
    # payment announcements whose hand-off failed (a manual payment answered 503, say)
    announcements = PaymentHandOff(settings, sessions, TemporalGateway(settings, client))
    return Workers([main, sms, hooks_worker], [outbox, hooks, visits, announcements])


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    client: Client | None = None,
    *,
    freeze_heap: bool = False,
) -> None:
    """Run until `stop` is set; the worker finishes in-flight tasks before returning.
    `freeze_heap`: a process of its own (`python worker.py`) freezes its start-up objects out
    of garbage collection before it starts polling (portico.heap), so that no task in flight
    is frozen with them."""
    if client is None:
        runtime = None
        if settings.worker_metrics_address:  # Prometheus scrape endpoint of the SDK's metrics
            runtime = metrics_runtime(settings.worker_metrics_address)
            log.info("worker metrics on http://%s/metrics", settings.worker_metrics_address)
        client = await connect(
            settings.temporal_address or "127.0.0.1:7233",
            settings.temporal_namespace,
            settings=settings,
            runtime=runtime,
        )
    await ensure_search_attributes(client, settings.temporal_namespace)
    engine = engine_for(settings)
    if freeze_heap:
        heap.freeze_startup_objects()
    try:
        async with build_worker(client, settings, session_maker(engine)):
            log.info(
                "worker polling task queues %r and %r (SMS, %.1f/s)",
                settings.task_queue,
                settings.sms_task_queue,
                settings.sms_per_second,
            )
            await stop.wait()
    finally:
        await engine.dispose()


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(load_settings(), stop, freeze_heap=True)


if __name__ == "__main__":
    asyncio.run(main())
