"""A workflow module for tests/test_worker_sandbox.py: module-level state, and a restricted
call, to show each sandboxed instance still gets its own module under the sandbox's checks
when its bytecode is shared (portico/sandbox.py)."""

from __future__ import annotations

import datetime

from temporalio import workflow

RUNS: list[str] = []  # module-level state: must never be shared between instances


@workflow.defn
class ProbeWorkflow:
    @workflow.run
    async def run(self) -> str:
        RUNS.append("ran")
        return datetime.datetime.now().isoformat()  # restricted in a workflow
