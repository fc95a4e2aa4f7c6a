"""The job store's recorder in a Celery app: a recorder on the app's Redis and store,
and a recorder thread in each of its workers.

The recorder itself (:mod:`pipeline.store.recorder`) knows Redis and SQL only;
this module connects it to an app (its broker's Redis, a Sentinel group's
primary included, its settings) and to the worker's life (``worker_ready``,
``worker_shutdown``).
"""

from __future__ import annotations

from typing import Any

from pipeline import conf
from pipeline.conf import broker_redis_url
from pipeline.keys import Keys
from pipeline.runtime.redisurl import client_for
from pipeline.store.recorder import Recorder, RecorderThread


def recorder_for(app: Any, **options: Any) -> Recorder:
    """A recorder on *app*'s broker Redis, event stream and store URL."""
    settings = conf.read(app.conf)
    client = client_for(broker_redis_url(app), settings.master_name, decode_responses=True)
    return Recorder(client, Keys(settings.redis_prefix).events, settings.store_url, **options)


def install(app: Any) -> None:
    """Run a recorder thread in each worker of *app* (call once, from the app setup).

    The thread starts on ``worker_ready``, after the prefork pool has forked,
    and stops on ``worker_shutdown`` after its current batch. Nothing starts
    when ``pipeline_store_enabled`` or ``pipeline_store_recorder`` is false
    (the latter when a ``pipeline recorder`` process does the writing).
    """
    from celery import signals

    if getattr(app, "_pipeline_recorder_installed", False):
        return
    app._pipeline_recorder_installed = True
    threads: list[RecorderThread] = []

    def start(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is not app:
            return
        settings = conf.read(app.conf)
        if not settings.store_enabled or not settings.store_recorder:
            return
        thread = RecorderThread(lambda: recorder_for(app))
        thread.start()
        threads.append(thread)

    def stop(**_: Any) -> None:
        while threads:
            threads.pop().stop()

    signals.worker_ready.connect(start, weak=False)
    signals.worker_shutdown.connect(stop, weak=False)
