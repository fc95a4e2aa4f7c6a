"""Wiring the pipeline into a Celery app: validation and broker layout."""

from __future__ import annotations

from typing import Any

from celery import Celery, states

from pipeline import conf
from pipeline.broker import parking
from pipeline.job import outage
from pipeline.job.blocked_state import BLOCKED
from pipeline.job.notrun import quiet_celery_ignore
from pipeline.keys import Keys
from pipeline.priority import DEFAULT_PRIORITY
from pipeline.runtime.redisurl import is_sentinel, master_name_of

#: Worker bootsteps (imported by workers only): the load gate and load records,
#: the default time limits of pipeline jobs, the worker's own metrics, the
#: maintenance consumer of its main process, and the report of jobs parked in
#: the fetch.
WORKER_STEPS = ("pipeline.admission.bootstep:LoadGate", "pipeline.job.limits:DefaultTimeLimits",
                "pipeline.observe.metrics.workers:WorkerMetrics",
                "pipeline.actions.sweeper:Sweeper", "pipeline.job.fetch_parked:FetchParkedReports")
#: Guarded transport and consumer (:mod:`pipeline.broker`), named so workers import them.
#: The transport is registered with kombu under this name (it shows in Celery's logs).
TRANSPORT = "redis-pipeline"
TRANSPORT_PATH = "pipeline.broker.transport:Transport"
#: The same on the current primary of a Sentinel group (``sentinel://`` URLs).
SENTINEL_TRANSPORT = "sentinel-pipeline"
SENTINEL_TRANSPORT_PATH = "pipeline.broker.transport:SentinelTransport"
CONSUMER = "pipeline.broker.consumer:PipelineConsumer"
CELERY_CONSUMER = "celery.worker.consumer:Consumer"


def register_blocked_state() -> None:
    """Let Celery's event state (Flower) move between BLOCKED and STARTED in event order.

    ``celery.events.state`` ignores an event whose state ranks as happening
    before the current one; an unknown state ranks above STARTED, so a parked
    job would stay BLOCKED after it started. Ranked equal to STARTED, each
    replaces the other: parked after the worker said "started", then started
    for real after the hand-off.
    """
    states.PRECEDENCE_LOOKUP[BLOCKED] = states.PRECEDENCE_LOOKUP[states.STARTED]


def use_guarded_broker(app: Celery, settings: conf.Settings) -> None:
    """Run the app on :mod:`pipeline.broker`'s transport and consumer, unless it chose its own.

    The transport is used for ``redis://``, ``rediss://`` and ``sentinel://``
    broker URLs (a socket URL keeps kombu's): stray queue items are set aside
    instead of stopping the worker, and held messages stay visible while the
    worker lives. The consumer sets aside the messages Celery refuses. The
    fetch parks jobs whose resources are visibly held, with this worker's
    capacities (:mod:`pipeline.broker.parking`, ``pipeline_park_in_fetch``). A
    Sentinel broker or result backend gets its group's name
    (``pipeline_redis_master_name``) unless its transport options name it.
    """
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault(TRANSPORT, TRANSPORT_PATH)
    TRANSPORT_ALIASES.setdefault(SENTINEL_TRANSPORT, SENTINEL_TRANSPORT_PATH)
    url = str(app.conf.broker_url or "")
    scheme = url.split("://", 1)[0].lower()
    if not app.conf.broker_transport and scheme in ("redis", "rediss"):
        app.conf.broker_transport = TRANSPORT
    if not app.conf.broker_transport and scheme == "sentinel":
        app.conf.broker_transport = SENTINEL_TRANSPORT
    if app.conf.broker_transport in (TRANSPORT, SENTINEL_TRANSPORT):
        options = dict(app.conf.broker_transport_options or {})
        options.setdefault("pipeline_prefix", settings.redis_prefix)
        options.setdefault("set_aside_max", settings.set_aside_max)
        options.setdefault(parking.OPTION, parking.transport_options(settings))
        if app.conf.broker_transport == SENTINEL_TRANSPORT:
            options.setdefault("master_name", master_name_of(app.conf))
        if settings.replicas_to_wait:
            options.setdefault("wait_replicas", settings.replicas_to_wait)
            options.setdefault("wait_timeout", settings.replica_wait_timeout)
        app.conf.broker_transport_options = options
    if is_sentinel(str(app.conf.result_backend or "")):
        backend = dict(app.conf.result_backend_transport_options or {})
        backend.setdefault("master_name", master_name_of(app.conf))
        app.conf.result_backend_transport_options = backend
    if app.conf.worker_consumer in (None, CELERY_CONSUMER):
        app.conf.worker_consumer = CONSUMER


