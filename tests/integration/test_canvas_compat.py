"""Every canvas shape runs with PipelineTask as on plain Celery, at a global cap of one.

One test per shape of Celery's canvas integration suite (chains holding groups
and chords, chains led by a group, groups of chains, chains of chords, chord
bodies that are chains, ``replace()``, links and error links, stamping, eager
calls inside a job, each step's own priority). The whole Celery suite runs
with ``../shared/tools/celery-suite/run.sh`` (see the README); this subset keeps
its shapes true in every CI run. The worker runs one job at a time and the
global cap is one slot, the tightest setting: a canvas that waited on a hold of
its own would hang here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from celery import chain, chord, group
from celery.canvas import StampingVisitor

from tests.tasks.canvas import (
    add,
    add_eagerly_inside,
    fail,
    identity,
    priority_of,
    replaced_by_a_chain_with_a_group,
    stamps_of,
    starmap_by_name,
    tsum,
)

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30


@pytest.fixture
def capped_worker(app: Any, start_worker: Callable[..., AbstractContextManager[Any]]
                  ) -> Iterator[Any]:
    """An in-process worker of the app with ``pipeline_concurrency_global = 1``."""
    from pipeline.runtime.services import _SERVICES

    app.conf.pipeline_concurrency_global = 1
    _SERVICES.clear()
    try:
        with start_worker(pool="threads", concurrency=2) as worker:
            yield worker
    finally:
        app.conf.changes.pop("pipeline_concurrency_global", None)
        _SERVICES.clear()


def test_chain_with_a_group_in_the_middle(capped_worker: Any) -> None:
    flow = add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s()
    assert flow.delay().get(timeout=TIMEOUT) == 7


def test_chain_led_by_a_group_carries_the_rest_in_the_chord_body(capped_worker: Any) -> None:
    flow = chain(chain(group(add.si(1, 1), add.si(2, 2)), tsum.s(), add.s(10)), add.s(100))
    assert flow.delay().get(timeout=TIMEOUT) == 116


def test_group_of_chains(capped_worker: Any) -> None:
    flow = add.s(5, 6) | group(add.s(1) | add.s(2), add.s(3))
    assert flow.delay().get(timeout=TIMEOUT) == [14, 14]


def test_chain_of_chords(capped_worker: Any) -> None:
    flow = chain(chord(group(add.si(1, 0), add.si(1, 0)), tsum.s()),
                 chord(group(add.s(1), add.s(1)), tsum.s()),
                 add.s(0))
    assert flow.delay().get(timeout=TIMEOUT) == 6


def test_chord_whose_body_is_a_chain(capped_worker: Any) -> None:
    flow = chord(group(identity.si(1), identity.si(2)), chain(tsum.s(), add.s(3)))
    assert flow.delay().get(timeout=TIMEOUT) == 6


def test_replace_with_a_chain_holding_a_group(capped_worker: Any) -> None:
    assert replaced_by_a_chain_with_a_group.delay().get(timeout=TIMEOUT) == [3, 3]


def test_link_and_error_link_run(capped_worker: Any) -> None:
    callback = add.s(10)
    callback.freeze()
    add.apply_async((1, 2), link=callback).get(timeout=TIMEOUT)
    assert callback.AsyncResult(callback.id).get(timeout=TIMEOUT) == 13
    errback = identity.si("handled")
    errback.freeze()
    failed = fail.apply_async(("boom",), link_error=errback)
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=TIMEOUT)
    assert errback.AsyncResult(errback.id).get(timeout=TIMEOUT) == "handled"


def test_stamps_reach_every_job_of_the_canvas(capped_worker: Any) -> None:
    class Flow(StampingVisitor):  # type: ignore[misc]
        def on_signature(self, sig: Any, **headers: Any) -> dict[str, str]:
            return {"flow": "f1"}

    canvas = chain(stamps_of.s(), group(stamps_of.s(), stamps_of.s()))
    canvas.stamp(visitor=Flow())
    assert canvas.delay().get(timeout=TIMEOUT) == [{"flow": "f1"}, {"flow": "f1"}]


def test_a_job_taking_an_argument_named_task_as_celery_starmap_does(capped_worker: Any
                                                                     ) -> None:
    job = starmap_by_name.apply_async(kwargs={"task": add.name, "it": [[1, 2], [3, 4]]})
    assert job.get(timeout=TIMEOUT) == [3, 7]
    assert (add.starmap([(1, 2), (3, 4)]) | tsum.s()).delay().get(timeout=TIMEOUT) == 10


def test_each_step_runs_at_its_own_priority(capped_worker: Any) -> None:
    flow = priority_of.signature(priority=3) | priority_of.signature(priority=5)
    assert flow.delay().get(timeout=TIMEOUT) == 5


def test_eager_chain_inside_a_job_runs_under_its_hold(app: Any, capped_worker: Any) -> None:
    app.conf.task_always_eager = True
    try:
        assert add_eagerly_inside.apply_async((4, 8), throw=True).get() == 20
    finally:
        app.conf.task_always_eager = False
