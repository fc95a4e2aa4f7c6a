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

Two configurations, chosen by ``$BENCH_PLAIN_CONFIG`` (or :func:`make_app`):
``configured`` (``celeryconfig`` as it is: task events, stored results) and
``as_ships`` (``celeryconfig`` with :data:`bench.as_ships.SETTINGS` on top: no
task events, results ignored), whose single queue is ``bench.plain.as_ships``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

import celeryconfig
from bench import as_ships
from pipeline.priority import Priority
from tasks.marks import record_mark, started_at

SINGLE = "single"
PER_LEVEL = "per_level"
LAYOUTS = (SINGLE, PER_LEVEL)
CONFIGURED = "configured"
AS_SHIPS = "as_ships"
CONFIGS = (CONFIGURED, AS_SHIPS)

SINGLE_QUEUE = "bench.plain"
AS_SHIPS_QUEUE = "bench.plain.as_ships"
#: Level name -> queue of the per-level layout, most urgent first.
LEVEL_QUEUES: dict[str, str] = {p.label: f"bench.level.{p.label}" for p in Priority}

NOOP_NAME = "bench.plain.noop"
MARK_NAME = "bench.plain.mark"

def make_app(layout: str = SINGLE, config: str = CONFIGURED) -> Celery:
    """A plain Celery app with the pipeline's settings and the benchmark tasks.

    Args:
        layout: ``single`` or ``per_level`` (see the module docstring).
        config: ``configured`` or ``as_ships`` (see the module docstring).

    Raises:
        ValueError: for an unknown layout or configuration.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not accepted: expected one of {LAYOUTS}")
    if config not in CONFIGS:
        raise ValueError(f"config={config!r} is not accepted: expected one of {CONFIGS}")
    app = Celery(f"bench_plain_{layout}" + ("" if config == CONFIGURED else f"_{config}"))
    app.config_from_object(celeryconfig)
    if config == AS_SHIPS:
        as_ships.configure(app.conf)
    # Copy: celeryconfig's dict is shared with the pipeline app in this process.
    options: dict[str, Any] = dict(celeryconfig.broker_transport_options)
    if layout == PER_LEVEL:
        options["priority_steps"] = [0]
        app.conf.task_default_queue = LEVEL_QUEUES[Priority.NORMAL.label]
    else:
        app.conf.task_default_queue = SINGLE_QUEUE if config == CONFIGURED else AS_SHIPS_QUEUE
    app.conf.broker_transport_options = options
    app.task(name=NOOP_NAME)(started_at)
    app.task(name=MARK_NAME, bind=True)(record_mark)
    return app


app = make_app(os.environ.get("BENCH_PLAIN_LAYOUT", SINGLE),
               os.environ.get("BENCH_PLAIN_CONFIG", CONFIGURED))
