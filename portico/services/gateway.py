"""The shared Temporal client, connected on first use so pages keep working while Temporal is
down, and the mapping of workflow errors to domain errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from portico.errors import Conflict, Invalid, NotFound, PorticoError, Unavailable
from portico.settings import Settings
from portico.temporal import connect
from workflows.types import (
    CONSENT_REQUIRED,
    INVALID_DAYS,
    INVALID_REMINDER,
    INVALID_VISIT_DATE,
    REASON_REQUIRED,
    SIGNATURE_REQUIRED,
    SUPERSEDE_WORKFLOW,
    SUPERSEDED_SIGNAL,
    UNKNOWN_APPROVER,
    UNKNOWN_VISIT,
    VIEWED_SIGNAL,
    ApprovalState,
    ApproveRequest,
    DecisionResult,
    DeclineRequest,
    ExtendRequest,
    RemindRequest,
    Supersession,
    ViewedSignal,
    VoidRequest,
    approval_workflow_id,
    supersede_workflow_id,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

ERROR_CLASSES: dict[str, type[PorticoError]] = {
    REASON_REQUIRED: Invalid,
    CONSENT_REQUIRED: Invalid,
    SIGNATURE_REQUIRED: Invalid,
    INVALID_DAYS: Invalid,
    UNKNOWN_APPROVER: NotFound,
    # service agreements
    INVALID_VISIT_DATE: Invalid,
    INVALID_REMINDER: Invalid,
    UNKNOWN_VISIT: NotFound,
}


class TemporalGateway:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    address = self.settings.temporal_address or "127.0.0.1:7233"
                    try:
                        self._client = await connect(
                            address, self.settings.temporal_namespace, settings=self.settings
                        )
                    except Exception as err:
                        raise Unavailable(
                            "The approval engine is unreachable right now; nothing was changed. "
                            "Please try again in a minute."
                        ) from err
        return self._client

    async def start_new(
        self,
        workflow: str,
        arg: Any,
        *,
        workflow_id: str,
        search_attributes: TypedSearchAttributes,
        forget: Callable[[], Awaitable[None]],
        engine: str,
        nothing_done: str,
    ) -> None:
        """Start the workflow of rows just committed (its id is new: duplicates rejected). If
        Temporal does not take it, `forget` the rows and raise: Conflict (`workflow_exists`)
        when Temporal already has that id, else Unavailable ("The {engine} is unreachable
        right now; {nothing_done}. Try again.")."""
        try:
            client = await self.client()
            await client.start_workflow(
                workflow,
                arg,
                id=workflow_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=search_attributes,
            )
        except Exception as err:
            await forget()
            if isinstance(err, Unavailable):
                raise
            if isinstance(err, WorkflowAlreadyStartedError):
                # Temporal remembers a workflow with this id that the database does not (e.g. a
                # database restored or reset next to a Temporal that kept its history).
                log.error("workflow %s already exists in Temporal", workflow_id)
                raise Conflict(
                    f"Temporal already has a workflow {workflow_id} that this database "
                    f"does not know (were they reset separately?); {nothing_done}.",
                    code="workflow_exists",
                ) from err
            log.warning("could not start %s", workflow_id, exc_info=True)
            raise Unavailable(
                f"The {engine} is unreachable right now; {nothing_done}. Try again."
            ) from err

    async def handle(self, approval_id: int) -> WorkflowHandle:
        return (await self.client()).get_workflow_handle(approval_workflow_id(approval_id))

    async def decide(
        self, approval_id: int, update: str, req: ApproveRequest | DeclineRequest
    ) -> DecisionResult:
        """An approver's `approve` / `decline` update of ApprovalWorkflow, by name."""
        handle = await self.handle(approval_id)
        return await self.call(handle.execute_update(update, req, result_type=DecisionResult))

    async def staff_update(
        self, approval_id: int, update: str, req: VoidRequest | ExtendRequest | RemindRequest
    ) -> ApprovalState:
        """A staff `void` / `extend` / `remind` update of ApprovalWorkflow, by name."""
        handle = await self.handle(approval_id)
        return await self.call(handle.execute_update(update, req, result_type=ApprovalState))

    async def viewed(self, approval_id: int, sig: ViewedSignal) -> None:
        """Tell the workflow an approver opened their link (a signal: no answer awaited)."""
        await (await self.handle(approval_id)).signal(VIEWED_SIGNAL, sig)

    async def supersede(self, change: Supersession) -> None:
        """Have the `superseded` audit event recorded, durably and once: by the request's
        workflow while it runs (a signal), else by SupersedeWorkflow. Nothing is awaited but
        Temporal's acknowledgement; the event is in the trail moments later."""
        client = await self.client()
        try:
            await client.get_workflow_handle(approval_workflow_id(change.approval_id)).signal(
                SUPERSEDED_SIGNAL, change
            )
            return
        except RPCError as err:
            if not _closed(err):
                raise self._unavailable() from err
        try:
            await client.start_workflow(
                SUPERSEDE_WORKFLOW,
                change,
                id=supersede_workflow_id(change.approval_id, change.document_id),
                task_queue=self.settings.task_queue,
                # Recorded already (or being recorded): nothing to do. A failed run may rerun.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            pass
        except RPCError as err:
            raise self._unavailable() from err

    @staticmethod
    def _unavailable() -> Unavailable:
        return Unavailable(
            "The approval engine did not answer; nothing was changed. Please try again."
        )

    async def call(self, action: Awaitable[T]) -> T:
        """Run a workflow call, turning its failures into clear domain errors."""
        try:
            return await action
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ERROR_CLASSES.get(cause.type or "", Conflict)(
                    cause.message, code=_snake(cause.type or "conflict")
                ) from err
            raise Conflict(str(cause or err)) from err
        except RPCError as err:
            if _closed(err):
                raise Conflict("This request is already closed.", code="request_closed") from err
            raise self._unavailable() from err


def _closed(err: RPCError) -> bool:
    """Whether Temporal answered that the workflow has ended (or is not known)."""
    return err.status == RPCStatusCode.NOT_FOUND or "completed" in err.message.lower()


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")
