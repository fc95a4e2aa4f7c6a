"""The broker's Redis lists of a queue, as kombu's Redis transport names them.

kombu keeps one list per priority step: priority 0 in the list named after the
queue (with the app's ``global_keyprefix``), the other steps in lists with a
suffix. The pipeline's four levels sit on the steps 0, 3, 6 and 9.
"""

from __future__ import annotations

from celery import Celery

from pipeline.keys import BROKER_SEP
from pipeline.priority import PRIORITY_STEPS


def queue_key(app: Celery, routing_key: str) -> str:
    """The Redis list a granted job is pushed to: its queue's most urgent list.

    kombu's Redis transport keeps priority 0 messages in the list named after
    the queue (other levels get a suffix) and pops from its right end, so an
    RPUSH there makes the job the very next one any worker takes.
    """
    options = app.conf.broker_transport_options or {}
    prefix = options.get("global_keyprefix", "")
    return f"{prefix}{routing_key}"


def queue_lists(app: Celery, queue: str | None = None) -> list[str]:
    """The Redis lists of *queue* (default queue when None), most urgent first."""
    head = queue_key(app, queue or app.conf.task_default_queue)
    return [head if step == 0 else f"{head}{BROKER_SEP}{step}" for step in PRIORITY_STEPS]
