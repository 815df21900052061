"""The worker's sandbox shares workflow bytecode between instances, and nothing else.

portico/sandbox.py keeps each workflow module's code object after its first load; every
sandboxed instance must still get a module of its own, executed inside the sandbox (its
restrictions apply), and the saved histories must replay unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from types import FunctionType, MappingProxyType, ModuleType
from typing import Any

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.converter import SerializationContext, WithSerializationContext
from temporalio.worker import Replayer
from temporalio.worker._workflow_instance import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import (
    RestrictedWorkflowAccessError,
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)
from temporalio.worker.workflow_sandbox._runner import _fake_info
from temporalio.workflow import _Definition

import worker
from portico.codec import EncryptionCodec
from portico.sandbox import SharedCodeFinder
from portico.sandbox_runner import ContextFreeSandboxRunner, context_free
from portico.temporal import data_converter
from tests.support import sandbox_probe
from workflows.approval import ApprovalWorkflow

PROBE = sandbox_probe.__name__
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.fixture
def finder() -> Iterator[SharedCodeFinder]:
    finder = SharedCodeFinder([PROBE])
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)


def sandboxed(runner: SandboxedWorkflowRunner, cls: type) -> Any:
    converter = data_converter()
    return runner.create_instance(
        WorkflowInstanceDetails(
            payload_converter_factory=converter._new_payload_converter,
            failure_converter_class=converter.failure_converter_class,
            interceptor_classes=[],
            defn=_Definition.must_from_class(cls),
            info=_fake_info,
            randomness_seed=1,
            extern_functions={},
            disable_eager_activity_execution=False,
            worker_level_failure_exception_types=[],
            patch_activation_callback=None,
            last_completion_result=Payloads(),
            last_failure=Failure(),
        )
    )


def module_of(instance: Any) -> ModuleType:
    module: ModuleType = instance.importer.new_modules[PROBE]
    return module


async def test_each_instance_gets_its_own_module_with_the_shared_code(finder):
    runner = SandboxedWorkflowRunner()
    one = module_of(sandboxed(runner, sandbox_probe.ProbeWorkflow))
    two = module_of(sandboxed(runner, sandbox_probe.ProbeWorkflow))
    assert one is not two and one is not sandbox_probe
    assert one.ProbeWorkflow is not two.ProbeWorkflow
    one.RUNS.append("only in the first")
    assert two.RUNS == [] and sandbox_probe.RUNS == []
    # ... and only the bytecode is shared
    assert one.ProbeWorkflow.run.__code__ is two.ProbeWorkflow.run.__code__
    assert finder.cached() == [str(Path(sandbox_probe.__file__).resolve())]


async def test_a_module_with_shared_code_still_runs_under_the_sandbox_restrictions(finder):
    instance = sandboxed(SandboxedWorkflowRunner(), sandbox_probe.ProbeWorkflow)
    module = module_of(instance)
    assert finder.cached()  # loaded through the shared code
    assert_restricted(instance, module)


def assert_restricted(instance: Any, module: ModuleType) -> None:
    """The module sees the sandbox's proxies, and a forbidden call fails at run time."""
    assert module.datetime is not sys.modules["datetime"]  # the sandbox's restricted proxy
    instance.importer.restriction_context.is_runtime = True
    try:
        with instance.importer.applied(), pytest.raises(RestrictedWorkflowAccessError):
            module.datetime.datetime.now()
    finally:
        instance.importer.restriction_context.is_runtime = False


async def test_without_the_finder_the_code_is_loaded_per_instance():
    """The cost the finder removes: the sandbox's own loader makes new code objects."""
    runner = SandboxedWorkflowRunner()
    one = module_of(sandboxed(runner, sandbox_probe.ProbeWorkflow))
    other = module_of(sandboxed(runner, sandbox_probe.ProbeWorkflow))
    assert one.ProbeWorkflow.run.__code__ is not other.ProbeWorkflow.run.__code__


def test_the_worker_runner_passes_through_its_pure_modules():
    runner = worker.workflow_runner()
    assert set(worker.PASSTHROUGH_MODULES) <= runner.restrictions.passthrough_modules
    assert "workflows.approval" not in runner.restrictions.passthrough_modules
    assert any(isinstance(f, SharedCodeFinder) for f in sys.meta_path)
    assert (
        SandboxRestrictions.default.passthrough_modules <= runner.restrictions.passthrough_modules
    )


