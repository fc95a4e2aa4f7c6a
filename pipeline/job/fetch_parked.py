"""Jobs parked in the fetch, reported as a job parked by ``before_start`` reports itself.

The worker's fetch parks a job whose resources are visibly held before any
pool process sees it (:mod:`pipeline.broker.parking`); the lock script wrote
its ``blocked`` event (the store, ``pipeline show``) and the broker logged it.
This consumer bootstep has the main process tell the rest, as
:func:`pipeline.job.starting.start` does for a job parked in a pool process:
Flower's ``task-blocked`` event, and the BLOCKED state in the result backend
where the job's STARTED state would be written (``track_started``, results
kept). And, as in a pool process that parked a job, the process's heartbeat
thread runs from then on: it sweeps holds whose lease ran out, so the jobs
parked here wake when their holder died or stopped, even with no beat running.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps
from celery.app.task import Context

from pipeline.broker import parking
from pipeline.broker.parking import FetchParked
from pipeline.job.blocked_state import store_blocked
from pipeline.runtime.services import services_for


def report(consumer: Any, parked: list[FetchParked]) -> None:
    """Send ``task-blocked`` and store BLOCKED for each of *parked* (see the module doc)."""
    app = consumer.app
    services_for(app).heartbeat.ensure_started()
    # Celery's own dispatcher of the consumer (it sends task-received): it does
    # nothing when task events are off.
    dispatcher = getattr(consumer, "event_dispatcher", None)
    for job in parked:
        meta = {"reason": job.reason, "resource": job.resource, "blocked_by": job.blocked_by,
                "position": job.position}
        if dispatcher is not None:
            dispatcher.send("task-blocked", uuid=job.job_id, **meta)
        task = app.tasks.get(job.task)
        if task is None or not task.track_started:
            continue
        ignored = task.ignore_result if job.ignore_result is None else job.ignore_result
        if not ignored:
            store_blocked(app.backend, job.job_id, meta,
                          Context(id=job.job_id, hostname=consumer.hostname, task=job.task))


class FetchParkedReports(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: reports the jobs this worker's fetch parks (see the module doc)."""

    label = "PipelineFetchParked"
    requires = ("celery.worker.consumer.events:Events",)

    def start(self, c: Any) -> None:
        parking.set_reporter(lambda parked: report(c, parked))

    def shutdown(self, c: Any) -> None:
        parking.set_reporter(None)
