"""Plain Celery, configured from the same ``celeryconfig`` as the pipeline app.

The reference every benchmark compares the pipeline against: the same broker,
serializer, acks-late, prefetch and priority transport options, but plain
``celery.Task`` tasks and queues of its own, so the two apps never share a list.

Two broker layouts, chosen by ``$BENCH_PLAIN_LAYOUT`` for a worker
(``celery -A bench.plain_app worker``) or by :func:`make_app` in the driver:

``single``
    one queue, ``bench.plain``, with kombu's priority steps (the pipeline's design);
``per_level``
    one queue per level (``bench.level.critical`` ... ``bench.level.low``) and a
    single priority step, so each level is exactly one Redis list.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

import celeryconfig
from pipeline.priority import Priority

SINGLE = "single"
PER_LEVEL = "per_level"
LAYOUTS = (SINGLE, PER_LEVEL)

SINGLE_QUEUE = "bench.plain"
#: Level name -> queue of the per-level layout, most urgent first.
LEVEL_QUEUES: dict[str, str] = {p.label: f"bench.level.{p.label}" for p in Priority}

NOOP_NAME = "bench.plain.noop"


def noop() -> float:
    """The trivial job: report when it started (seconds since the epoch)."""
    return time.time()


def make_app(layout: str = SINGLE) -> Celery:
    """A plain Celery app with the pipeline's settings and the benchmark tasks.

    Args:
        layout: ``single`` or ``per_level`` (see the module docstring).

    Raises:
        ValueError: for an unknown layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not accepted: expected one of {LAYOUTS}")
    app = Celery(f"bench_plain_{layout}")
    app.config_from_object(celeryconfig)
    # Copy: celeryconfig's dict is shared with the pipeline app in this process.
    options: dict[str, Any] = dict(celeryconfig.broker_transport_options)
    if layout == PER_LEVEL:
        options["priority_steps"] = [0]
        app.conf.task_default_queue = LEVEL_QUEUES[Priority.NORMAL.label]
    else:
        app.conf.task_default_queue = SINGLE_QUEUE
    app.conf.broker_transport_options = options
    app.task(name=NOOP_NAME)(noop)
    return app


app = make_app(os.environ.get("BENCH_PLAIN_LAYOUT", SINGLE))
