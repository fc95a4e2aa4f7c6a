"""The arms of the ``cost`` scenario's drains, and the checks that they are what they claim.

Four arms drain the same number of no-op jobs, timed by marker jobs
(``bench/drains.py``), alternating round by round:

``celery``
    Celery as it ships on kombu's Redis transport (``bench/celery_defaults.py``):
    acks on receipt, prefetch multiplier 4, no task events, results ignored;
``peer``
    the hand-written lock peer (``bench/lockpeer.py``): a plain task taking the
    same three locks by hand with redis-py ``Lock``, on the pipeline arm's settings;
``pipeline``
    the pipeline, its jobs taking user, model and project locks (distinct per job,
    so nothing waits), its own settings (acks late, prefetch 1, priority steps)
    with task events off and results ignored, store off (``bench.pipeline_as_ships``);
``guarded``
    Celery as it ships with the pipeline's transport and consumer in place of
    kombu's (the transport row: plain tasks, nothing else of the pipeline).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from typing import Any

from bench import armcheck, drains, lockbench, lockpeer, targets
from bench.armcheck import EventWatch
from bench.errors import BenchError
from bench.harness import CONCURRENCY, Context, Worker
from bench.marks import MARKS_KEY
from bench.targets import Target
from pipeline.priority import Priority

CELERY = "celery"
PEER = "peer"
PIPELINE = "pipeline"
GUARDED = "guarded"
ARMS = (CELERY, PEER, PIPELINE, GUARDED)
#: Jobs of the drain each arm runs, events watched, before the measured rounds.
CHECK_JOBS = 200
#: What each arm claims about its worker's settings (``inspect conf``/``stats``); besides,
#: its prefetch count must be its multiplier times its concurrency.
CLAIMS: dict[str, dict[str, Any]] = {
    CELERY: {"task_acks_late": False, "worker_prefetch_multiplier": 4,
             "worker_send_task_events": False, "task_ignore_result": True,
             "transport": "redis"},
    GUARDED: {"task_acks_late": False, "worker_prefetch_multiplier": 4,
              "worker_send_task_events": False, "task_ignore_result": True,
              "transport": "redis-pipeline"},
    PEER: {"task_acks_late": True, "worker_prefetch_multiplier": 1,
           "worker_send_task_events": False, "task_ignore_result": True,
           "transport": "redis"},
    PIPELINE: {"task_acks_late": True, "worker_prefetch_multiplier": 1,
               "worker_send_task_events": False, "task_ignore_result": True,
               "transport": "redis-pipeline"},
}
SETTING_NAMES = ("task_acks_late", "worker_prefetch_multiplier", "worker_send_task_events",
                 "task_ignore_result")
#: Job numbers of the peer's senders: every job its own user, model and project.
_PEER_JOBS = itertools.count()


def peer_target() -> Target:
    """The lock peer: plain Celery with the pipeline arm's settings, three locks per job."""
    base = lockbench.plain_target(targets.PLAIN_AS_SHIPS, as_ships=True)
    lockpeer.register(base.app)
    noop = base.app.tasks[lockpeer.NOOP]
    mark = base.app.tasks[lockpeer.MARK]

    def names() -> tuple[str, str, str]:
        i = next(_PEER_JOBS)
        return f"u{i}", f"m{i}", f"p{i}"

    def send(level: Priority | None) -> str:
        options: dict[str, Any] = {} if level is None else {"priority": int(level)}
        return str(noop.apply_async(names(), **options).id)

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label, *names())).id)

    return replace(base, name=PEER, includes=("bench.lockpeer",), send=send,
                   send_mark=send_mark)


def pipeline_target() -> Target:
    """The pipeline as it ships, store off, every job with its own user, model and project."""
    shipped = lockbench.pipeline_target(targets.PIPELINE_AS_SHIPS, as_ships=True)
    send, send_mark = lockbench.distinct_senders(shipped.app, shipped)
    return replace(shipped, name=PIPELINE, send=send, send_mark=send_mark)


def arm_targets() -> dict[str, Target]:
    """The four arms (see the module docstring), in the order a first round runs them."""
    sides: dict[str, Target] = {
        CELERY: replace(targets.celery_defaults("kombu"), name=CELERY),
        PEER: peer_target(),
        PIPELINE: pipeline_target(),
        GUARDED: replace(targets.celery_defaults("pipeline"), name=GUARDED),
    }
    return sides


def check_arm(ctx: Context, name: str, worker: Worker, *, settings: bool) -> dict[str, Any]:
    """One small drain with Celery's events watched (none may be a task event), the
    worker's settings against the arm's claims (with *settings*), and for the peer the
    contention check.

    Raises:
        BenchError: the arm is not what it claims.
    """
    out: dict[str, Any] = {}
    if settings:
        observed = armcheck.worker_settings(worker, SETTING_NAMES)
        claims = dict(CLAIMS[name])
        # Celery's prefetch count is the multiplier times the concurrency, which a solo
        # worker still takes from -c (default: the CPU count) though it runs one job.
        processes = CONCURRENCY if worker.pool == "prefork" else (os.cpu_count() or 1)
        claims["prefetch_count"] = claims["worker_prefetch_multiplier"] * processes
        wrong = armcheck.mismatches(observed, claims)
        if wrong:
            raise BenchError(f"{name} arm ({worker.nodename}) is not configured as it claims: "
                             f"{'; '.join(wrong)}")
        out["settings"] = observed
    with EventWatch(ctx.redis_url) as watch:
        armcheck.probe(worker.target.app)
        drains.marked_drain(worker, CHECK_JOBS)
    if watch.task_events < 1:
        raise BenchError(f"{name} arm: the event watch missed the probe event: it cannot "
                         "tell whether the worker sends task events")
    published = watch.task_events - 1
    if published:
        raise BenchError(f"{name} arm ({worker.nodename}) published {published} task "
                         f"events during a drain of {CHECK_JOBS} jobs: events are not off")
    out["task_events_during_drain"] = published
    out["probe_event_seen"] = True
    out["results_stored"] = 0  # marked_drain raised otherwise
    if name == PEER and worker.pool == "prefork":
        worker.resume()
        try:
            out["contention"] = armcheck.peer_contention(worker)
        finally:
            worker.pause()
    ctx.client.delete(MARKS_KEY)
    return out