def _connect_release_on_skipped_after_return() -> None:
    """Release a job's locks where Celery skips ``after_return`` (Ignore, Reject).

    Connected once per process (the handler looks up the task's own app).
    """
    from celery.signals import task_postrun

    from pipeline.job.finishing import release_on_skipped_after_return

    task_postrun.connect(release_on_skipped_after_return, weak=False,
                         dispatch_uid="pipeline.release_on_skipped_after_return")


def _connect_worker_init() -> None:
    """In a worker, before its pool forks: cheaper tracebacks for parked jobs."""
    from celery.signals import worker_init

    from pipeline.runtime import tracebacks

    worker_init.connect(lambda **_: tracebacks.install(), weak=False,
                        dispatch_uid="pipeline.tracebacks")


def install(app: Celery, config: Any = None) -> Celery:
    """Wire the pipeline into *app*; with *config*, load and validate it now.

    Args:
        app: the Celery app.
        config: a config module name or object for ``app.config_from_object``.
            Given, the settings are read right away, so a bad ``pipeline_*``
            setting stops the worker, beat or command at start with a
            ``ConfigurationError`` (Celery only logs errors raised while it
            configures lazily). Without it they are checked on first use.

    Defaults are filled in by :func:`pipeline.conf.read`, not registered as
    Celery defaults: Celery would rank them above the app's own config module.

    Sets ``task_default_priority`` to normal where the app leaves it unset,
    and bounds the waits of a publish to a Redis that does not answer
    (:mod:`pipeline.job.outage`).
    Also puts the broker's Redis lists under the pipeline's hash tag (kombu's
    ``global_keyprefix``), so the lock scripts can hand a job straight to its
    queue in the same Lua call that frees its resources, adds the worker
    bootsteps of the load gate (:mod:`pipeline.admission.bootstep`) and of the
    default time limits (:mod:`pipeline.job.limits`), and runs the broker through
    :mod:`pipeline.broker` (see :func:`use_guarded_broker`).
    """
    def _on_configure(sender: Any = None, **_: Any) -> None:
        settings = conf.read(app.conf)
        options = dict(app.conf.broker_transport_options or {})
        options.setdefault("global_keyprefix", Keys(settings.redis_prefix).broker_queue_prefix())
        app.conf.broker_transport_options = options
        use_guarded_broker(app, settings)
        if app.conf.task_default_priority is None:
            # Unset, a message's priority on Redis reads as 0, the most urgent:
            # every plain .delay() would overtake queued normal jobs.
            app.conf.task_default_priority = int(DEFAULT_PRIORITY)
        outage.bound_waits(app.conf, settings.publish_timeout)

    register_blocked_state()
    quiet_celery_ignore()
    app.on_after_configure.connect(_on_configure, weak=False)
    _connect_release_on_skipped_after_return()
    _connect_worker_init()
    app.steps["consumer"].update(WORKER_STEPS)
    from pipeline.actions import maintenance
    from pipeline.app import recorder

    recorder.install(app)
    maintenance.install(app)
    if config is not None:
        app.config_from_object(config)
        conf.read(app.conf)
    return app
