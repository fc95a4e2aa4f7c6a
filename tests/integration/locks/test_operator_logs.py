"""What a worker logs at INFO for an operator: park, hand-off, dead letter, give-back, rescue.

Read from the log file of a real worker process (``--loglevel INFO``), or caught
with ``caplog`` where the line is written in this process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery.exceptions import Ignore

from pipeline import explain
from pipeline.actions import deadletters
from pipeline.job.notrun import NotRun, quiet_celery_ignore
from pipeline.observe import inspection
from pipeline.runtime.services import _SERVICES, services_for
from tests.integration.locks.support import wait_for
from tests.tasks.lockprobes import flaky, hold, runs

pytestmark = pytest.mark.timeout(180)


def test_a_parked_job_logs_parked_and_handed_off_not_celerys_ignored(
        pipeline_app: Any, workers: Callable[..., Any]) -> None:
    worker = workers(concurrency=2)
    first = hold.apply_async((1.5, "a"), user="ann")
    wait_for(lambda: explain(first.id, pipeline_app).status == "running",
             what="the first job to start")
    second = hold.apply_async((0.0, "b"), user="ann")
    first.get(timeout=30)
    second.get(timeout=30)
    log = worker.log()
    parked = re.findall(rf"INFO.* job {second.id} \(lockprobes\.hold\) parked: (.*)", log)
    assert parked and "user:ann" in parked[0], log
    assert re.search(rf"INFO.* job {second.id} \(lockprobes\.hold\) handed off: a release "
                     "granted it the locks it was parked for", log), log
    assert f"lockprobes.hold[{second.id}] ignored" not in log


def test_a_users_own_ignore_is_still_logged_by_celery(caplog: pytest.LogCaptureFixture) -> None:
    quiet_celery_ignore()
    trace = logging.getLogger("celery.app.trace")
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        for exc in (Ignore("mine"), NotRun("parked")):
            trace.info("Task %(name)s[%(id)s] ignored", {"name": "t", "id": type(exc).__name__},
                       extra={"data": {"exc": repr(exc)}})
    assert [r.getMessage() for r in caplog.records] == ["Task t[Ignore] ignored"]


def test_a_dead_letter_is_logged_and_requeued_attempts_go_on(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    worker = workers(concurrency=1)
    job = flaky.apply_async((9, "f"))
    with pytest.raises(RuntimeError):
        job.get(timeout=30)
    services = services_for(pipeline_app)
    wait_for(lambda: deadletters.list_dead(services), what="a dead letter")
    assert re.search(rf"INFO.* job {job.id} \(lockprobes\.flaky\) dead-lettered after "
                     r"attempt 3: RuntimeError", worker.log()), worker.log()

    deadletters.requeue(services, [job.id])
    wait_for(lambda: deadletters.list_dead(services), what="a second dead letter")
    [dead] = deadletters.list_dead(services)
    assert dead.attempts == 6  # 3 before the requeue, 3 after: the numbers go on
    assert [r["retries"] for r in runs(lock_redis)] == [0, 1, 2, 0, 1, 2]
    assert re.search(rf"job {job.id} \(lockprobes\.flaky\) dead-lettered after attempt 6",
                     worker.log()), worker.log()


def test_show_says_when_every_process_consuming_the_queue_is_busy(
        pipeline_app: Any, workers: Callable[..., Any]) -> None:
    workers(concurrency=2, agent_heartbeat=0.2)
    before = pipeline_app.conf.get("pipeline_store_enabled")
    pipeline_app.conf.pipeline_store_enabled = False  # the live view only: no store here
    _SERVICES.clear()
    services = services_for(pipeline_app)
    busy = [hold.apply_async((4.0, f"busy{n}"), user=f"u{n}") for n in range(2)]
    wait_for(lambda: all(explain(j.id, pipeline_app).status == "running" for j in busy),
             what="both processes to run a job")
    waiting = hold.apply_async((0.0, "later"), user="u3")

    def says_busy() -> bool:
        why = inspection.job_detail(services, waiting.id, history=0).why
        return "every one of the 2 processes consuming queue pipeline is busy" in why

    try:
        wait_for(says_busy, what="show to say every process is busy")
        for job in [*busy, waiting]:
            job.get(timeout=30)
    finally:
        if before is None:
            del pipeline_app.conf["pipeline_store_enabled"]
        else:
            pipeline_app.conf.pipeline_store_enabled = before
        _SERVICES.clear()