# (sandbox, context-free runner): what the tests and `make dev` run, its two runner classes,
# and what docker-compose.yml runs
RUNNERS = [("strict", False), ("strict", True), ("shared", True)]


@pytest.mark.parametrize(("sandbox", "context_free"), RUNNERS, ids=lambda v: str(v))
@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_saved_histories_replay_in_the_worker_sandbox(
    path: Path, sandbox: str, context_free: bool
):
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    runner = worker.workflow_runner(
        data_converter() if context_free else None, shared=sandbox == "shared"
    )
    assert isinstance(runner, ContextFreeSandboxRunner) == context_free
    replayer = Replayer(
        workflows=[ApprovalWorkflow],
        data_converter=data_converter(),
        workflow_runner=runner,
    )
    await replayer.replay_workflow(history)  # raises on any nondeterminism


async def test_the_shared_sandbox_runs_every_instance_on_the_one_loaded_module():
    shared = worker.workflow_runner(data_converter(), shared=True)
    assert worker.WORKFLOW_PACKAGE in shared.restrictions.passthrough_modules
    one = sandboxed(shared, ApprovalWorkflow)._inner
    two = sandboxed(shared, ApprovalWorkflow)._inner
    loaded = sys.modules["workflows.approval"]
    assert one.importer.new_modules["workflows.approval"] is loaded
    assert two.importer.new_modules["workflows.approval"] is loaded
    strict = sandboxed(worker.workflow_runner(data_converter()), ApprovalWorkflow)._inner
    assert strict.importer.new_modules["workflows.approval"] is not loaded


def workflow_modules() -> list[ModuleType]:
    package = importlib.import_module(worker.WORKFLOW_PACKAGE)
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


# Values of these types are never changed by Portico's code (dataclasses of the SDK)
SETTLED_TYPES = (RetryPolicy, SearchAttributeKey)
IMMUTABLE = (str, bytes, int, float, bool, type(None), timedelta, timezone, MappingProxyType)


def changeable(value: object) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return any(changeable(item) for item in value)
    if isinstance(value, (type, ModuleType, FunctionType, *IMMUTABLE, *SETTLED_TYPES)):
        return False
    return type(value).__module__ != "__future__"  # `annotations`


def test_workflow_modules_hold_no_state_that_a_run_could_change():
    """With the sandbox `shared`, every workflow run uses the same module objects: nothing at
    module level may be a list, dict, set or other value that one run could change and
    another then see (a read-only mapping is fine)."""
    found = [
        f"{module.__name__}.{name}"
        for module in workflow_modules()
        for name, value in vars(module).items()
        if not name.startswith("__") and changeable(value)
    ]
    assert found == []
    assert {m.__name__ for m in workflow_modules()} >= {"workflows.approval", "workflows.types"}


class ContextTakingCodec(EncryptionCodec, WithSerializationContext):
    def with_context(self, context: SerializationContext) -> ContextTakingCodec:
        return ContextTakingCodec(KEY)


KEY = bytes(32)


def test_only_a_converter_that_takes_no_context_gets_the_context_free_runner():
    assert context_free(data_converter())
    encrypted = dataclasses.replace(data_converter(), payload_codec=EncryptionCodec(KEY))
    assert context_free(encrypted)  # Portico's codec takes none either
    taking = dataclasses.replace(data_converter(), payload_codec=ContextTakingCodec(KEY))
    assert not context_free(taking)
    assert not isinstance(worker.workflow_runner(taking), ContextFreeSandboxRunner)
    assert isinstance(worker.workflow_runner(encrypted), ContextFreeSandboxRunner)


async def test_the_context_free_runner_keeps_the_sandbox_and_answers_outside_it(finder):
    instance = sandboxed(ContextFreeSandboxRunner(), sandbox_probe.ProbeWorkflow)
    inner = instance._inner
    assert_restricted(inner, module_of(inner))
    # The two per-payload questions: no context, the workflow itself as the storage target.
    assert instance.get_serialization_context(None) is None
    target = instance.get_external_store_context(None).target
    assert (target.id, target.run_id) == (_fake_info.workflow_id, _fake_info.run_id)
    assert instance.get_info() is inner.get_info()
