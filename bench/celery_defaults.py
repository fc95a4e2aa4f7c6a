"""Celery as it ships, on kombu's Redis transport or on the pipeline's: ``celery -A
bench.celery_defaults worker``.

The Celery arm of the ``cost`` scenario's table is what a team would compare the
pipeline with: ``Celery()`` with the broker URL and nothing of this project's
``celeryconfig``. Every Celery default stays: acknowledged when received (no
``task_acks_late``), ``worker_prefetch_multiplier = 4``, kombu's default transport
options (no ``priority_steps``, no ``queue_order_strategy`` set here), no default
priority, task events off (``worker_send_task_events`` is off by default and the
harness never passes ``-E``). Two settings are set, and neither is a cost:

- ``task_ignore_result = True``: results ignored, as the table's arms all are. A
  result backend is configured only so that the harness can check that no job
  stored a result (``bench.drains.marked_drain``); with results ignored a worker
  never writes to it, and a publisher never subscribes to it.
- ``task_default_queue``: a queue of its own, so no other app shares its lists.

``$BENCH_TRANSPORT`` chooses the broker transport (:func:`make_app` in the driver):

``kombu``
    kombu's own Redis transport, queue ``bench.defaults``: Celery as it ships.
``pipeline``
    the same app on the pipeline's guarded transport and consumer, as
    :func:`pipeline.app.install.install` sets them up (its ``global_keyprefix``,
    ``pipeline.broker.transport``, ``pipeline.broker.consumer``), queue
    ``bench.defaults.guarded``, and nothing else of the pipeline: plain tasks,
    no locks, no bootsteps. The ``transport`` row of the table compares the two.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from tasks.marks import record_mark, started_at

KOMBU = "kombu"
PIPELINE = "pipeline"
TRANSPORTS = (KOMBU, PIPELINE)
QUEUES = {KOMBU: "bench.defaults", PIPELINE: "bench.defaults.guarded"}
NOOP_NAME = "bench.defaults.noop"
MARK_NAME = "bench.defaults.mark"
#: What this app sets; everything else is Celery's default (checked on the worker by
#: ``bench.armcheck.check_settings``).
SETTINGS: dict[str, Any] = {"task_ignore_result": True}


def _broker_url() -> str:
    url = os.environ.get("PIPELINE_BROKER_URL")
    if not url:
        raise RuntimeError("PIPELINE_BROKER_URL is not set: the benchmark driver sets it "
                           "(bench.targets.configure_env)")
    return url


def make_app(transport: str = KOMBU) -> Celery:
    """Celery as it ships with the benchmark's trivial and marker jobs.

    Raises:
        ValueError: for a transport other than ``kombu`` or ``pipeline``.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport={transport!r} is not accepted: expected one of "
                         f"{TRANSPORTS}")
    url = _broker_url()
    app = Celery(f"bench_defaults_{transport}", broker=url, backend=url)
    app.conf.update(SETTINGS, task_default_queue=QUEUES[transport])
    if transport == PIPELINE:
        _guarded_broker(app)
    app.task(name=NOOP_NAME)(started_at)
    app.task(name=MARK_NAME, bind=True)(record_mark)
    return app


def _guarded_broker(app: Celery) -> None:
    """The broker part of ``install``: the pipeline's key prefix, transport and consumer."""
    from pipeline import conf
    from pipeline.app.install import use_guarded_broker
    from pipeline.keys import Keys

    settings = conf.read(app.conf)
    options = dict(app.conf.broker_transport_options or {})
    options.setdefault("global_keyprefix", Keys(settings.redis_prefix).broker_queue_prefix())
    app.conf.broker_transport_options = options
    use_guarded_broker(app, settings)


app = make_app(os.environ.get("BENCH_TRANSPORT", KOMBU))
