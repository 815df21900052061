"""The benchmark's command line: what a run will do."""

from __future__ import annotations

from bench.run import parse_args


def test_section_4_lets_all_open_approvals_fall_due_unless_told_how_many() -> None:
    plan, _ = parse_args(["--sections", "4", "--open", "10000"])
    assert (plan.open_steps, plan.due(10_000)) == ((10_000,), 10_000)
    plan, _ = parse_args(["--sections", "4", "--open", "10000", "--due", "1000"])
    assert (plan.open_steps, plan.due(10_000)) == ((10_000,), 1_000)
    plan, _ = parse_args(["--quick", "--due", "5000"])  # never more than are open
    assert (plan.open_steps, plan.due(1_000)) == ((1_000,), 1_000)


def test_a_full_run_measures_section_4_at_1000_then_10000_open_to_compare_the_bursts() -> None:
    assert parse_args([])[0].open_steps == (1_000, 10_000)
    assert parse_args(["--quick"])[0].open_steps == (1_000,)
    assert parse_args(["--quick", "--open", "500,2000"])[0].open_steps == (500, 2_000)


def test_the_temporal_dev_server_keeps_its_state_in_memory_unless_told_a_file() -> None:
    assert parse_args([])[0].temporal_store == "memory"
    assert parse_args(["--temporal-store", "file"])[0].temporal_store == "file"


def test_the_worker_runs_its_sandbox_as_docker_compose_does_unless_told_strict() -> None:
    assert parse_args([])[0].worker_sandbox == "shared"
    assert parse_args(["--worker-sandbox", "strict"])[0].worker_sandbox == "strict"


def test_passthrough_modules_add_to_what_portico_s_sandbox_passes_through(monkeypatch) -> None:
    import worker
    from bench.worker_proc import worker_options

    monkeypatch.setattr(worker, "PASSTHROUGH_MODULES", worker.PASSTHROUGH_MODULES)
    monkeypatch.setenv(
        "BENCH_WORKER_OPTIONS", '{"passthrough_modules": ["workflows"], "max_cached_workflows": 9}'
    )
    assert worker_options() == {"max_cached_workflows": 9}
    assert "workflows" in worker.workflow_runner().restrictions.passthrough_modules


def test_the_worker_keeps_portico_s_sticky_timeout_unless_told_another() -> None:
    assert parse_args([])[0].sticky_timeout is None
    assert parse_args(["--sticky-timeout", "30"])[0].sticky_timeout == 30.0
