"""Wiring the pipeline into a Celery app: validation and broker layout."""

from __future__ import annotations

from typing import Any

from celery import Celery, states

from pipeline import conf
from pipeline.keys import Keys
from pipeline.priority import DEFAULT_PRIORITY

#: The Celery state of a parked job (its result meta holds the reason).
BLOCKED = "BLOCKED"
#: The worker bootstep of the load gate and load records (imported by workers only).
LOAD_GATE_STEP = "pipeline.admission.bootstep:LoadGate"


def register_blocked_state() -> None:
    """Let Celery's event state (Flower) move between BLOCKED and STARTED in event order.

    ``celery.events.state`` ignores an event whose state ranks as happening
    before the current one; an unknown state ranks above STARTED, so a parked
    job would stay BLOCKED after it started. Ranked equal to STARTED, each
    replaces the other: parked after the worker said "started", then started
    for real after the hand-off.
    """
    states.PRECEDENCE_LOOKUP[BLOCKED] = states.PRECEDENCE_LOOKUP[states.STARTED]


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

    Sets ``task_default_priority`` to normal where the app leaves it unset.
    Also puts the broker's Redis lists under the pipeline's hash tag (kombu's
    ``global_keyprefix``), so the lock scripts can hand a job straight to its
    queue in the same Lua call that frees its resources, and adds the worker
    bootstep of the load gate (:mod:`pipeline.admission.bootstep`).
    """
    def _on_configure(sender: Any = None, **_: Any) -> None:
        settings = conf.read(app.conf)
        options = dict(app.conf.broker_transport_options or {})
        options.setdefault("global_keyprefix", Keys(settings.redis_prefix).broker_queue_prefix())
        app.conf.broker_transport_options = options
        if app.conf.task_default_priority is None:
            # Unset, a message's priority on Redis reads as 0, the most urgent:
            # every plain .delay() would overtake queued normal jobs.
            app.conf.task_default_priority = int(DEFAULT_PRIORITY)

    register_blocked_state()
    app.on_after_configure.connect(_on_configure, weak=False)
    app.steps["consumer"].add(LOAD_GATE_STEP)
    from pipeline import maintenance
    from pipeline.metrics import workers as worker_metrics
    from pipeline.store import recorder

    recorder.install(app)
    maintenance.install(app)
    worker_metrics.install(app)
    if config is not None:
        app.config_from_object(config)
        conf.read(app.conf)
    return app
