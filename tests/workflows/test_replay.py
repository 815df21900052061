"""Replay safety: every history saved in tests/histories/ must replay on today's
ApprovalWorkflow (and those in invoice/ and agreement/ on InvoiceWorkflow and
AgreementWorkflow) without a nondeterminism error. An approval can stay open for 180 days, so a
change that breaks one of these would break real, running approvals: guard it with
`workflow.patched(...)` (docs/versioning.md) and record a new history next to the old ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from portico.temporal import data_converter
from tests.histories.record import SCENARIOS
from tests.histories.record_agreement import SCENARIOS as AGREEMENT_SCENARIOS
from tests.histories.record_invoice import SCENARIOS as INVOICE_SCENARIOS
from tests.workflows.changed import UnpatchedApprovalWorkflow
from workflows.agreement import AgreementWorkflow
from workflows.approval import ApprovalWorkflow
from workflows.invoice import InvoiceWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def test_every_scenario_has_a_saved_history():
    assert {p.stem for p in FILES} >= {s.name for s in SCENARIOS}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_history_replays_without_nondeterminism(path: Path):
    history = load(path)
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
    replayer = Replayer(workflows=[ApprovalWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(history)  # raises on any mismatch
    assert result.replay_failure is None


async def test_an_unpatched_change_is_caught():
    """The check above has teeth: a changed command sequence fails the replay."""
    replayer = Replayer(workflows=[UnpatchedApprovalWorkflow], data_converter=data_converter())
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES / "sequential_approved.json"))


INVOICE_FILES = sorted((HISTORIES / "invoice").glob("*.json"))


def test_invoice_histories_are_saved():
    assert {p.stem for p in INVOICE_FILES} >= set(INVOICE_SCENARIOS)


@pytest.mark.parametrize("path", INVOICE_FILES, ids=lambda p: p.stem)
async def test_invoice_history_replays_without_nondeterminism(path: Path):
    history = load(path)
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
    replayer = Replayer(workflows=[InvoiceWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


AGREEMENT_FILES = sorted((HISTORIES / "agreement").glob("*.json"))


def test_agreement_histories_are_saved():
    assert {p.stem for p in AGREEMENT_FILES} >= set(AGREEMENT_SCENARIOS)


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=lambda p: p.stem)
async def test_agreement_history_replays_without_nondeterminism(path: Path):
    history = load(path)
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
    replayer = Replayer(workflows=[AgreementWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
