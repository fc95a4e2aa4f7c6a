"""The apps under test: how to publish their trivial job and how to run their worker.

Both apps read ``celeryconfig``, which reads the environment when it is first
imported, so the driver sets ``PIPELINE_BROKER_URL`` (see :func:`configure_env`)
before anything here builds an app; the imports below are therefore lazy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from pipeline.priority import Priority

PLAIN = "plain"
PIPELINE = "pipeline"
PIPELINE_RECORDER_OFF = "pipeline_recorder_off"
#: The two apps configured as Celery ships (``bench/as_ships.py``).
PLAIN_AS_SHIPS = "plain_as_ships"
PIPELINE_AS_SHIPS = "pipeline_as_ships"
#: The pipeline's worker module with the as-ships settings.
PIPELINE_AS_SHIPS_MODULE = "bench.pipeline_as_ships"
#: Celery as it ships, on kombu's transport and on the pipeline's (``bench/celery_defaults.py``).
CELERY_DEFAULTS = "celery_defaults"
CELERY_DEFAULTS_GUARDED = "celery_defaults_guarded"
#: The pipeline app's queue in the benchmarks (``$PIPELINE_QUEUE``).
PIPELINE_QUEUE = "bench.pipeline"

#: Publish one trivial job at a level (None = the app's default) and return its id.
Sender = Callable[[Priority | None], str]
#: Whether the app's background work for finished jobs is done (the pipeline's recorder).
IdleCheck = Callable[[redis.Redis], bool]
#: Publish one marker job (``bench/marks.py``): ``send_mark(hash_key, label)`` -> its id.
MarkSender = Callable[[str, str], str]


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
        idle: None, or whether the background work for the jobs that finished
            is done; the harness waits for it between samples so it never runs
            during the other app's sample.
        companions: commands (after the interpreter) started beside each
            worker and stopped with it, as the deployment runs them.
        send_mark: publishes the marker job that times a drain
            (``bench/marks.py``); None for a target that has none.
        results: whether its jobs store results (False: Celery as it ships).
    """

    name: str
    app: Any
    module: str
    queues: tuple[str, ...]
    send: Sender
    includes: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    idle: IdleCheck | None = None
    companions: tuple[tuple[str, ...], ...] = ()
    send_mark: MarkSender | None = None
    results: bool = True

    def result_key(self, task_id: str) -> str:
        """The result backend's Redis key of *task_id*."""
        key = self.app.backend.get_key_for_task(task_id)
        return key.decode() if isinstance(key, bytes) else str(key)


_BUILT: dict[str, Target] = {}
#: Workers never run the recorder as a thread (``pipeline_store_recorder``), and
#: their load gate is off: a drain saturates the machine on purpose, and a worker
#: pausing there would measure the gate doing its job, not the pipeline's cost
#: (the ``admission`` scenario measures the gate and the load records).
NO_RECORDER_THREAD = {"PIPELINE_STORE_RECORDER": "false", "PIPELINE_LOAD_GATE": "false"}


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


def configure_env(redis_url: str, workdir: Path) -> None:
    """Point both apps (this process and the workers it starts) at *redis_url*.

    The pipeline's job store is a fresh SQLite file in *workdir* unless
    ``$PIPELINE_DATABASE_URL`` names one.
    """
    os.environ["PIPELINE_BROKER_URL"] = redis_url
    os.environ["PIPELINE_RESULT_BACKEND"] = redis_url
    os.environ["PIPELINE_QUEUE"] = PIPELINE_QUEUE
    os.environ.setdefault("PIPELINE_DATABASE_URL", f"sqlite:///{workdir / 'store.db'}")


def plain() -> Target:
    """Plain Celery, one queue with priority steps (the same layout as the pipeline)."""
    return layout(PLAIN)


def plain_as_ships() -> Target:
    """Plain Celery as it ships (no task events, results ignored), one queue of its own."""
    return layout(PLAIN_AS_SHIPS)


def layout(name: str) -> Target:
    """Plain Celery in a broker layout: ``plain``/``single`` (one queue) or ``per_level``.

    ``plain_as_ships`` is the single layout configured as Celery ships.
    """
    if name in _BUILT:
        return _BUILT[name]
    from bench import plain_app

    config = plain_app.AS_SHIPS if name == PLAIN_AS_SHIPS else plain_app.CONFIGURED
    layout_name = plain_app.SINGLE if name in (PLAIN, PLAIN_AS_SHIPS, plain_app.SINGLE) \
        else name
    app = plain_app.make_app(layout_name, config)
    task = app.tasks[plain_app.NOOP_NAME]
    mark = app.tasks[plain_app.MARK_NAME]

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label)).id)
    if layout_name == plain_app.PER_LEVEL:
        queues = tuple(plain_app.LEVEL_QUEUES[p.label] for p in Priority)

        def send(level: Priority | None) -> str:
            if level is None:
                return str(task.delay().id)
            queue = plain_app.LEVEL_QUEUES[level.label]
            return str(task.apply_async(queue=queue, priority=int(level)).id)
    else:
        queues = (str(app.conf.task_default_queue),)

        def send(level: Priority | None) -> str:
            if level is None:
                return str(task.delay().id)
            return str(task.apply_async(priority=int(level)).id)

    target = Target(name=name, app=app, module="bench.plain_app", queues=queues, send=send,
                    env={"BENCH_PLAIN_LAYOUT": layout_name, "BENCH_PLAIN_CONFIG": config},
                    send_mark=send_mark, results=config == plain_app.CONFIGURED)
    _BUILT[name] = target
    return target


