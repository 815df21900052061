"""The sandboxed workflow runner, without two trips into the sandbox per payload.

For every payload of every workflow activation and completion, the SDK's worker asks the
workflow instance which serialization context and which external-storage context apply to it
(temporalio 1.35: `_CommandAwareDataConverter`). The sandboxed instance answers each question by
entering the sandbox (swapping `sys.modules` and builtins, compiling and running a code string):
measured on a saved approval history, that is about half the CPU of a replay (docs/benchmarks.md,
sixth pass).

The answers only matter to a data converter that uses them: a payload converter, codec or
failure converter that takes a serialization context, or external payload storage. Portico's
takes none (`context_free`), so `ContextFreeSandboxRunner` answers outside the sandbox with what
that converter ignores anyway: no serialization context (the converter as it is) and the
workflow itself as the storage target. Activations still run inside the sandbox, with all its
restrictions; only these two questions are answered differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


def context_free(converter: DataConverter) -> bool:
    """True if `converter` behaves the same under every serialization context and stores no
    payload externally (DataConverter.with_context returns itself when no part takes one)."""
    probe = WorkflowSerializationContext(namespace="probe", workflow_id="probe")
    return converter.external_storage is None and converter.with_context(probe) is converter


@dataclass(frozen=True)
class ContextFreeSandboxRunner(SandboxedWorkflowRunner):
    """SandboxedWorkflowRunner for a worker whose data converter is `context_free`."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed instance; the two context questions are answered without entering it."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner

    def activate(self, act: Any) -> Any:
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return None  # the worker's converter as it is: it takes no context

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        info = self._inner.get_info()  # no trip into the sandbox
        return StorageDriverStoreContext(
            target=StorageDriverWorkflowInfo(
                id=info.workflow_id,
                run_id=info.run_id,
                type=info.workflow_type,
                namespace=info.namespace,
            )
        )

    def get_info(self) -> workflow.Info:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()
