"""The fault suite, short: real workers on a private Redis, broken as on an operator's bad day.

Each test runs one scenario of :mod:`tests.faults` at a small size and checks
its figure: nothing lost, nothing run twice, never two copies at once, no lock
left, and the scenario's own invariant. ``python -m bench chaos`` runs the
same scenarios at full size and writes ``docs/reliability.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import crashes, inputs, jobs, locking, maintenance, outages, restarts, scaleout
from tests.faults.netns import Hosts
from tests.faults.rig import Figure, Rig, rig

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]


@pytest.fixture
def fault_rig(tmp_path: Path) -> Iterator[Rig]:
    """A private Redis (append-only file), the app pointed at it, and workers to break."""
    with rig(tmp_path / "rig") as running:
        yield running


def check(figure: Figure, record: Callable[[str, Any], None]) -> Figure:
    """Record *figure* with the test's report and fail unless it is clean."""
    record("figure", figure.as_dict())
    assert figure.clean, f"the fault broke a promise: {figure.as_dict()}"
    return figure


def test_jobs_on_one_exclusive_model_never_overlap_and_tokens_grow_in_start_order(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(locking.exclusive_model(fault_rig, jobs=80), record_property)
    # Parked in the workers' fetch, the jobs wake one at a time, each taken by
    # whichever worker waits: they run on processes of both workers, not all four.
    assert figure.notes["processes_used"] >= 2


def test_random_demands_never_exceed_a_capacity_and_a_sweep_every_second_frees_no_live_lease(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(locking.mixed_capacity(fault_rig, jobs=150), record_property)
    assert figure.times >= 1, "the sweep did not run during the jobs"


def test_a_killed_pool_process_frees_its_locks_within_the_lease_and_its_job_runs_once_more(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(locking.kill_children(fault_rig, kills=3, lease=2.0), record_property)
    assert figure.notes["locks_freed_after_s_max"] <= 3.0


def test_a_killed_worker_loses_no_job_and_its_jobs_run_again_once_it_counts_as_silent(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(crashes.kill_workers(fault_rig, kills=2, visibility=4), record_property)
    assert figure.notes["killed_jobs"] >= 2


def test_a_job_that_kills_its_process_is_dead_lettered_after_its_max_deliveries(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(jobs.poison_job(fault_rig, max_deliveries=2, others=5), record_property)
    assert figure.notes["deliveries"] == 2


def test_retry_ignore_reject_errors_and_time_limits_leave_no_lock_key(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    check(jobs.unusual_endings(fault_rig, rounds=1), record_property)


def test_a_holder_stopped_past_its_lease_knows_it_and_cannot_harm_the_new_holder(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    check(jobs.stopped_holder(fault_rig, times=1, lease=2.0), record_property)


def test_redis_restarted_under_load_loses_nothing_and_the_workers_resume(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(crashes.redis_restarts(fault_rig, restarts=2), record_property)
    assert figure.recovery_s is not None and figure.recovery_s < 30.0


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_redis_sigkilled_as_jobs_end_turns_no_job_into_failure_and_result_and_history_agree(
        fault_rig: Rig, record_property: Callable[[str, Any], None], fsync: str) -> None:
    figure = check(outages.redis_crashes(fault_rig, crashes=1, down=5.0, fsync=fsync),
                   record_property)
    assert figure.notes["runs_finished"] >= 4


def test_past_the_outage_limit_a_finished_job_is_given_back_and_runs_again_never_failed(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    fault_rig.fleet.settings.update(visibility_timeout=5)
    figure = outages.redis_crashes(fault_rig, crashes=1, down=6.0, outage_limit=2.0)
    record_property("figure", figure.as_dict())
    assert figure.lost == 0 and figure.concurrent == 0 and figure.locks_leaked == 0
    assert figure.notes["not_success"] == [], "a job read FAILURE past the outage limit"
    assert figure.ran_twice >= 1, "no job was given back past the limit"


def test_a_worker_restarted_under_its_name_gives_back_at_once_what_its_stopped_predecessor_held(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(restarts.restarted_worker(fault_rig, restarts=1, seconds=60.0),
                   record_property)
    assert figure.notes["shown_while_down"] == ["stopped"]
    assert figure.recovery_s is not None and figure.recovery_s < 10.0


def test_sweeps_run_on_schedule_while_every_pool_process_is_busy_and_never_count_as_jobs(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(maintenance.busy_pool(fault_rig, seconds=14.0), record_property)
    assert figure.notes["sweeps_shown_as_queued_jobs"] == 0


def test_a_countdown_past_the_visibility_timeout_runs_once_and_not_early(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(crashes.long_countdown(fault_rig, jobs=2, visibility=2, countdown=5.0),
                   record_property)
    assert figure.notes["runs"] == 2


def test_a_workflow_killed_as_each_step_starts_resumes_and_frees_its_locks(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    check(jobs.killed_workflows(fault_rig, steps=2), record_property)


def test_a_host_cut_off_mid_job_loses_nothing_its_jobs_are_rescued_by_the_others(
        tmp_path: Path, record_property: Callable[[str, Any], None]) -> None:
    with Hosts(3) as hosts, rig(tmp_path / "rig", hosts=hosts) as running:
        figure = check(scaleout.cut_link(running, hosts, lease=2.0, visibility=3),
                       record_property)
    assert figure.notes["jobs_on_cut_host"] == 2


def test_fuzzed_items_and_a_pickle_message_are_set_aside_and_the_worker_keeps_running(
        fault_rig: Rig, record_property: Callable[[str, Any], None]) -> None:
    figure = check(inputs.bad_input(fault_rig, fuzz=300, jobs=20), record_property)
    assert figure.notes["set_aside"]["total"] == 303  # and the pickle and two park records
    assert figure.notes["job_on_corrupt_lock_key"] == "FAILURE"
