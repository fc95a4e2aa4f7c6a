"""The apps under test: how to publish their trivial job and how to run their worker.

Both apps read ``celeryconfig``, which reads the environment when it is first
imported, so the driver sets ``PIPELINE_BROKER_URL`` (see :func:`configure_env`)
before anything here builds an app; the imports below are therefore lazy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.priority import Priority

PLAIN = "plain"
PIPELINE = "pipeline"
#: The pipeline app's queue in the benchmarks (``$PIPELINE_QUEUE``).
PIPELINE_QUEUE = "bench.pipeline"

#: Publish one trivial job at a level (None = the app's default) and return its id.
Sender = Callable[[Priority | None], str]


@dataclass(frozen=True)
class Target:
    """One app under test.

    Attributes:
        name: the label in the report (``plain``, ``pipeline``, a layout name).
        app: the Celery app used to publish, control the worker and read results.
        module: what the worker is started with (``celery -A module``).
        queues: the worker's ``-Q``, in order.
        send: publishes one trivial job.
        includes: extra task modules for the worker (``-I``).
        env: extra environment of the worker process.
    """

    name: str
    app: Any
    module: str
    queues: tuple[str, ...]
    send: Sender
    includes: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def result_key(self, task_id: str) -> str:
        """The result backend's Redis key of *task_id*."""
        key = self.app.backend.get_key_for_task(task_id)
        return key.decode() if isinstance(key, bytes) else str(key)


_BUILT: dict[str, Target] = {}


def declare(target: Target) -> None:
    """Declare the target's queues and bindings (again, after the database was flushed).

    kombu remembers per connection what it declared; after a FLUSHDB its Redis
    transport would route a message to an exchange without bindings nowhere.
    """
    with target.app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in target.queues:
            target.app.amqp.queues[name].bind(channel).declare()


def built() -> list[Target]:
    """Every target built so far in this process."""
    return list(_BUILT.values())


def configure_env(redis_url: str) -> None:
    """Point both apps (this process and the workers it starts) at *redis_url*."""
    os.environ["PIPELINE_BROKER_URL"] = redis_url
    os.environ["PIPELINE_RESULT_BACKEND"] = redis_url
    os.environ["PIPELINE_QUEUE"] = PIPELINE_QUEUE


def plain() -> Target:
    """Plain Celery, one queue with priority steps (the same layout as the pipeline)."""
    return layout(PLAIN)


def layout(name: str) -> Target:
    """Plain Celery in a broker layout: ``plain``/``single`` (one queue) or ``per_level``."""
    if name in _BUILT:
        return _BUILT[name]
    from bench import plain_app

    layout_name = plain_app.SINGLE if name in (PLAIN, plain_app.SINGLE) else name
    app = plain_app.make_app(layout_name)
    task = app.tasks[plain_app.NOOP_NAME]
    if layout_name == plain_app.PER_LEVEL:
        queues = tuple(plain_app.LEVEL_QUEUES[p.label] for p in Priority)

        def send(level: Priority | None) -> str:
            if level is None:
                return str(task.delay().id)
            queue = plain_app.LEVEL_QUEUES[level.label]
            return str(task.apply_async(queue=queue, priority=int(level)).id)
    else:
        queues = (plain_app.SINGLE_QUEUE,)

        def send(level: Priority | None) -> str:
            if level is None:
                return str(task.delay().id)
            return str(task.apply_async(priority=int(level)).id)

    target = Target(name=name, app=app, module="bench.plain_app", queues=queues, send=send,
                    env={"BENCH_PLAIN_LAYOUT": layout_name})
    _BUILT[name] = target
    return target


def pipeline() -> Target:
    """The pipeline app (``tasks.app``) with its ``PipelineTask`` benchmark jobs."""
    if PIPELINE in _BUILT:
        return _BUILT[PIPELINE]
    from tasks import bench as pipeline_jobs

    app = pipeline_jobs.app
    task = pipeline_jobs.noop

    def send(level: Priority | None) -> str:
        if level is None:
            return str(task.delay().id)
        # Users name the level; the pipeline parses it to the same int as plain's.
        return str(task.apply_async(priority=level.label).id)

    queue = str(app.conf.task_default_queue)
    target = Target(name=PIPELINE, app=app, module="tasks.app", queues=(queue,), send=send,
                    includes=("tasks.bench",))
    _BUILT[PIPELINE] = target
    return target


def versus() -> tuple[Target, Target]:
    """Plain Celery and the pipeline, in the order a first round runs them."""
    return plain(), pipeline()
