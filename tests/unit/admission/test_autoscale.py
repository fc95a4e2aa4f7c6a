"""The autoscaler sizes the pool like ``agents allocate``: at most 80 % of processes busy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery.worker import state

from pipeline.admission.autoscale import LoadAwareAutoscaler


class Pool:
    """A pool that only counts its processes (the scaling decision is under test)."""

    def __init__(self, processes: int) -> None:
        self.num_processes = processes

    def grow(self, n: int) -> None:
        self.num_processes += n

    def shrink(self, n: int) -> None:
        self.num_processes -= n

    def maintain_pool(self) -> None:
        pass


class Job:
    """Stands for a reserved request (the worker's state holds weak references)."""


@pytest.fixture
def jobs() -> Iterator[list[Job]]:
    held: list[Job] = []
    yield held
    for job in held:
        state.reserved_requests.discard(job)


def hold_jobs(jobs: list[Job], count: int) -> None:
    for _ in range(count):
        jobs.append(Job())
        state.reserved_requests.add(jobs[-1])


def scaler(processes: int, *, over_limit: bool = False, max_: int = 8,
           min_: int = 1) -> tuple[LoadAwareAutoscaler, Pool]:
    pool = Pool(processes)
    monitor = SimpleNamespace(wants_pause=over_limit)
    worker: Any = SimpleNamespace(consumer=SimpleNamespace(
        pipeline_load_gate=SimpleNamespace(monitor=monitor)))
    found = LoadAwareAutoscaler(pool, max_, min_, worker=worker, keepalive=0.01)
    found._last_task_received = time.monotonic() - 1.0
    return found, pool


def test_pool_grows_so_jobs_in_hand_use_at_most_80_percent(jobs: list[Job]) -> None:
    hold_jobs(jobs, 4)
    autoscaler, pool = scaler(2)
    autoscaler.maybe_scale()
    assert pool.num_processes == 5          # 4 / 0.8


def test_pool_never_grows_past_its_maximum(jobs: list[Job]) -> None:
    hold_jobs(jobs, 10)
    autoscaler, pool = scaler(2, max_=6)
    autoscaler.maybe_scale()
    assert pool.num_processes == 6


def test_pool_does_not_grow_while_the_host_is_over_its_load_limit(jobs: list[Job]) -> None:
    hold_jobs(jobs, 4)
    autoscaler, pool = scaler(2, over_limit=True)
    autoscaler.maybe_scale()
    assert pool.num_processes == 2
    assert autoscaler.info()["over_load_limit"] is True


def test_idle_pool_shrinks_to_what_its_jobs_need(jobs: list[Job]) -> None:
    hold_jobs(jobs, 1)
    autoscaler, pool = scaler(6)
    autoscaler.maybe_scale()
    assert pool.num_processes == 2          # 1 / 0.8, rounded up
