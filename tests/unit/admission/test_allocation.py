"""Allocation: least-loaded worker, backpressure, and processes to add or remove (80 % target)."""

from __future__ import annotations

import pytest

from pipeline.admission.agents import AgentStatus
from pipeline.admission.allocation import ADD, HOLD, REMOVE, processes_for, recommend
from pipeline.admission.load import LoadReading


def agent(name: str, slots: int, running: int, *, cpu: float = 0.2,
          accepting: bool = True, reserved: int | None = None) -> AgentStatus:
    held = running if reserved is None else reserved
    return AgentStatus.measured(name, "h", 1, slots, running, held,
                                LoadReading(cpu, 0.3, held / slots), accepting=accepting,
                                queues=("pipeline",))


@pytest.mark.parametrize(("demand", "processes"), [(0, 1), (1, 2), (4, 5), (8, 10), (10, 13)])
def test_processes_keep_utilisation_at_or_below_80_percent(demand: int, processes: int) -> None:
    assert processes_for(demand) == processes
    assert demand / processes <= 0.8


def test_busy_pool_with_waiting_jobs_needs_more_processes_and_signals_backpressure() -> None:
    found = recommend([agent("a", 2, 2), agent("b", 2, 2)], waiting=4)
    assert (found.action, found.processes, found.target_processes) == (ADD, 6, 10)
    assert found.backpressure
    assert "no worker has a free slot" in found.backpressure_reason
    assert found.utilisation == 1.0


def test_idle_pool_can_give_back_processes_but_each_worker_keeps_one() -> None:
    found = recommend([agent("a", 4, 0), agent("b", 4, 1)], waiting=0)
    assert (found.action, found.processes, found.target_processes) == (REMOVE, 6, 2)
    assert not found.backpressure
    assert recommend([agent("a", 1, 0)], waiting=0).action == HOLD


def test_pool_at_the_target_holds() -> None:
    found = recommend([agent("a", 5, 4)], waiting=0)
    assert (found.action, found.processes) == (HOLD, 0)


def test_new_work_goes_to_the_accepting_worker_with_the_lowest_score() -> None:
    workers = [agent("busy", 4, 3, cpu=0.9), agent("idle", 4, 0, cpu=0.1),
               agent("paused", 4, 0, cpu=0.0, accepting=False)]
    assert recommend(workers, waiting=0).least_loaded == "idle"


def test_every_worker_paused_means_backpressure_and_capacity_on_another_host() -> None:
    found = recommend([agent("a", 4, 1, accepting=False)], waiting=3)
    assert found.backpressure
    assert found.backpressure_reason == "every worker is over its load limit"
    assert found.least_loaded is None
    assert found.capacity == 1                       # only the job it still runs
    assert found.utilisation == 1.0
    assert found.action == ADD and "another host" in found.reason


def test_no_worker_at_all_asks_for_one() -> None:
    found = recommend([], waiting=0)
    assert (found.action, found.processes, found.backpressure) == (ADD, 1, True)
    assert found.backpressure_reason == "no worker is running"
    assert found.utilisation is None