def celery_defaults(transport: str = "kombu") -> Target:
    """Celery as it ships (``bench/celery_defaults.py``) on kombu's transport or the pipeline's.

    Results ignored: drains are timed by marker jobs, and checked to store none.
    """
    from bench import celery_defaults as defaults

    name = CELERY_DEFAULTS if transport == defaults.KOMBU else CELERY_DEFAULTS_GUARDED
    if name in _BUILT:
        return _BUILT[name]
    app = defaults.make_app(transport)
    task = app.tasks[defaults.NOOP_NAME]
    mark = app.tasks[defaults.MARK_NAME]

    def send(level: Priority | None) -> str:
        if level is None:
            return str(task.delay().id)
        return str(task.apply_async(priority=int(level)).id)

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label)).id)

    target = Target(name=name, app=app, module="bench.celery_defaults",
                    queues=(str(app.conf.task_default_queue),), send=send,
                    env={"BENCH_TRANSPORT": transport}, send_mark=send_mark, results=False)
    _BUILT[name] = target
    return target


def pipeline() -> Target:
    """The pipeline app (``tasks.app``) with its ``PipelineTask`` benchmark jobs."""
    if PIPELINE in _BUILT:
        return _BUILT[PIPELINE]
    from pipeline.conf import read
    from pipeline.keys import Keys
    from pipeline.store import migrate
    from tasks import bench as pipeline_jobs

    app = pipeline_jobs.app
    task = pipeline_jobs.noop
    mark = pipeline_jobs.mark
    settings = read(app.conf)
    if settings.store_enabled:
        migrate.upgrade(settings.store_url)
    idle = _recorder_idle(Keys(settings.redis_prefix).events) if settings.store_enabled else None

    def send(level: Priority | None) -> str:
        if level is None:
            return str(task.delay().id)
        # Users name the level; the pipeline parses it to the same int as plain's.
        return str(task.apply_async(priority=level.label).id)

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label)).id)

    queue = str(app.conf.task_default_queue)
    # As `pipeline up` deploys it: the recorder is its own (niced) process, not a
    # thread in the worker.
    recorder = ("-m", "pipeline", "-A", "tasks.app", "recorder", "--report", "0")
    target = Target(name=PIPELINE, app=app, module="tasks.app", queues=(queue,), send=send,
                    includes=("tasks.bench",), env=NO_RECORDER_THREAD, idle=idle,
                    companions=(recorder,) if idle is not None else (), send_mark=send_mark)
    _BUILT[PIPELINE] = target
    return target


def pipeline_as_ships() -> Target:
    """The pipeline configured as Celery ships: no task events, results ignored, store off.

    Its worker is ``celery -A bench.pipeline_as_ships`` on a queue of its own;
    this process publishes every job with ``ignore_result=True`` (the message
    says so, which is what the worker obeys). Publish with the store off in
    this process too (``bench.lockbench.set_publisher_store``).
    """
    if PIPELINE_AS_SHIPS in _BUILT:
        return _BUILT[PIPELINE_AS_SHIPS]
    base = pipeline()
    task = base.app.tasks["bench.pipeline.noop"]
    mark = base.app.tasks["bench.pipeline.mark"]
    queue = f"{PIPELINE_QUEUE}.as_ships"

    def send(level: Priority | None) -> str:
        options: dict[str, Any] = {"queue": queue, "ignore_result": True}
        if level is not None:
            options["priority"] = level.label
        return str(task.apply_async(**options).id)

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label), queue=queue, ignore_result=True).id)

    target = Target(name=PIPELINE_AS_SHIPS, app=base.app, module=PIPELINE_AS_SHIPS_MODULE,
                    queues=(queue,), send=send, includes=base.includes,
                    env={**NO_RECORDER_THREAD, "PIPELINE_STORE_ENABLED": "false"},
                    send_mark=send_mark, results=False)
    _BUILT[PIPELINE_AS_SHIPS] = target
    return target


def pipeline_recorder_off() -> Target:
    """The pipeline app without a recorder: its events stay in the stream.

    Never run it beside a pipeline worker with its recorder: that recorder
    would write these events too.
    """
    if PIPELINE_RECORDER_OFF not in _BUILT:
        base = pipeline()
        _BUILT[PIPELINE_RECORDER_OFF] = Target(
            name=PIPELINE_RECORDER_OFF, app=base.app, module=base.module, queues=base.queues,
            send=base.send, includes=base.includes, env=NO_RECORDER_THREAD,
            send_mark=base.send_mark)
    return _BUILT[PIPELINE_RECORDER_OFF]


def _recorder_idle(stream: str) -> IdleCheck:
    """Whether the recorder's consumer group has taken and written every event of *stream*."""
    from pipeline.store.recorder import GROUP

    def idle(client: redis.Redis) -> bool:
        try:
            last = _text(client.xinfo_stream(stream)["last-generated-id"])
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:  # no stream: nothing was emitted
            return True
        for group in groups:
            if _text(group["name"]) == GROUP:
                return bool(group["pending"] == 0
                            and _text(group["last-delivered-id"]) == last)
        return False

    return idle


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def versus() -> tuple[Target, Target]:
    """Plain Celery and the pipeline, in the order a first round runs them."""
    return plain(), pipeline()
